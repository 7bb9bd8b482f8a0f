"""The production instance config (deploy/dagster.postgres.yaml) against a real PostgreSQL.

Needs the server at 127.0.0.1:5432 (user postgres, trust auth, database `test`). Each run
works in a database of its own, created here and dropped at the end, so runs never collide.
Without a server the test is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

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
