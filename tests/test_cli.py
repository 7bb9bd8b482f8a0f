"""Each CLI command, run as a user runs it: the installed `mediaintel` script in a subprocess."""

from __future__ import annotations

import csv
import io
import json

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from conftest import copy_into, make_bad_files, run_cli
from mediaintel_dagster.cli import EXIT_INPUT_QUARANTINED


@pytest.mark.slow
def test_process_then_sql(home, media_dir, tmp_path):
    src = tmp_path / "drop"
    copy_into(media_dir, ["clip.mp4", "speech.wav", "poster.png"], src)
    make_bad_files(src / "bad", media_dir / "clip.mp4")
    proc = run_cli("process", str(src), str(media_dir / "photo.jpg"))
    # The five bad files never became media: exit 3 says so (nothing was lost after ingest).
    assert proc.returncode == EXIT_INPUT_QUARANTINED, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["files"] == 9 and not summary["failed"]
    assert summary["quarantined_at_ingest"] == 5 and summary["lost_after_ingest"] == 0
    assert sorted(f["file"] for f in summary["losses"]["media"]["files"]) == sorted(
        ["zero.mp4", "cut_in_half.mp4", "readme.mp4", "random.bin", "dangling.mp4"])
    assert "window" in proc.stderr  # progress went to stderr
    assert "quarantined by media: 5" in proc.stderr  # and what was lost, by file

    # The runs are in the persistent instance under DAGSTER_HOME, so `dagster dev` shows them.
    instance = DagsterInstance.from_config(str(home / "dagster"))
    runs = instance.get_runs()
    assert len(runs) == summary["runs"] and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert all(r.tags.get("mediaintel/trigger") == "cli" for r in runs)

    q = run_cli("sql", "SELECT kind, count(*) AS n FROM media GROUP BY kind ORDER BY kind", "--json")
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout) == [{"kind": "audio", "n": 1}, {"kind": "image", "n": 2}, {"kind": "video", "n": 1}]

    # source_uri is where the file was found, as found.
    q = run_cli("sql", "SELECT source_uri FROM media_sources ORDER BY 1", "--csv")
    uris = [r[0] for r in list(csv.reader(io.StringIO(q.stdout)))[1:]]
    assert uris == sorted([str(src / "clip.mp4"), str(src / "speech.wav"), str(src / "poster.png"),
                           str(media_dir / "photo.jpg")])

    # Lineage: which run wrote each media row, joined through audit_log.
    q = run_cli("sql", "SELECT m.media_id, a.run_id, a.code_version FROM media m JOIN audit_log a "
                "ON a.media_id = m.media_id AND a.table_name = 'media'", "--json")
    rows = json.loads(q.stdout)
    assert len(rows) == 4 and {r["run_id"] for r in rows} <= {r.run_id for r in runs}

    q = run_cli("sql", "SELECT error_type, count(*) AS n FROM quarantine GROUP BY 1 ORDER BY 1", "--json")
    assert {r["error_type"]: r["n"] for r in json.loads(q.stdout)} == {
        "empty_file": 1, "not_media": 2, "truncated": 1, "unreadable": 1}

    # Time travel: the media table as of its first version (before any rows).
    q = run_cli("sql", "SELECT count(*) AS n FROM media", "--as-of", "media=0", "--json")
    assert json.loads(q.stdout) == [{"n": 0}]

    # A plain-text table for people, and a clear error for bad SQL.
    q = run_cli("sql", "SELECT media_id, kind FROM media ORDER BY media_id")
    assert q.stdout.splitlines()[0].split() == ["media_id", "kind"] and "(4 rows)" in q.stdout
    bad = run_cli("sql", "SELECT nope FROM media")
    assert bad.returncode == 1 and "nope" in bad.stderr and "Traceback" not in bad.stderr

    # Processing the same paths again is a no-op for the tables.
    before = run_cli("sql", "SELECT * FROM media ORDER BY media_id", "--json").stdout
    again = run_cli("process", str(src), str(media_dir / "photo.jpg"), "--quiet")
    assert again.returncode == EXIT_INPUT_QUARANTINED  # still lost: a script is told every time
    assert run_cli("sql", "SELECT * FROM media ORDER BY media_id", "--json").stdout == before


def test_process_missing_path_is_a_clear_error(home):
    proc = run_cli("process", str(home / "nope.mp4"))
    assert proc.returncode != 0 and "no such file or folder" in proc.stderr


@pytest.mark.slow
def test_demo(home):
    proc = run_cli("demo", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "== Media" in out and "== Quarantine" in out
    assert "newsroom.mp4" in out and "interview" in out and "poster.png" in out
    assert "broken_upload.mp4" in out and "truncated" in out
    media = json.loads(run_cli("sql", "SELECT kind, has_audio FROM media ORDER BY kind", "--json").stdout)
    assert [m["kind"] for m in media] == ["audio", "image", "video"]
    assert media[2]["has_audio"] is True

    # Every stage ran on the demo's media: shots of the newsroom video with their captions
    # read, speech transcribed, and vectors for spoken and on-screen text.
    counts = {r["t"]: r["n"] for r in json.loads(run_cli("sql", (
        "SELECT 'scenes' AS t, count(*) AS n FROM scenes UNION ALL SELECT 'segments', count(*) FROM "
        "transcript_segments UNION ALL SELECT 'ocr', count(*) FROM ocr_text"), "--json").stdout)}
    assert counts["scenes"] == 6 and counts["segments"] >= 2 and counts["ocr"] >= 6, counts

    # Search: the caption and the narration about the weather, best first, with times.
    hits = json.loads(run_cli("search", "weather forecast", "--k", "3", "--json").stdout)
    assert {"media_id", "source_uri", "item_kind", "start_s", "end_s", "score"} <= set(hits[0])
    assert hits[0]["item_kind"] == "ocr" and hits[0]["text"] == "WEATHER TODAY"
    assert hits[0]["source_uri"].endswith("newsroom.mp4") and 4.0 < hits[0]["start_s"] < 5.5
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    spoken = json.loads(run_cli("search", "a new shop is opening", "--kind", "segment", "--json").stdout)
    assert spoken[0]["source_uri"].endswith("interview.wav") and "store" in spoken[0]["text"]
    assert {h["item_kind"] for h in spoken} == {"segment"}
    empty = run_cli("search", "  ")
    assert empty.returncode == 2 and "empty query" in empty.stderr


@pytest.mark.slow
def test_two_process_calls_at_once_on_a_fresh_instance(home, tmp_path, lake, monkeypatch):
    """Two `mediaintel process` of the same folder started together on a fresh instance:
    both create the SQLite storages' tables (without the init lock one crashed with "table
    run_tags already exists"), and both run the same window, which is computed once (the
    window lock): the second run finds every stage done."""
    import subprocess
    from collections import Counter

    from conftest import REPO, VENV_BIN
    from mediaintel_dagster.media.samples import make_image

    monkeypatch.setenv("MEDIAINTEL_SHARDS", "1")  # both files in one window: one run per call
    make_image(tmp_path / "drop" / "card.png", "CARD", size=(160, 90))
    make_image(tmp_path / "drop" / "sign.png", "SIGN", size=(160, 90), background=(120, 30, 30))
    procs = [subprocess.Popen([str(VENV_BIN / "mediaintel"), "process", "-q", str(tmp_path / "drop")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "Traceback" not in err, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["runs"] == 1
    runs = DagsterInstance.from_config(str(home / "dagster")).get_runs()
    assert len(runs) == 2 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    written = Counter((r["asset"], r["media_id"]) for r in lake.read("audit_log").to_pylist()
                      if r["status"] == "written")
    assert written and set(written.values()) == {1}, written  # each stage did each media once
    assert {a for a, _ in written} >= {"media", "scenes", "ocr_text", "scene_embeddings"}


@pytest.mark.slow
def test_a_run_whose_process_was_killed_is_marked_failed_by_the_next_call(home, tmp_path):
    """kill -9 mid-run left the run STARTED for ever (no daemon watches in-process runs);
    the next `process` marks it failed, says so, and redoes the window."""
    import os
    import signal
    import subprocess
    import time

    from dagster import RunsFilter

    from conftest import REPO, VENV_BIN
    from mediaintel_dagster.instance import get_instance
    from mediaintel_dagster.media.samples import make_audio

    make_audio(tmp_path / "drop" / "talk.wav", "This is a long recording about the weather in the north. " * 6)
    cmd = [str(VENV_BIN / "mediaintel"), "process", "-q", str(tmp_path / "drop")]
    victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    instance_dir = str(home / "dagster")
    instance = get_instance()  # under the init lock: the CLI is creating the same storages
    deadline = time.monotonic() + 240
    started = None
    while time.monotonic() < deadline and victim.poll() is None:
        runs = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        if runs:
            started = runs[0]
            break
        time.sleep(0.2)
    assert started is not None, "the run never started"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(30)
    assert DagsterInstance.from_config(instance_dir).get_run_by_id(started.run_id).status == DagsterRunStatus.STARTED

    again = run_cli("process", str(tmp_path / "drop"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"run {started.run_id}" in again.stderr and "marked failed" in again.stderr
    instance = DagsterInstance.from_config(instance_dir)
    assert instance.get_run_by_id(started.run_id).status == DagsterRunStatus.FAILURE
    newest = instance.get_runs(limit=1)[0]
    assert newest.run_id != started.run_id and newest.status == DagsterRunStatus.SUCCESS


@pytest.mark.slow
def test_redrive_retries_dead_letters_once_their_cause_is_fixed(home, tmp_path, monkeypatch, lake):
    """A permanent error waits for a change of input or code; when its cause was fixed
    elsewhere (here, a raised size limit), redrive retries it once, from the CLI or from
    redrive_job plus redrive_sensor in the UI."""
    from dagster import build_sensor_context

    from mediaintel_dagster.media.samples import make_image
    from mediaintel_dagster.sensors import redrive_sensor

    img = make_image(tmp_path / "drop" / "poster.png", "POSTER", size=(320, 180))
    monkeypatch.setenv("MEDIAINTEL_MAX_FILE_BYTES", "1000")
    first = run_cli("process", "-q", str(tmp_path / "drop"))
    assert first.returncode == EXIT_INPUT_QUARANTINED
    (row,) = lake.read("quarantine").to_pylist()
    assert row["error_type"] == "too_large" and not row["retryable"]
    # A plain rerun leaves it where it is: nothing changed, and the error is permanent.
    monkeypatch.delenv("MEDIAINTEL_MAX_FILE_BYTES")
    assert run_cli("process", "-q", str(tmp_path / "drop")).returncode == EXIT_INPUT_QUARANTINED

    bad = run_cli("redrive", "--error-type", "too_big")
    assert bad.returncode != 0 and "too_large" in bad.stderr and "Traceback" not in bad.stderr
    dry = run_cli("redrive", "--error-type", "too_large", "--dry-run")
    assert dry.returncode == 0 and json.loads(dry.stdout.splitlines()[-1])["marked"] == 1
    assert lake.read("quarantine").to_pylist()[0]["redrive_requested_at"] is None  # a dry run marks nothing

    # The UI's way: the sensor requests a run of the marked row's window, once per mark.
    lake.request_redrive(error_type="too_large")
    requests = redrive_sensor(build_sensor_context(resources={"lake": lake})).run_requests
    assert [r.partition_key for r in requests] == [row["arrival_partition"]]
    assert requests[0].run_key.startswith(f"redrive:{row['arrival_partition']}:")

    out = run_cli("redrive", "--error-type", "too_large")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.splitlines()[-1])
    assert summary["marked"] == 1 and summary["runs"] == 1 and summary["losses"] == {}
    assert lake.read("quarantine").num_rows == 0
    (media,) = lake.read("media").to_pylist()
    assert media["source_uri"] == str(img) and media["kind"] == "image"
    after = redrive_sensor(build_sensor_context(resources={"lake": lake}))
    assert "nothing marked" in after.skip_message  # the row is gone: nothing left to request
