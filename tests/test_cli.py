"""Each CLI command, run as a user runs it: the installed `mediaintel` script in a subprocess.

One `mediaintel process` of real media and bad files (the ``processed`` module fixture) makes
the lake that sql, the shell, the reports and the error messages are tried on."""

from __future__ import annotations

import csv
import io
import json
import subprocess

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from conftest import REPO, VENV_BIN, copy_into, make_bad_files, run_cli, set_home
from mediaintel_dagster.cli import EXIT_INPUT_QUARANTINED, EXIT_USAGE


@pytest.fixture(scope="module")
def processed(tmp_path_factory, models_dir, media_dir):
    """A lake made by the CLI: a video with speech (also at a second location: an exact
    copy), a speech recording, two images and five bad files, processed once."""
    h = tmp_path_factory.mktemp("cli") / "mi"
    with pytest.MonkeyPatch.context() as mp:
        set_home(mp, h, models_dir)
        src = h.parent / "drop"
        copy_into(media_dir, ["clip.mp4", "speech.wav", "poster.png"], src)
        copy_into(media_dir, ["clip.mp4"], src / "again")  # the same bytes at a second location
        make_bad_files(src / "bad", media_dir / "clip.mp4")
        proc = run_cli("process", str(src), str(media_dir / "photo.jpg"))
        yield {"home": h, "src": src, "media_dir": media_dir, "proc": proc}


def _one_line_error(proc, *words):
    """A user's mistake: exit 2 and one line on stderr that names it, no traceback."""
    assert proc.returncode == EXIT_USAGE, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.slow
def test_process_then_sql(processed):
    home, src, media_dir, proc = processed["home"], processed["src"], processed["media_dir"], processed["proc"]
    # The five bad files never became media: exit 3 says so (nothing was lost after ingest).
    assert proc.returncode == EXIT_INPUT_QUARANTINED, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["files"] == 10 and not summary["failed"]
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
    assert uris == sorted([str(src / "clip.mp4"), str(src / "again" / "clip.mp4"), str(src / "speech.wav"),
                           str(src / "poster.png"), str(media_dir / "photo.jpg")])

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


@pytest.mark.slow
def test_reports_on_a_real_lake(processed):
    from mediaintel_dagster import reports

    con = reports.connect()  # the views `mediaintel sql` opens, on the fixture's lake

    def run(name):
        columns, data = reports.run(name, con)
        return [dict(zip(columns, r)) for r in data]

    (day,) = run("media-per-day")  # every file arrived today
    assert (day["media"], day["video"], day["audio"], day["image"]) == (4, 1, 1, 2) and day["hours"] > 0
    speech = {r["language"]: r for r in run("speech-by-language")}
    assert speech["en"]["media"] == 2 and speech["en"]["segments"] >= 2 and speech["en"]["hours"] > 0
    terms = {r["term"]: r for r in run("top-onscreen-terms")}
    # clip.mp4's two captions (at both locations: one media) and photo.jpg's
    assert {"first", "second", "photo"} <= set(terms) and terms["first"]["example"] == "FIRST"
    assert terms["first"]["media"] == 1 and all(len(t) >= 3 for t in terms)
    (cluster,) = run("duplicate-clusters")  # clip.mp4 twice: one media at two locations
    assert cluster["media"] == 1 and cluster["locations"] == 2 and cluster["methods"] == "exact_bytes"
    assert cluster["files"] == "clip.mp4"
    stages = run("slowest-stages")
    names = [r["stage"] for r in stages]
    assert {"scenes", "transcript_segments", "ocr_text", "text_embeddings"} <= set(names), names
    assert all(r["runs"] >= 1 and r["mean_s"] >= 0 and r["max_s"] >= r["mean_s"] for r in stages)
    assert [r["total_s"] for r in stages] == sorted((r["total_s"] for r in stages), reverse=True)
    quarantined = run("quarantine")
    assert sorted((r["file"], r["error_type"]) for r in quarantined) == sorted([
        ("zero.mp4", "empty_file"), ("cut_in_half.mp4", "truncated"), ("readme.mp4", "not_media"),
        ("random.bin", "not_media"), ("dangling.mp4", "unreadable")])
    assert all(r["stage"] == "media" and r["message"] and r["redrive_pending"] is False for r in quarantined)

    # The command line: --list, one report as JSON and as a table, its SQL, a wrong name.
    listed = json.loads(run_cli("report", "--list", "--json").stdout)
    assert [r["name"] for r in listed] == list(reports.REPORTS) and all(r["description"] for r in listed)
    out = run_cli("report", "quarantine", "--json")
    assert out.returncode == 0 and len(json.loads(out.stdout)) == 5
    table = run_cli("report", "media-per-day")
    assert table.returncode == 0 and table.stdout.startswith("== Media per arrival day") and "(1 row)" in table.stdout
    assert "FROM audit_log" in run_cli("report", "slowest-stages", "--sql").stdout
    _one_line_error(run_cli("report", "nope"), "unknown report", "media-per-day")


def _shell(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "mediaintel"), "sql", "--shell"], input=script, capture_output=True,
                          text=True, timeout=120, cwd=REPO)


@pytest.mark.slow
def test_sql_shell_reads_statements_from_stdin(processed):
    out = _shell(".tables\n"
                 "SELECT kind, count(*) AS n\n  FROM media\n  GROUP BY kind ORDER BY kind;\n"
                 ".schema media_sources\n"
                 ".mode json\n"
                 "SELECT count(*) AS n FROM quarantine; SELECT ';' AS semi;\n"
                 "CREATE VIEW seven AS SELECT 7 AS x;\n"
                 "SELECT * FROM seven;\n"
                 "SELECT nope FROM media;\n"
                 ".schema nope\n"
                 "SELECT 42 AS last\n")  # the last statement needs no ';' before Ctrl-D (end of input)
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 1  # piped input: a failed statement makes the exit code say so
    text = out.stdout
    assert "media_sources" in text and "audit_log" in text  # .tables
    assert [ln.split() for ln in text.splitlines() if ln.split()[:1] in (["audio"], ["video"])] == \
        [["audio", "1"], ["video", "1"]]  # the statement that spanned three lines
    assert "media_sources (source_uri VARCHAR, media_id VARCHAR" in text  # .schema
    assert '"n": 5' in text and '"semi": ";"' in text  # two statements on a line, json mode
    assert '"x": 7' in text and '"last": 42' in text  # one connection: the view lasted
    assert "nope" in out.stderr and out.stderr.count("error:") == 2  # the session went on after them
    clean = _shell("SELECT count(*) AS n FROM media;\n.quit\nSELECT 1/0;\n")
    assert clean.returncode == 0 and "(1 row)" in clean.stdout and clean.stderr == ""


@pytest.mark.slow
def test_user_mistakes_are_one_line_errors(processed):
    _one_line_error(run_cli("sql", "SELECT 1", "--as-of", "media=999"), "--as-of media=999", "versions 0 to")
    _one_line_error(run_cli("sql", "SELECT 1", "--as-of", "nope=1"), "unknown table", "nope")
    _one_line_error(run_cli("sql", "SELECT 1", "--as-of", "media=x"), "TABLE=VERSION")
    _one_line_error(run_cli("sql"), "--shell")
    for bad in (["--k", "-1"], ["--k", "0"], ["--k", "101"], ["--page", "0"], ["--min-score", "2"]):
        _one_line_error(run_cli("search", "x", *bad), bad[0])
    _one_line_error(run_cli("process", str(processed["home"] / "missing.mp4")), "no such file or folder")
    _one_line_error(run_cli("similar", "/no/such/file.mp4", "--k", "3"), "neither a media_id")
    # --debug: the same mistake with its traceback, for a bug report
    debug = run_cli("--debug", "sql", "SELECT 1", "--as-of", "media=999")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "UserError" in debug.stderr


@pytest.mark.slow
def test_quiet_means_quiet_and_the_clip_notice_is_one_line(processed):
    # The processing run built the CLIP embedder: no weights here, said once, in one line.
    err = processed["proc"].stderr
    assert err.count("CLIP weights are not installed") == 1, err[-3000:]
    assert "huggingface-cli download" not in err  # the install steps are in the docs, not on every run
    poster = str(processed["src"] / "poster.png")
    loud = run_cli("similar", poster, "--k", "2", "--json")
    assert loud.returncode == 0 and json.loads(loud.stdout)["media"], loud.stderr[-2000:]
    notice = [ln for ln in loud.stderr.splitlines() if "CLIP" in ln]
    assert len(notice) == 1 and len(notice[0]) < 300 and "docs/visual-models.md" in notice[0], loud.stderr
    for argv in (["similar", poster, "--k", "2", "--json", "-q"], ["-q", "report", "quarantine"],
                 ["sql", "-q", "SELECT 1"], ["duplicates", "-q"], ["redrive", "--dry-run", "-q"]):
        quiet = run_cli(*argv)
        assert quiet.returncode == 0 and quiet.stdout and quiet.stderr == "", (argv, quiet.stderr[-2000:])


def test_sql_and_help_import_neither_dagster_nor_torch(processed):
    """`sql`, `report` and `--help` answer without the orchestration and model stack (the
    seconds that `sql "select 1"` spent importing them)."""
    import sys

    code = ("import io, sys, contextlib\n"
            "from mediaintel_dagster.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    assert main(['sql', 'SELECT count(*) FROM media']) == 0\n"
            "    assert main(['report', 'media-per-day', '--json']) == 0\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'torch', 'transformers', 'lancedb'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


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
        assert "CLIP" not in err and "Loading weights" not in err, err[-3000:]  # -q: quiet
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
    if again.returncode != 0:  # seen once (2026-12-08, full suite only): say what the lake held
        from mediaintel_dagster.resources import LakehouseResource

        audit = [(r["asset"], r["status"], (r.get("run_id") or "")[:8], str(r["at"]))
                 for r in sorted(LakehouseResource(root=str(home / "lake")).read("audit_log").to_pylist(),
                                 key=lambda r: r["at"])]
        pytest.fail(f"exit {again.returncode}; killed run {started.run_id[:8]}; audit_log {audit}\n"
                    f"{again.stderr[-3000:]}")
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


@pytest.mark.slow
def test_sigkill_mid_write_leaves_every_table_readable_and_the_rerun_complete(home, tmp_path, media_dir):
    """`mediaintel process` killed with SIGKILL the moment a stage's data file lands in the
    lake (its commit in flight), three times at three stages: after each kill every table
    reads; then one more `process` completes, and every table holds exactly the rows a run
    that was never killed writes (compared table by table with bench.compare_lakes)."""
    import os
    import signal
    import time

    from deltalake import DeltaTable

    from mediaintel_dagster.bench.compare_lakes import compare

    drop = tmp_path / "drop"
    copy_into(media_dir, ["clip.mp4", "speech.wav", "poster.png"], drop)
    cmd = [str(VENV_BIN / "mediaintel"), "process", "-q", str(drop)]

    # The run that is never killed, in a home of its own.
    ref = tmp_path / "ref"
    env = {**os.environ, **{k: str(ref / sub) for k, sub in (
        ("MEDIAINTEL_HOME", ""), ("MEDIAINTEL_LAKE", "lake"), ("MEDIAINTEL_INBOX", "inbox"),
        ("MEDIAINTEL_OBJECTS", "objects"), ("DAGSTER_HOME", "dagster"), ("MEDIAINTEL_INDEX", "index"))}}
    clean = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert clean.returncode == 0, clean.stderr[-3000:]

    lake = home / "lake"

    def data_files(table):
        return {p for p in (lake / table).glob("*.parquet")} if (lake / table).exists() else set()

    kills = []
    for table in ("media", "scenes", "transcript_segments"):
        before = data_files(table)
        victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        deadline = time.monotonic() + 300
        while victim.poll() is None and time.monotonic() < deadline and data_files(table) <= before:
            time.sleep(0.005)
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
            kills.append(table)
        victim.wait(30)
        for t in (p.name for p in lake.iterdir() if (p / "_delta_log").is_dir()):
            DeltaTable(str(lake / t)).to_pyarrow_table()  # every table reads, whatever was in flight
    assert kills, "no kill landed: every run finished first"

    again = run_cli("process", str(drop), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    for row in compare(str(ref / "lake"), str(ref), str(lake), str(home)):
        if row["table"] in ("audit_log", "quarantine"):  # a killed run's partial audit rows stay, by design
            continue
        assert row["identical"], (kills, row["table"], row["differing_columns"], row["examples"])
