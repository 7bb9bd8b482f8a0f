"""Queue sensors: object-created events from RabbitMQ or SQS become ingest runs of their windows.

One code path (:func:`evaluate_queue`) over the :class:`QueueSource` interface; one sensor
per source kind. Each tick:

1. holds back (receives nothing, so messages wait in the queue) while the run queue is full
   (``run_room``, shared with the inbox sensor: MEDIAINTEL_MAX_PENDING_RUNS) or the GPU
   runs in progress reach MEDIAINTEL_MAX_GPU_RUNS (``gpu_room``); the skip reason says which.
   Otherwise it requests at most as many runs as both limits leave room for: the messages of
   the windows past that go back to the queue;
2. receives up to ``MEDIAINTEL_QUEUE_BATCH`` messages; dead-letters those that can never
   become a run (not JSON, no file named, the file or object missing);
3. looks each file up in the queue ledger (its signature: location, size, mtime, ETag):
   a file already covered by a run key whose run exists is done; one covered by a run key
   not yet submitted is requested again under the same key (the daemon skips a key it has);
   the rest are new: one run per window (``window_run_requests``, as the inbox sensor), and
   the ledger records them before the tick returns;
4. acknowledges the messages all of whose files are covered by runs that exist, and
   returns the rest to the queue: they come again next tick and are acknowledged then.

So a message is acknowledged only after its run was queued, and a tick or daemon that dies
anywhere loses nothing: what it had not acknowledged is redelivered, and the ledger makes
the redelivery a no-op.
"""

from __future__ import annotations

from collections import defaultdict

from dagster import (DagsterRunStatus, DefaultSensorStatus, RunRequest, RunsFilter, SensorEvaluationContext,
                     SensorResult, SkipReason, sensor)

from .. import config
from ..jobs import ingest_job
from ..resources.queues import (PoisonMessage, QueueSource, RabbitMQQueueResource, SqsQueueResource,
                                parse_message, read_ledger, resolve, write_ledger)
from .inbox import _PENDING, run_room, window_run_requests

RUN_KEY_TAG = "dagster/run_key"
# Runs of jobs with GPU steps carry this tag, so a sensor can count the GPU runs in progress.
GPU_TAG = "mediaintel/gpu"


def gpu_room(instance) -> tuple[int, str | None]:
    """How many GPU runs may be requested now, and why none when none may (the GPU pool)."""
    limit = config.get_int("MEDIAINTEL_MAX_GPU_RUNS")
    busy = instance.get_runs_count(RunsFilter(statuses=_PENDING, tags={GPU_TAG: "true"}))
    if busy >= limit:
        return 0, (f"backpressure: GPU pool saturated, {busy} GPU runs queued or in progress "
                   f"(MEDIAINTEL_MAX_GPU_RUNS={limit})")
    return limit - busy, None


def _run_exists(instance, run_key: str, cache: dict) -> bool:
    if run_key not in cache:
        cache[run_key] = instance.get_runs_count(RunsFilter(tags={RUN_KEY_TAG: run_key})) > 0
    return cache[run_key]


def evaluate_queue(context: SensorEvaluationContext, source: QueueSource, sensor_name: str) -> SensorResult:
    """One tick of a queue sensor (see the module docstring)."""
    instance = context.instance
    (room, held), (gpu, gpu_held) = run_room(instance), gpu_room(instance)
    held = held or gpu_held
    if held:
        try:
            depth = source.depth()
        finally:
            source.close()
        return SensorResult(skip_reason=SkipReason(f"{held}; {depth} messages wait in the queue"))
    try:
        return _tick(context, source, sensor_name, min(room, gpu))
    finally:
        source.close()  # whatever was not acknowledged goes back to the queue


def _tick(context, source: QueueSource, sensor_name: str, room: int) -> SensorResult:
    instance = context.instance
    messages = source.receive(config.get_int("MEDIAINTEL_QUEUE_BATCH"))
    if not messages:
        return SensorResult(skip_reason=SkipReason("queue empty"))
    parsed, poison = [], 0
    resolved: dict[str, object] = {}
    for m in messages:
        try:
            refs = []
            for uri in parse_message(m.body):
                if uri not in resolved:
                    resolved[uri] = resolve(uri)
                refs.append(resolved[uri])
            parsed.append((m, refs))
        except PoisonMessage as exc:
            context.log.warning(f"{sensor_name}: dead-lettered a message: {exc}")
            source.dead_letter(m, str(exc))
            poison += 1

    windows = {str(r.partition_key()) for _, refs in parsed for r in refs}
    ledgers = read_ledger(instance, sensor_name, windows)
    exists: dict[str, bool] = {}
    new_by_window: dict = defaultdict(dict)
    rerequest: dict[str, str] = {}  # run key -> window
    for _, refs in parsed:
        for r in refs:
            w = str(r.partition_key())
            entry = ledgers[w].get(r.signature)
            if entry is None:
                new_by_window[r.partition_key()][r.signature] = r
            elif not _run_exists(instance, entry["run_key"], exists):
                rerequest[entry["run_key"]] = w

    tags = {GPU_TAG: "true", "mediaintel/queue_sensor": sensor_name}
    # Runs to re-request (their ledger entry outlived a lost run) come first; then new windows
    # up to the room left under the limits. Messages of windows past it go back to the queue.
    rerequest = dict(sorted(rerequest.items())[:room])
    room -= len(rerequest)
    admitted = dict(sorted(new_by_window.items(), key=lambda kv: str(kv[0]))[:max(0, room)])
    requests = window_run_requests({w: list(fs.values()) for w, fs in admitted.items()},
                                   prefix=sensor_name, trigger=sensor_name, tags=tags)
    changed = set()
    for rr in requests:
        w = str(rr.partition_key)
        for sig, r in new_by_window[next(k for k in new_by_window if str(k) == w)].items():
            ledgers[w][sig] = {"uri": r.source_uri, "size": r.size_bytes, "mtime_ns": r.mtime_ns, "etag": r.etag,
                               "run_key": rr.run_key}
        changed.add(w)
    # Recorded before the tick returns its requests: a tick that dies after this re-requests
    # the same run keys from the ledger when the messages come again.
    write_ledger(instance, sensor_name, {w: ledgers[w] for w in changed})
    requests += [RunRequest(run_key=k, partition_key=w, tags={**tags, "mediaintel/trigger": sensor_name})
                 for k, w in sorted(rerequest.items())]

    ack, back = [], []
    for m, refs in parsed:
        entries = [ledgers[str(r.partition_key())].get(r.signature) for r in refs]
        (ack if all(e is not None and _run_exists(instance, e["run_key"], exists) for e in entries)
         else back).append(m.handle)
    source.ack(ack)
    source.requeue(back)
    summary = (f"{len(messages)} received: {len(ack)} acknowledged (their runs exist), {len(back)} back to the "
               f"queue until their runs are queued, {poison} dead-lettered; {len(requests)} run(s) requested")
    context.log.info(summary)
    if not requests:
        return SensorResult(skip_reason=SkipReason(summary))
    return SensorResult(run_requests=requests)


def build_queue_sensor(name: str, resource_key: str, description: str):
    @sensor(name=name, job=ingest_job, minimum_interval_seconds=10, default_status=DefaultSensorStatus.RUNNING,
            required_resource_keys={resource_key}, description=description)
    def _queue_sensor(context: SensorEvaluationContext):
        return evaluate_queue(context, getattr(context.resources, resource_key), name)

    return _queue_sensor


_COMMON = ("Each message (an object-created event naming a file or an s3:// object, or an S3 notification) "
           "becomes an ingest run of its file's arrival window, one run per window per tick. A message is "
           "acknowledged only once its run exists; redelivered messages are no-ops (the queue ledger records each "
           "file's signature with its run key). Messages that cannot become a run go to the dead-letter queue. "
           "Backpressure: while MEDIAINTEL_MAX_PENDING_RUNS runs are queued or running, or MEDIAINTEL_MAX_GPU_RUNS "
           "GPU runs, it receives nothing and the messages wait in the queue (the skip reason says so).")

rabbitmq_ingest_sensor = build_queue_sensor(
    "rabbitmq_ingest_sensor", "rabbitmq_queue",
    "Consumes the RabbitMQ quorum queue MEDIAINTEL_QUEUE_URL / MEDIAINTEL_QUEUE_NAME. " + _COMMON)
sqs_ingest_sensor = build_queue_sensor(
    "sqs_ingest_sensor", "sqs_queue",
    "Consumes the SQS queue MEDIAINTEL_SQS_QUEUE_URL (S3 object-created notifications). " + _COMMON)


def redrive_queue_dead_letters(source: QueueSource) -> int:
    """Move a queue's dead letters back to it (after fixing their cause); returns how many moved."""
    try:
        return source.redrive_dead_letters()
    finally:
        source.close()


__all__ = ["DagsterRunStatus", "RabbitMQQueueResource", "SqsQueueResource", "build_queue_sensor", "evaluate_queue",
           "gpu_room", "rabbitmq_ingest_sensor", "redrive_queue_dead_letters", "sqs_ingest_sensor"]
