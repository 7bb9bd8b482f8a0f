"""Sensor -> runs -> rows on a real Dagster instance, idempotent reruns, quarantine."""

from __future__ import annotations

import os
import shutil
import time

from dagster import DagsterRunStatus, RunsFilter, build_sensor_context

from mediaintel_dagster.definitions import build_defs
from mediaintel_dagster.instance import get_instance
from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource
from mediaintel_dagster.sensors import inbox_sensor
from conftest import copy_into, make_bad_files

GOOD = ["clip.mp4", "silent.mkv", "speech.wav", "poster.png", "photo.jpg"]


def _resources(home, settle=0.0):
    return {
        "inbox": LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=settle),
        "lake": LakehouseResource(root=str(home / "lake")),
    }


def _tick(instance, resources, cursor=None):
    ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = inbox_sensor(ctx)
    return result.run_requests or [], result.cursor


def _run_all(instance, resources, requests):
    job = build_defs(resources).resolve_job_def("ingest_job")
    results = []
    for rr in requests:
        res = job.execute_in_process(partition_key=rr.partition_key, instance=instance,
                                     tags={**rr.tags, "dagster/run_key": rr.run_key or ""})
        assert res.success
        results.append(res)
    return results


def _snapshot(lake: LakehouseResource) -> dict:
    out = {}
    for table, key in [("media", "media_id"), ("media_sources", "source_uri"), ("quarantine", "source_uri")]:
        out[table] = sorted(lake.read(table).to_pylist(), key=lambda r: r[key])
    return out


def test_sensor_runs_rows(home, media_dir):
    instance = get_instance()
    resources = _resources(home)
    copy_into(media_dir, GOOD, home / "inbox")
    shutil.copy2(media_dir / "clip.mp4", home / "inbox" / "clip_copy.mp4")  # an exact copy

    requests, cursor = _tick(instance, resources)
    files = list(resources["inbox"].list_files())
    windows = {str(f.partition_key()) for f in files}
    assert {r.partition_key for r in requests} == windows, "one run per window that got files"
    assert len({r.run_key for r in requests}) == len(requests)
    _run_all(instance, resources, requests)

    lake = resources["lake"]
    media = {r["source_uri"].rsplit("/", 1)[1]: r for r in lake.read("media").to_pylist()}
    assert len(media) == 5, "the exact copy is the same media"
    kinds = {name: r["kind"] for name, r in media.items()}
    assert kinds.get("clip.mp4", kinds.get("clip_copy.mp4")) == "video"
    assert kinds["speech.wav"] == "audio" and kinds["poster.png"] == "image"
    sources = lake.read("media_sources").to_pylist()
    assert len(sources) == 6
    clip_ids = {r["media_id"] for r in sources if "clip" in r["source_uri"]}
    assert len(clip_ids) == 1
    assert {r["source_uri"] for r in sources} == {str(home / "inbox" / f) for f in GOOD + ["clip_copy.mp4"]}

    # The runs are in the instance, tagged with their partitions, and successful.
    runs = instance.get_runs(RunsFilter(job_name="ingest_job"))
    assert len(runs) == len(requests) and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert {r.tags["dagster/partition"] for r in runs} == windows

    # audit_log: one 'written' media row per new media, with run ids of those runs.
    audit = [r for r in lake.read("audit_log").to_pylist() if r["table_name"] == "media"]
    assert sorted(r["media_id"] for r in audit) == sorted(r["media_id"] for r in media.values())
    assert {r["run_id"] for r in audit} <= {r.run_id for r in runs}
    assert all(r["delta_version"] is not None and r["code_version"] == "media@2" for r in audit)

    # Next tick: nothing new. A new file: only its window. A restarted sensor (no cursor)
    # asks for the same run keys again, which the daemon dedups.
    again, cursor2 = _tick(instance, resources, cursor)
    assert again == []
    time.sleep(0.01)
    shutil.copy(media_dir / "speech.wav", home / "inbox" / "late.wav")
    late, _ = _tick(instance, resources, cursor2)
    assert len(late) == 1
    late_file = next(f for f in resources["inbox"].list_files() if f.source_uri.endswith("late.wav"))
    assert late[0].partition_key == str(late_file.partition_key())
    os.remove(home / "inbox" / "late.wav")
    replay, _ = _tick(instance, resources, None)
    assert {r.run_key for r in replay} == {r.run_key for r in requests}


def test_sensor_waits_for_files_still_being_written(home, media_dir):
    instance = get_instance()
    resources = _resources(home, settle=60)
    copy_into(media_dir, ["poster.png"], home / "inbox")
    fresh = home / "inbox" / "poster.png"
    os.utime(fresh)  # just written
    requests, cursor = _tick(instance, resources)
    assert requests == []
    old = time.time() - 120
    os.utime(fresh, (old, old))  # the copy finished two minutes ago
    requests, _ = _tick(instance, resources, cursor)
    assert len(requests) == 1


def test_rerun_is_idempotent(home, media_dir):
    instance = get_instance()
    resources = _resources(home)
    copy_into(media_dir, GOOD, home / "inbox")
    make_bad_files(home / "inbox" / "bad", media_dir / "clip.mp4")
    requests, _ = _tick(instance, resources)
    _run_all(instance, resources, requests)
    # The dangling link is 'unreadable', a retryable error: the retry rule tries it again on
    # the next runs until it was quarantined max_attempts (3) times; then nothing changes.
    _run_all(instance, resources, requests)
    _run_all(instance, resources, requests)
    lake = resources["lake"]
    first = _snapshot(lake)
    versions = {t: lake.version(t) for t in ("media", "media_sources", "quarantine")}

    results = _run_all(instance, resources, requests)
    assert _snapshot(lake) == first, "a rerun leaves every table identical"
    assert {t: lake.version(t) for t in versions} == versions, "and writes nothing"
    def total(asset, name):
        return sum(e.materialization.metadata[name].value for res in results
                   for e in res.get_asset_materialization_events() if e.asset_key.path == [asset])

    # Nothing re-hashed, nothing re-probed, bad files not retried.
    assert total("media_sources", "unchanged_files") == len(GOOD)
    assert total("media", "already_done_media") == len(GOOD)
    assert total("media_sources", "still_quarantined") == 5
    assert total("media", "bytes_hashed") == 0 and total("media", "new_media") == 0

    # force redoes the work: same rows, same counts.
    job = build_defs(resources).resolve_job_def("ingest_job")
    for rr in requests:
        assert job.execute_in_process(partition_key=rr.partition_key, instance=instance,
                                      run_config={"ops": {"media_assets": {"config": {"force": True}}}}).success
    forced = _snapshot(lake)
    strip = lambda snap: {t: [{k: v for k, v in r.items() if k not in ("ingested_at", "seen_at", "run_id", "attempts")}
                              for r in rows] for t, rows in snap.items()}
    assert strip(forced) == strip(first)


def test_bad_input_is_quarantined_and_the_rest_goes_on(home, media_dir):
    instance = get_instance()
    resources = _resources(home)
    copy_into(media_dir, GOOD, home / "inbox")
    expected = make_bad_files(home / "inbox", media_dir / "clip.mp4")
    requests, _ = _tick(instance, resources)
    results = _run_all(instance, resources, requests)  # every run succeeds

    lake = resources["lake"]
    q = {r["source_uri"].rsplit("/", 1)[1]: r for r in lake.read("quarantine").to_pylist()}
    assert {n: r["error_type"] for n, r in q.items()} == expected
    assert all(r["stage"] == "media" and r["message"] and r["seen_at"] for r in q.values())
    assert lake.read("media").num_rows == len(GOOD)
    counted = sum(e.materialization.metadata["quarantined"].value for res in results
                  for e in res.get_asset_materialization_events() if e.asset_key.path == ["media"])
    assert counted == len(expected)
    audit = [r for r in lake.read("audit_log").to_pylist() if r["status"] == "quarantined"]
    assert sorted(r["source_uri"] for r in audit) == sorted(r["source_uri"] for r in q.values())

    # The broken upload is replaced by the real file: the next run ingests it and the
    # quarantine row goes away.
    shutil.copy(media_dir / "clip.mp4", home / "inbox" / "cut_in_half.mp4")
    fixed = next(f for f in resources["inbox"].list_files() if f.source_uri.endswith("cut_in_half.mp4"))
    job = build_defs(resources).resolve_job_def("ingest_job")
    assert job.execute_in_process(partition_key=str(fixed.partition_key()), instance=instance).success
    q_after = {r["source_uri"].rsplit("/", 1)[1] for r in lake.read("quarantine").to_pylist()}
    assert "cut_in_half.mp4" not in q_after and len(q_after) == len(expected) - 1


def test_window_rerun_finds_files_ingested_from_outside_the_inbox(home, media_dir, tmp_path):
    """`mediaintel process /elsewhere` then a UI backfill of that window: the files are found."""
    instance = get_instance()
    outside = tmp_path / "elsewhere"
    copy_into(media_dir, ["clip.mp4", "speech.wav"], outside)
    via_cli = {"inbox": LocalInboxResource(roots=[str(outside)], settle_seconds=0),
               "lake": LakehouseResource(root=str(home / "lake"))}
    windows = {str(f.partition_key()) for f in via_cli["inbox"].list_files()}
    job = build_defs(via_cli).resolve_job_def("ingest_job")
    for key in windows:
        assert job.execute_in_process(partition_key=key, instance=instance).success
    first = _snapshot(via_cli["lake"])

    # The default inbox (empty) with force: the window's recorded files are re-probed.
    ui = _resources(home)
    job = build_defs(ui).resolve_job_def("ingest_job")
    new_media = 0
    for key in windows:
        res = job.execute_in_process(partition_key=key, instance=instance,
                                     run_config={"ops": {"media_assets": {"config": {"force": True}}}})
        new_media += sum(e.materialization.metadata["new_media"].value
                         for e in res.get_asset_materialization_events() if e.asset_key.path == ["media"])
    assert new_media == 2
    assert len(_snapshot(ui["lake"])["media"]) == len(first["media"]) == 2
