"""A burst of object-created events through RabbitMQ into a real Dagster instance.

    python -m mediaintel_dagster.bench.burst [--messages 10000] [--files 300]

Publishes ``--messages`` JSON events naming a few hundred small real image files (some of
them byte-identical copies, and every file named many times), plus poison messages (not
JSON, a missing file), to a fresh RabbitMQ quorum queue; then runs ticks of the queue
sensor against a temporary SQLite DAGSTER_HOME until the queue is empty.

What plays the daemon (said exactly): each tick's RunRequests are submitted as Dagster's
sensor daemon does (a run tagged ``dagster/run_key`` and ``dagster/sensor_name``, skipped
when a run with that key exists, status NOT_STARTED: a QUEUED run needs a code location origin). A "worker" then executes up to
``--runs-per-tick`` queued runs per tick: it deletes the placeholder and materializes the
ingest stage (``media`` + ``media_sources``, not the model stages) for the run's window,
in-process, with the same tags (so the run key exists, now SUCCESS). One tick is made to
die after receiving (before acknowledging): its messages come back and are no-ops.

Prints per tick: queue depth, runs queued, the sensor's skip reason; at the end: messages
delivered vs files and media ingested, duplicates, dead letters.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path


def submit(instance, sensor_name: str, result) -> int:
    """What the sensor daemon does with a tick's RunRequests: a QUEUED run per new run key."""
    from dagster import DagsterRunStatus, RunsFilter
    from dagster._core.test_utils import create_run_for_test

    n = 0
    for rr in result.run_requests or []:
        if instance.get_runs_count(RunsFilter(tags={"dagster/run_key": rr.run_key})):
            continue
        create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.NOT_STARTED,
                            tags={**rr.tags, "dagster/run_key": rr.run_key, "dagster/sensor_name": sensor_name,
                                  "dagster/partition": rr.partition_key})
        n += 1
    return n


def drain(instance, resources: dict, max_runs: int | None = None) -> int:
    """Execute up to ``max_runs`` queued runs (oldest first): the ingest stage for each window."""
    from dagster import DagsterRunStatus, RunsFilter, materialize

    from ..assets import media_assets

    queued = list(reversed(instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.NOT_STARTED]))))
    done = 0
    for run in queued[:max_runs]:
        tags = dict(run.tags)
        instance.delete_run(run.run_id)
        result = materialize([media_assets], partition_key=tags["dagster/partition"], instance=instance,
                             resources=resources, tags=tags, raise_on_error=False,
                             run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        done += 1
        if not result.success:
            print(f"run for {tags['dagster/partition']} failed")
    return done


class Instrumented:
    """A QueueSource that counts deliveries and can die on ack (a tick killed mid-way)."""

    def __init__(self, source):
        self.source, self.delivered, self.die_on_ack = source, 0, False

    def __getattr__(self, name):
        return getattr(self.source, name)

    def receive(self, n):
        got = self.source.receive(n)
        self.delivered += len(got)
        return got

    def ack(self, handles):
        if self.die_on_ack:
            raise RuntimeError("tick killed after receive, before ack")
        self.source.ack(handles)


def make_files(folder: Path, n_files: int, copies_every: int = 5) -> list[Path]:
    """``n_files`` small PNGs; every ``copies_every``-th is a byte copy of the one before."""
    from ..media.samples import make_image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n_files):
        p = folder / f"card_{i:04d}.png"
        if i % copies_every == copies_every - 1:
            shutil.copyfile(out[-1], p)
        else:
            make_image(p, f"CARD {i}", size=(64, 36))
        out.append(p)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--poison", type=int, default=25, help="unparseable messages, and as many naming missing files")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--max-pending", type=int, default=6)
    ap.add_argument("--max-gpu", type=int, default=4)
    ap.add_argument("--runs-per-tick", type=int, default=2)
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="mediaintel-burst-"))
    for k, sub in [("MEDIAINTEL_HOME", ""), ("MEDIAINTEL_LAKE", "lake"), ("MEDIAINTEL_INBOX", "inbox"),
                   ("DAGSTER_HOME", "dagster")]:
        os.environ[k] = str(work / sub)
    os.environ.update({"MEDIAINTEL_MAX_PENDING_RUNS": str(args.max_pending), "MEDIAINTEL_MAX_GPU_RUNS": "1000",
                       "MEDIAINTEL_QUEUE_BATCH": str(args.batch), "MEDIAINTEL_SHARDS": "4"})
    (work / "inbox").mkdir(parents=True)

    import json

    from dagster import DagsterRunStatus, RunsFilter, build_sensor_context

    from ..instance import get_instance
    from ..resources import LakehouseResource
    from ..resources.queues import QueuedInboxResource, RabbitMQQueueResource
    from ..sensors.queue import evaluate_queue

    name = "rabbitmq_ingest_sensor"
    files = make_files(work / "files", args.files)
    rnd = random.Random(12)
    source = RabbitMQQueueResource(url=args.url, queue=f"mediaintel.burst.{uuid.uuid4().hex[:8]}")
    bodies = [json.dumps({"uri": str(rnd.choice(files))}) for _ in range(args.messages)]
    bodies += ["{not json"] * args.poison + [json.dumps({"uri": str(work / f"missing_{i}.png")})
                                            for i in range(args.poison)]
    rnd.shuffle(bodies)
    t0 = time.perf_counter()
    source.publish(bodies)
    source.close()
    print(f"published {len(bodies)} messages ({args.messages} naming {args.files} files, "
          f"{2 * args.poison} poison) in {time.perf_counter() - t0:.1f}s")

    instance = get_instance()
    lake = LakehouseResource()
    resources = {"lake": lake, "inbox": QueuedInboxResource(roots=[str(work / "inbox")], settle_seconds=0)}
    src = Instrumented(source)
    reasons: dict[str, int] = {}
    tick, t0 = 0, time.perf_counter()
    print(f"{'tick':>4} {'depth':>6} {'queued':>6} {'requested':>9}  reason")
    while True:
        tick += 1
        if tick == 5:  # from here on the GPU pool is the tighter limit
            os.environ["MEDIAINTEL_MAX_GPU_RUNS"] = str(args.max_gpu)
        ctx = build_sensor_context(instance=instance)
        if tick == 3:  # this tick dies after receiving, before acknowledging anything
            src.die_on_ack = True
            try:
                evaluate_queue(ctx, src, name)
            except RuntimeError:
                pass
            src.die_on_ack = False
            reason, requested = "tick killed after receive (before ack)", 0
        else:
            result = evaluate_queue(ctx, src, name)
            requested = submit(instance, name, result)
            reason = result.skip_reason.skip_message if result.skip_reason else ""
        key = ("backpressure: GPU pool" if "GPU pool" in reason else "backpressure: pending runs"
               if reason.startswith("backpressure") else "killed" if "killed" in reason
               else "runs requested" if requested else "acknowledged only / empty")
        reasons[key] = reasons.get(key, 0) + 1
        depth = source.depth()
        queued = instance.get_runs_count(RunsFilter(statuses=[DagsterRunStatus.NOT_STARTED]))
        source.close()
        print(f"{tick:>4} {depth:>6} {queued:>6} {requested:>9}  {reason[:110]}", flush=True)
        drain(instance, resources, args.runs_per_tick)
        if depth == 0 and queued == 0 and not requested:
            break
    wall = time.perf_counter() - t0
    media = lake.read("media", columns=["media_id"]).column("media_id").to_pylist()
    sources = lake.read("media_sources", columns=["source_uri"]).column("source_uri").to_pylist()
    named = {json.loads(b)["uri"] for b in bodies if b.startswith("{\"")} - {str(work / f"missing_{i}.png")
                                                                        for i in range(args.poison)}
    import hashlib

    contents = {hashlib.sha256(Path(u).read_bytes()).hexdigest() for u in named}
    run_keys = [r.tags.get("dagster/run_key") for r in instance.get_runs()]
    out = {
        "messages_published": len(bodies), "deliveries": src.delivered, "ticks": tick, "wall_s": round(wall, 1),
        "files_named": len(named), "media_sources_rows": len(sources), "distinct_contents": len(contents),
        "media_rows": len(media), "duplicate_media_rows": len(media) - len(set(media)),
        "duplicate_source_rows": len(sources) - len(set(sources)),
        "runs": len(run_keys), "duplicate_run_keys": len(run_keys) - len(set(run_keys)),
        "dead_letters": source.dead_letter_depth(), "queue_depth_end": source.depth(), "tick_outcomes": reasons,
    }
    source.delete_queues()
    source.close()
    print(json.dumps(out, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
