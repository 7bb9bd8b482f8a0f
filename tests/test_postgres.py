"""The production instance config (deploy/dagster.postgres.yaml) against a real PostgreSQL.

Needs the server at 127.0.0.1:5432 (user postgres, trust auth, database `test`). Each run
works in a database of its own, created here and dropped at the end, so runs never collide.
Without a server the test is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil

import pytest

from conftest import REPO, copy_into

pytestmark = pytest.mark.postgres

PG = dict(host="127.0.0.1", port=5432, user="postgres")
PG_ADMIN_DB = "test"
DEPLOY_YAML = REPO / "deploy" / "dagster.postgres.yaml"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _connect(dbname: str):
    import psycopg2

    return psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)


@pytest.fixture
def pg_db():
    """A fresh, empty database; yields its name and drops it afterwards."""
    import psycopg2

    try:
        admin = _connect(PG_ADMIN_DB)
    except psycopg2.OperationalError as exc:
        reason = f"PostgreSQL not answering at {PG['host']}:{PG['port']} (db {PG_ADMIN_DB!r}): {' '.join(str(exc).split())}"
        if _in_ci():
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    admin.autocommit = True
    name = f"mediaintel_test_{secrets.token_hex(6)}"
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            # FORCE: connections a failed test left open (an undisposed instance) don't block it.
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_instance(home, pg_db, monkeypatch):
    """The Dagster instance of deploy/dagster.postgres.yaml, pointed at the fresh database."""
    from mediaintel_dagster.instance import get_instance

    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY_YAML, dagster_home / "dagster.yaml")
    monkeypatch.setenv("MEDIAINTEL_PG_URL", f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{pg_db}")
    instance = get_instance()  # keeps the copied dagster.yaml (writes one only where none is)
    try:
        yield instance, pg_db
    finally:
        instance.dispose()


def test_sensor_runs_are_stored_in_postgres(pg_instance, home, media_dir):
    from dagster import AssetKey, DagsterRunStatus, build_sensor_context
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from mediaintel_dagster.definitions import build_defs
    from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource
    from mediaintel_dagster.sensors import inbox_sensor as sensor

    instance, dbname = pg_instance
    # A dead run is marked failed by run monitoring and retried from failure by run retries.
    assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert isinstance(instance.run_storage, PostgresRunStorage), type(instance.run_storage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage), type(instance.event_log_storage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage), type(instance.schedule_storage)
    assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"

    inbox = home / "inbox"
    copy_into(media_dir, ["clip.mp4", "speech.wav"], inbox)
    resources = {
        "inbox": LocalInboxResource(roots=[str(inbox)], settle_seconds=0),
        "lake": LakehouseResource(root=str(home / "lake")),
    }
    defs = build_defs(resources)

    # The real sensor, as the daemon evaluates it (partitioned run requests are resolved
    # against the job of the definitions, so those go into the context too).
    with build_sensor_context(instance=instance, cursor=None, resources=resources, definitions=defs) as ctx:
        result = sensor.evaluate_tick(ctx)
    requests = result.run_requests
    assert requests, result.skip_message
    assert sum(int(rr.tags["mediaintel/new_files"]) for rr in requests) == 2
    assert len({rr.run_key for rr in requests}) == len(requests)

    # A second tick from the cursor it returned sees nothing new.
    with build_sensor_context(instance=instance, cursor=result.cursor, resources=resources, definitions=defs) as ctx:
        again = sensor.evaluate_tick(ctx)
    assert not again.run_requests and "no new files" in (again.skip_message or "")

    job = defs.resolve_job_def("ingest_job")
    run_ids = []
    for rr in requests:
        res = job.execute_in_process(partition_key=rr.partition_key, instance=instance, tags=rr.tags)
        assert res.success
        run_ids.append(res.run_id)

    # The runs, read back through the instance...
    runs = {r.run_id: r for r in instance.get_runs()}
    assert set(runs) == set(run_ids)
    for rr, run_id in zip(requests, run_ids):
        run = runs[run_id]
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.job_name == "ingest_job"
        assert run.tags["mediaintel/trigger"] == "inbox_sensor"
        # The tags deploy/dagster.postgres.yaml's tag_concurrency_limits key on.
        date, shard = rr.partition_key.keys_by_dimension["date"], rr.partition_key.keys_by_dimension["shard"]
        assert run.tags["dagster/partition/shard"] == shard
        assert run.tags["dagster/partition/date"] == date

    # ...and straight from PostgreSQL.
    conn = _connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id, pipeline_name, status FROM runs")
            rows = cur.fetchall()
            assert {r[0] for r in rows} == set(run_ids)
            assert {(r[1], r[2]) for r in rows} == {("ingest_job", "SUCCESS")}
            cur.execute(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                "AND asset_key = %s",
                (AssetKey("media").to_string(),),
            )
            assert cur.fetchone()[0] == len(run_ids)
    finally:
        conn.close()

    # The materializations of `media` in the event log, one per run and window.
    latest = instance.get_latest_materialization_event(AssetKey("media"))
    assert latest is not None and latest.run_id in run_ids
    records = instance.fetch_materializations(AssetKey("media"), limit=100).records
    assert sorted(r.run_id for r in records) == sorted(run_ids)
    assert {r.partition_key for r in records} == {str(rr.partition_key) for rr in requests}
    assert sum(r.asset_materialization.metadata["new_media"].value for r in records) == 2

    # And the lake: both files are rows of `media`.
    media = resources["lake"].read("media").to_pylist()
    assert len(media) == 2, media
    assert sorted(os.path.basename(m["source_uri"]) for m in media) == ["clip.mp4", "speech.wav"]
    assert sorted(m["kind"] for m in media) == ["audio", "video"]
    assert resources["lake"].read("quarantine").num_rows == 0


# ---- the run queue: the daemon's QueuedRunCoordinator on PostgreSQL ------------------------

QUEUE_MAX_RUNS = 3  # the deploy file's 16, lowered so that 8 runs must queue


def _queue_yaml(dagster_home) -> None:
    """deploy/dagster.postgres.yaml as shipped, with max_concurrent_runs lowered (all else kept)."""
    import yaml

    cfg = yaml.safe_load(DEPLOY_YAML.read_text())
    assert cfg["concurrency"]["runs"]["max_concurrent_runs"] == 16
    cfg["concurrency"]["runs"]["max_concurrent_runs"] = QUEUE_MAX_RUNS
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(cfg))


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc: no psutil in this venv)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        out += kids
        todo += kids
    return out


def _reap(pids: list[int], timeout: float) -> None:
    """Wait for these processes to exit; kill those still there after ``timeout`` seconds."""
    import signal
    import time

    def alive(pid):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _location(instance):
    """pg_location served by a real code server (a subprocess), as the daemon loads a deployed
    code location: (workspace context, its repository). The code server and its run workers are
    reaped on exit, before the fixture drops the database (one still shutting down then
    retries a missing database and outlives the test)."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import PythonFileTarget

    import pg_location

    target = PythonFileTarget(python_file=pg_location.__file__, attribute="defs",
                              working_directory=os.path.dirname(pg_location.__file__), location_name="pg_location")
    with create_test_daemon_workspace_context(target, instance) as ctx:
        entry = next(iter(ctx.create_request_context().get_code_location_entries().values()))
        assert entry.code_location, entry.load_error
        yield ctx, next(iter(entry.code_location.get_repositories().values()))
        children = _descendants(os.getpid())
    _reap(children, timeout=30)


def _submit(instance, ctx, repo, job_name: str, shard: str, seconds: float) -> str:
    """One run of pg_location's ``job_name`` submitted to the queue, tagged as an inbox-sensor run."""
    import pg_location

    job_def, remote_job = getattr(pg_location, job_name), repo.get_full_job(job_name)
    run = instance.create_run_for_job(
        job_def=job_def, run_config={"ops": {op: {"config": {"seconds": seconds}} for op in job_def.graph.node_dict}},
        tags={"mediaintel/trigger": "inbox_sensor", "dagster/partition/shard": shard},
        remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin())
    instance.submit_run(run.run_id, ctx.create_request_context())
    return run.run_id


def _pump(instance, ctx, until, sample=None, timeout: float = 150) -> None:
    """Passes of the daemon's dequeue loop (QueuedRunCoordinator) until ``until()`` holds;
    ``sample(active runs)`` after each pass."""
    import time

    from dagster import DagsterRunStatus, RunsFilter
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    deadline = time.monotonic() + timeout
    try:
        while True:
            list(daemon.run_iteration(ctx))
            if sample is not None:
                sample(instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])))
            if until():
                return
            assert time.monotonic() < deadline, {r.run_id: r.status for r in instance.get_runs()}
            time.sleep(0.3)
    finally:
        daemon.__exit__(None, None, None)


def _run_queued(instance, job_name: str, shards: list[str], seconds: float, sample=None, timeout: float = 150):
    """One run of pg_location's ``job_name`` per shard, submitted at once (inbox-sensor tags),
    queued in PostgreSQL and dequeued by the daemon's run coordinator as real runs (code
    server and run worker subprocesses) until all have ended. Returns the run ids, in order."""
    from dagster import DagsterRunStatus

    ended = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    with _location(instance) as (ctx, repo):
        run_ids = [_submit(instance, ctx, repo, job_name, shard, seconds) for shard in shards]
        assert {instance.get_run_by_id(i).status for i in run_ids} == {DagsterRunStatus.QUEUED}
        _pump(instance, ctx, lambda: all(instance.get_run_by_id(i).status in ended for i in run_ids), sample, timeout)
    return run_ids


def test_queued_runs_respect_the_run_and_shard_limits(pg_instance, home):
    """Eight runs submitted at once (inbox-sensor runs of shards 0,0,0,1,1,2,3,3) are queued
    in PostgreSQL and dequeued by the daemon's run coordinator as real runs (code server
    and run worker subprocesses): never more than 3 in progress, never two of one shard."""
    from dagster import DagsterInstance, DagsterRunStatus

    shipped, _ = pg_instance
    _queue_yaml(home / "dagster")
    instance = DagsterInstance.get()  # the same database, the lowered run limit
    try:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == QUEUE_MAX_RUNS
        assert {lim["key"] for lim in queue.tag_concurrency_limits} == {"mediaintel/trigger", "dagster/partition/shard"}
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 2 and str(pools.pool_granularity).lower().endswith("op")

        shards = ["0", "0", "0", "1", "1", "2", "3", "3"]
        seen = {"peak": 0, "samples": 0}

        def sample(active):
            seen["samples"] += 1
            if len(active) > seen["peak"]:
                print(f"in progress: {sorted(r.tags['dagster/partition/shard'] for r in active)}")
            seen["peak"] = max(seen["peak"], len(active))
            assert len(active) <= QUEUE_MAX_RUNS, [r.tags for r in active]
            for shard in set(shards):
                n = sum(r.tags["dagster/partition/shard"] == shard for r in active)
                assert n <= 1, f"two runs of shard {shard} at once"

        run_ids = _run_queued(instance, "hold_job", shards, 5.0, sample)
        records = {r.dagster_run.run_id: r for r in instance.get_run_records()}
        assert {records[i].dagster_run.status for i in run_ids} == {DagsterRunStatus.SUCCESS}
        # From the start and end times PostgreSQL recorded: the most runs ever in flight together.
        spans = [(records[i].start_time, records[i].end_time, records[i].dagster_run.tags["dagster/partition/shard"])
                 for i in run_ids]
        overlap = max(sum(s <= t < e for s, e, _ in spans) for t, _, _ in spans)
        same_shard = max(sum(s <= t < e and sh == shard for s, e, sh in spans) for t, _, shard in spans)
        print(f"\nrun queue on PostgreSQL: {len(run_ids)} runs, limit {QUEUE_MAX_RUNS}: peak {seen['peak']} in "
              f"progress ({seen['samples']} samples), {overlap} overlapping by recorded times, at most {same_shard} "
              f"per shard")
        assert overlap <= QUEUE_MAX_RUNS and same_shard == 1
        assert seen["peak"] == QUEUE_MAX_RUNS, "the queue filled the limit (else the limit was not exercised)"
    finally:
        instance.dispose()


def test_gpu_steps_wait_for_a_slot_of_the_gpu_pool(pg_instance, home):
    """The GPU pool caps GPU steps across runs: with `gpu` set to 1 slot (as `dagster instance
    concurrency set gpu 1` would), three runs in progress at once run their GPU step one at a
    time, by the step times PostgreSQL recorded; the steps that waited say so in their run's
    events, and every run succeeds."""
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    from mediaintel_dagster.jobs import GPU_POOL

    _queue_yaml(home / "dagster")
    instance = DagsterInstance.get()
    try:
        instance.event_log_storage.set_concurrency_slots(GPU_POOL, 1)
        seen = {"peak": 0}
        run_ids = _run_queued(instance, "gpu_hold_job", ["0", "1", "2"], 3.0,
                              lambda active: seen.__setitem__("peak", max(seen["peak"], len(active))))
        assert {instance.get_run_by_id(i).status for i in run_ids} == {DagsterRunStatus.SUCCESS}
        spans, waited = [], 0
        for i in run_ids:
            events = instance.all_logs(i)
            gpu = [e for e in events if e.step_key == "gpu_hold"]
            start = next(e.timestamp for e in gpu if e.dagster_event_type == DagsterEventType.STEP_START)
            end = next(e.timestamp for e in gpu if e.dagster_event_type == DagsterEventType.STEP_SUCCESS)
            spans.append((start, end))
            waited += any(GPU_POOL in (e.user_message or "") and "block" in (e.user_message or "").lower()
                          for e in gpu if e.dagster_event_type == DagsterEventType.ENGINE_EVENT)
        overlap = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
        print(f"\ngpu pool on PostgreSQL: 3 runs, {seen['peak']} in progress at the peak, GPU steps overlapping: "
              f"{overlap}, steps that waited for a slot: {waited}")
        assert seen["peak"] >= 2, "the runs were in progress together (else the pool was not exercised)"
        assert overlap == 1, spans
        assert waited >= 1
    finally:
        instance.dispose()


def test_a_run_whose_worker_was_killed_is_marked_failed_and_retried(pg_instance, home):
    """kill -9 of a run worker (the out-of-memory killer's way) left the run STARTED for ever:
    DefaultRunLauncher has no health check for run monitoring. With LocalRunLauncher (the
    shipped config) the monitoring daemon's pass marks it failed, naming the dead worker, and
    the run-retry daemon's pass starts it again from failure; the retry succeeds."""
    import logging
    import signal
    import time

    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
    from dagster._core.launcher import WorkerStatus
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import consume_new_runs_for_automatic_reexecution
    from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

    from mediaintel_dagster.launcher import LocalRunLauncher, process_alive

    _queue_yaml(home / "dagster")
    instance = DagsterInstance.get()
    log = logging.getLogger("test-run-monitoring")
    try:
        assert isinstance(instance.run_launcher, LocalRunLauncher) and instance.run_monitoring_enabled
        with _location(instance) as (ctx, repo):
            run_id = _submit(instance, ctx, repo, "dying_job", "0", 300.0)

            def started():
                # The event is stored before the run's status moves to STARTED: wait for both.
                return instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED and \
                    instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START, limit=1).records

            _pump(instance, ctx, started)
            pid = started()[0].event_log_entry.dagster_event.pid
            run = instance.get_run_by_id(run_id)
            assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
            list(execute_run_monitoring_iteration(ctx, log))
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED, "a live worker is left alone"

            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while process_alive(pid):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            list(execute_run_monitoring_iteration(ctx, log))
            failed = instance.get_run_by_id(run_id)
            assert failed.status == DagsterRunStatus.FAILURE, [e.message for e in instance.all_logs(run_id)][-4:]
            said = [e.message for e in instance.all_logs(run_id) if e.message]
            assert any(f"run worker process {pid} is gone" in m for m in said), said[-3:]

            list(consume_new_runs_for_automatic_reexecution(ctx, [instance.get_run_record_by_id(run_id)], log))
            (retry,) = instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": run_id}))
            _pump(instance, ctx, lambda: instance.get_run_by_id(retry.run_id).status in
                  (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE))
            assert instance.get_run_by_id(retry.run_id).status == DagsterRunStatus.SUCCESS, \
                [e.message for e in instance.all_logs(retry.run_id)][-4:]
            print(f"\nrun {run_id[:8]}: worker {pid} killed -> FAILURE by run monitoring -> retry "
                  f"{retry.run_id[:8]} (retry_number {retry.tags.get('dagster/retry_number')}) SUCCESS")
    finally:
        instance.dispose()
