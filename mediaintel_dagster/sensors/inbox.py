"""The inbox sensor: new files in the inbox become runs of their arrival windows."""


import hashlib
import json
import time
from collections import defaultdict

from dagster import (DagsterRunStatus, DefaultSensorStatus, RunRequest, RunsFilter, SensorEvaluationContext,
                     SensorResult, SkipReason, sensor)

from .. import config

from ..jobs import ingest_job
from ..monitoring.metrics import record_backlog
from ..resources import LocalInboxResource
from ..ui_metadata import one_line

# A tick requests at most this many files' windows; the rest wait for the next tick, so
# a huge drop (a migration of 1M files) never produces one enormous evaluation.
MAX_FILES_PER_TICK = 5000
_PENDING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED]


def run_room(instance) -> tuple[int, str | None]:
    """How many runs a sensor may request now, and why none when it may not: the room under
    MEDIAINTEL_MAX_PENDING_RUNS left by the runs queued or in progress. A tick requests at
    most that many, so the limit is never passed (it overshot by a tick's worth when only
    checked at the tick's start). Shared by the inbox and queue sensors."""
    limit = config.get_int("MEDIAINTEL_MAX_PENDING_RUNS")
    pending_runs = instance.get_runs_count(RunsFilter(statuses=_PENDING))
    if pending_runs >= limit:
        return 0, f"backpressure: {pending_runs} runs queued or in progress (MEDIAINTEL_MAX_PENDING_RUNS={limit})"
    return limit - pending_runs, None


def window_run_requests(by_window: dict, *, prefix: str, trigger: str, tags: dict | None = None) -> list[RunRequest]:
    """One RunRequest per arrival window (``{window: files}``, each file with a ``signature``),
    run key ``<prefix>:<window>:<digest of the files' signatures>``: the same files requested
    again give the same run key, which the sensor daemon skips. Shared by the inbox and queue sensors."""
    requests = []
    for key in sorted(by_window):
        sigs = sorted(f.signature for f in by_window[key])
        digest = hashlib.sha256("\n".join(sigs).encode()).hexdigest()[:16]
        requests.append(
            RunRequest(
                run_key=f"{prefix}:{key}:{digest}",
                partition_key=key,
                tags={"mediaintel/trigger": trigger, "mediaintel/new_files": str(len(sigs)), **(tags or {})},
            )
        )
    return requests


def _load_cursor(raw: str | None) -> tuple[int, set[str], set[str]]:
    if not raw:
        return 0, set(), set()
    data = json.loads(raw)
    return int(data.get("ctime_ns", 0)), set(data.get("seen", [])), set(data.get("unstatable", []))


@sensor(
    job=ingest_job,
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Watches the inbox folders and requests one ingest run per arrival window (date x shard) "
        "that received new files. Run keys make a re-delivered or re-seen file a no-op; files "
        "still being written (mtime younger than the inbox's settle_seconds) wait for a later tick. "
        "Backpressure: while MEDIAINTEL_MAX_PENDING_RUNS runs are queued or running it requests nothing "
        "and keeps its cursor, so new files wait in the inbox (the skip reason says so)."
    ),
)
def inbox_sensor(context: SensorEvaluationContext, inbox: LocalInboxResource):
    # A failure says in one line what went wrong and on which file or folder (the UI shows
    # the tick's error; without this it read only "SensorExecutionError"), and the next
    # tick starts again from the kept cursor.
    where: list[str] = []  # what the tick is reading now: the inbox folders, then one file
    try:
        return _evaluate(context, inbox, where)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        target = where[0] if where else "the inbox"
        line = f"inbox_sensor failed on {target}: {one_line(exc)}"
        context.log.error(line)
        raise InboxSensorError(line) from exc


class InboxSensorError(Exception):
    """A tick of the inbox sensor failed; the message names the file (or inbox folder)."""


def _evaluate(context: SensorEvaluationContext, inbox: LocalInboxResource, where: list[str]):
    # The cursor is a high-water mark of ctime (which, unlike mtime, moves when a file is
    # copied or moved in, even with a preserved mtime) plus the signatures of the files at
    # or above it, so the cursor stays small however many files the inbox holds.
    # Backpressure: while the queue is full, request nothing and keep the cursor, so the
    # files wait in the inbox (nothing is dropped or marked seen) until runs drain.
    room, held = run_room(context.instance)
    if held:
        return SensorResult(skip_reason=SkipReason(f"{held}; new files wait in the inbox"), cursor=context.cursor)
    high_water, seen, unstatable_seen = _load_cursor(context.cursor)
    now = time.time()
    # A file that lands in a folder the walk already passed has a ctime after this moment;
    # the mark never rises past it (less a second for coarse filesystem clocks), so such
    # a file is found by the next tick instead of falling below the mark unseen.
    listing_started_ns = int(now * 1e9) - 1_000_000_000
    where[:] = [", ".join(getattr(inbox, "roots", None) or []) or "the inbox"]
    listed = list(inbox.list_files())
    new, waiting = [], []
    # Entries with no times (a path over PATH_MAX, a folder that cannot be stat'ed) sit below
    # any mark: they are remembered by signature instead, so each is requested once (its
    # run quarantines it with the reason) and a new one is still found.
    unstatable = {f.signature for f in listed if f.ctime_ns == 0}
    for f in listed:
        where[:] = [f.source_uri]
        if f.ctime_ns == 0:
            if f.signature not in unstatable_seen:
                new.append(f)
            continue
        if f.ctime_ns < high_water or f.signature in seen:
            continue
        (new if inbox.is_settled(f, now) else waiting).append(f)
    new.sort(key=lambda f: f.ctime_ns)
    deferred = new[MAX_FILES_PER_TICK:]
    new = new[:MAX_FILES_PER_TICK]
    # At most `room` windows (runs) this tick, the oldest files' first; the other windows'
    # files wait for a later tick like the files past the cap.
    windows: list = []
    for f in new:
        key = str(f.partition_key())
        if key not in windows:
            windows.append(key)
    if len(windows) > room:
        keep = set(windows[:room])
        deferred += [f for f in new if str(f.partition_key()) not in keep]
        new = [f for f in new if str(f.partition_key()) in keep]

    # Backlog: files seen but not requested yet (still being written, or past this tick's
    # cap). Run tags carry it into the `media` metadata (plotted in the UI); the metrics
    # exporter gets it as a gauge.
    backlog = len(waiting) + len(deferred)
    record_backlog(backlog)

    by_window = defaultdict(list)
    for f in new:
        where[:] = [f.source_uri]
        by_window[f.partition_key()].append(f)
    where[:] = []
    requests = window_run_requests(by_window, prefix="inbox", trigger="inbox_sensor",
                                   tags={"mediaintel/inbox_backlog": str(backlog)})

    # Every listed file is handled now except the pending ones, so the mark may rise to the
    # oldest pending file; handled files at or above it are remembered by signature.
    pending = {f.signature for f in waiting + deferred}
    if pending:
        mark = min(f.ctime_ns for f in waiting + deferred)
    else:
        mark = max([f.ctime_ns for f in listed] + [high_water])
    mark = max(min(mark, listing_started_ns), high_water)
    remembered = sorted(f.signature for f in listed if f.ctime_ns >= mark and f.signature not in pending)
    requested = {f.signature for f in new}
    cursor = json.dumps({"ctime_ns": mark, "seen": remembered,
                         "unstatable": sorted(s for s in unstatable if s in requested or s in unstatable_seen)})

    if not requests:
        reason = f"no new files ({len(waiting)} still being written)" if waiting else "no new files"
        return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)
    context.log.info(f"{len(new)} new file(s) in {len(requests)} window(s); {len(pending)} waiting")
    return SensorResult(run_requests=requests, cursor=cursor)

