"""The code location loads, and carries what the UI shows: assets, partitions, job, sensor."""

from __future__ import annotations

import datetime as dt

from dagster import AssetKey, DefaultSensorStatus, MultiPartitionKey

from mediaintel_dagster import partitions
from mediaintel_dagster.definitions import defs


def test_defs_load():
    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    assert {AssetKey("media"), AssetKey("media_sources")} <= keys
    job = defs.resolve_job_def("ingest_job")
    assert job.partitions_def == partitions.arrival_partitions
    sensor = defs.resolve_sensor_def("inbox_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    media = defs.resolve_assets_def("media")
    assert media.code_versions_by_key[AssetKey("media")] == "media@2"
    assert "SHA-256" in media.specs_by_key[AssetKey("media")].description


def test_partition_rules(monkeypatch):
    # Dates from 2026: the rules hold for any start before them (the default start is recent).
    monkeypatch.setenv("MEDIAINTEL_PARTITION_START", "2024-01-01")
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
    ns = lambda y, m, d: int(dt.datetime(y, m, d, 10, tzinfo=dt.timezone.utc).timestamp() * 1e9)
    assert partitions.arrival_date(ns(2026, 5, 3), now) == dt.date(2026, 5, 3)
    # before the first window: the first window; in the future: when it was observed.
    assert partitions.arrival_date(ns(2001, 1, 1), now).isoformat() == partitions.arrival_partitions_def() \
        .partitions_defs[0].partitions_def.start.date().isoformat() == "2024-01-01"
    assert partitions.arrival_date(ns(2031, 1, 1), now) == dt.date(2026, 6, 1)
    # ... and stays there when the same file is listed again days later (its ctime is fixed)
    later = now + dt.timedelta(days=9)
    assert partitions.arrival_date(ns(2031, 1, 1), later, ctime_ns=ns(2026, 6, 1)) == dt.date(2026, 6, 1)
    # shards are stable and spread
    shards = {partitions.shard_of(f"/inbox/file{i}.mp4") for i in range(200)}
    assert shards == {"0", "1", "2", "3"}
    assert partitions.shard_of("/inbox/a.mp4") == partitions.shard_of("/inbox/a.mp4")
    key = partitions.partition_for("/inbox/a.mp4", ns(2026, 5, 3), now)
    assert isinstance(key, MultiPartitionKey)
    assert key.keys_by_dimension == {"date": "2026-05-03", "shard": partitions.shard_of("/inbox/a.mp4")}
    assert partitions.split_key(str(key)) == ("2026-05-03", partitions.shard_of("/inbox/a.mp4"))
