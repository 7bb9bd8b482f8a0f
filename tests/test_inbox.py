"""A hostile inbox: every entry ends in rows or a quarantine row with its reason; nothing hangs,
crashes or is skipped in silence, and the command line says what was lost in its exit code."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from dagster import build_sensor_context, materialize

from conftest import run_cli
from hostile import MAX_BYTES, make_hostile_inbox
from mediaintel_dagster.cli import EXIT_INPUT_QUARANTINED, input_losses
from mediaintel_dagster.media.errors import ErrorCode, MediaError
from mediaintel_dagster.media.files import (display_name, hash_fd, hash_file, local_path, open_regular,
                                            source_uri_for, with_deadline)
from mediaintel_dagster.partitions import shard_of


def _code(fn) -> str:
    with pytest.raises(MediaError) as info:
        fn()
    return info.value.error_type


def test_names_that_are_not_utf8_keep_their_bytes(tmp_path):
    raw = os.fsencode(tmp_path) + b"/\xff\xfe caf\xe9.png"
    path = os.fsdecode(raw)
    with open(path, "wb") as fh:
        fh.write(b"x" * 10)
    uri = source_uri_for(path)
    uri.encode("utf-8")  # storable in a Delta string column
    assert uri.startswith("file://") and "%FF%FE" in uri
    assert os.fsencode(local_path(uri)) == raw and os.path.exists(local_path(uri))
    assert display_name(uri) == "\\xff\\xfe caf\\xe9.png"
    assert shard_of(uri) == shard_of(uri) and shard_of(path) in {"0", "1", "2", "3"}  # no UnicodeEncodeError
    plain = str(tmp_path / "plain name.mp4")
    assert source_uri_for(plain) == plain == local_path(plain)  # the common case stays a plain path


def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("code", _code(lambda: hash_file(str(fifo)))), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "opening a FIFO blocked"
    assert box["code"] == "not_a_file"
    os.symlink("/dev/zero", tmp_path / "zero.mp4")
    assert _code(lambda: open_regular(str(tmp_path / "zero.mp4"))) == "not_a_file"
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(MediaError) as loop:
        hash_file(str(tmp_path / "a"))
    assert loop.value.error_type == "bad_path" and "symbolic link loop" in loop.value.message
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(2_000_000)
    assert _code(lambda: hash_file(str(big), max_bytes=1_000_000)) == "too_large"


def test_a_stalled_read_times_out_and_is_retryable():
    r, w = os.pipe()  # a real read that blocks: the writer is open and sends nothing
    try:
        t0 = time.monotonic()
        with pytest.raises(MediaError) as info:
            with_deadline(lambda progress: hash_fd(r, progress), stall_s=0.5, what="reading", name="stuck.mp4")
        assert time.monotonic() - t0 < 5
        assert info.value.code is ErrorCode.READ_TIMEOUT and info.value.retryable
        assert "stuck.mp4" in info.value.message
    finally:
        os.close(w)  # lets the abandoned worker's read return
        time.sleep(0.1)
        os.close(r)


def test_files_that_change_or_vanish_while_read(tmp_path):
    growing = tmp_path / "growing.mp4"
    growing.write_bytes(os.urandom(3 << 20))

    def append(read_so_far):
        if read_so_far == 1 << 20:  # once, after the first chunk: a copy still being written
            with open(growing, "ab") as fh:
                fh.write(b"more")

    with pytest.raises(MediaError) as info:
        hash_file(str(growing), on_chunk=append)
    assert info.value.code is ErrorCode.CHANGED_WHILE_READ and info.value.retryable

    going = tmp_path / "going.mp4"
    going.write_bytes(os.urandom(3 << 20))
    assert _code(lambda: hash_file(str(going), on_chunk=lambda _: going.unlink(missing_ok=True))) \
        == "changed_while_read"
    steady = tmp_path / "steady.mp4"
    steady.write_bytes(b"y" * (3 << 20))
    assert hash_file(str(steady)).size_bytes == 3 << 20


@pytest.fixture
def hostile(home, monkeypatch):
    monkeypatch.setenv("MEDIAINTEL_MAX_FILE_BYTES", str(MAX_BYTES))
    monkeypatch.setenv("MEDIAINTEL_SHARDS", "1")  # fewer windows, fewer runs: the cases are what matter
    expect, keep = make_hostile_inbox(home / "inbox" / "drop")
    yield expect
    for s in keep:
        s.close()


def test_hostile_inbox_through_the_command_line(hostile, home, lake):
    expect = hostile
    proc = run_cli("process", "-q", str(home / "inbox"), timeout=540)
    assert proc.returncode == EXIT_INPUT_QUARANTINED, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["failed"] == [] and summary["skipped"] == 2  # .hidden.mp4 and upload.mp4.part
    assert summary["lost_after_ingest"] == 0 and summary["unaccounted"] == []

    quarantined = {r["source_uri"]: r for r in lake.read("quarantine").to_pylist()}
    media = {r["source_uri"]: r for r in lake.read("media").to_pylist()}
    outcome = {uri: quarantined[uri]["error_type"] if uri in quarantined else "media" if uri in media else "LOST"
               for uri in expect}
    assert outcome == expect  # every entry: its row or its reason, none lost
    assert all(r["stage"] == "media" and r["message"] for r in quarantined.values())
    # Each bad copy's message names its own file, not the copy that was probed.
    for name in ("junk_1.mp4", "junk_2.mp4"):
        row = next(r for u, r in quarantined.items() if u.endswith(name))
        assert name in row["message"] and ({"junk_1.mp4", "junk_2.mp4"} - {name}).pop() not in row["message"]
    assert "I/O error" not in " ".join(r["message"] for r in quarantined.values())

    # The report lists the same, by file.
    reported = {f["source_uri"]: f["error_type"] for f in summary["losses"]["media"]["files"]}
    assert reported == {u: e for u, e in expect.items() if e != "media"}
    assert summary["quarantined_at_ingest"] == len(reported)

    # The good files went through every stage; the non-UTF-8 one is found again by its source_uri.
    raw_uri = next(u for u in expect if u.startswith("file://"))
    assert os.path.isfile(local_path(raw_uri)) and raw_uri in media
    ocr = {r["media_id"]: r["text"] for r in lake.read("ocr_text").to_pylist()}
    assert "RAW NAME" in ocr.get(media[raw_uri]["media_id"], "")
    scenes = {r["media_id"] for r in lake.read("scenes").to_pylist()}
    assert {m["media_id"] for m in media.values()} <= scenes


def test_sensor_keeps_requesting_good_files_beside_hostile_ones(hostile, home):
    from mediaintel_dagster.instance import get_instance
    from mediaintel_dagster.resources import LocalInboxResource
    from mediaintel_dagster.sensors import inbox_sensor

    expect = hostile
    instance = get_instance()
    inbox = LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=0)
    resources = {"inbox": inbox}

    def tick(cursor):
        result = inbox_sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))
        return result.run_requests or [], result.cursor

    requests, cursor = tick(None)  # no exception: a bad name or a FIFO no longer stops the tick
    windows = {r.partition_key for r in requests}
    by_uri = {f.source_uri: str(f.partition_key()) for f in inbox.list_files()}
    assert set(by_uri) == set(expect)  # every entry listed, the over-long folder included
    assert {by_uri[u] for u in expect} <= windows  # each one's window requested, so each gets its row
    again, cursor = tick(cursor)
    assert again == []  # nothing new, nothing requested twice (the entries with no times included)
    # A good file arriving later beside them is still found.
    from mediaintel_dagster.media.samples import make_image

    make_image(home / "inbox" / "later.png", "LATER", size=(160, 90))
    later, cursor = tick(cursor)
    assert len(later) == 1 and int(later[0].tags["mediaintel/new_files"]) == 1


def test_losses_after_ingest_are_reported(home, lake):
    """A media that passed ingest and was then quarantined (its keyframe object vanished
    before OCR read it) is reported as lost after ingest, by stage and file."""
    from mediaintel_dagster.assets import media_assets, ocr_text, scenes
    from mediaintel_dagster.cli import EXIT_MEDIA_LOST
    from mediaintel_dagster.definitions import RESOURCES
    from mediaintel_dagster.media.samples import make_image
    from conftest import window_of

    img = make_image(home / "inbox" / "card.png", "HELLO", size=(160, 90))
    key = window_of(img)
    from mediaintel_dagster.resources import LocalInboxResource

    res = {**RESOURCES["local"](), "inbox": LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=0)}
    assert materialize([media_assets, scenes], partition_key=key, resources=res).success
    before = input_losses([str(img)])
    assert before["losses"] == {}
    # The stages that have not run yet are named: a media never sits between stages unseen.
    (gap,) = before["unaccounted"]
    assert gap["file"] == "card.png" and "ocr_text" in gap["stages"] and "scenes" not in gap["stages"]
    for jpg in (home / "objects").rglob("*.jpg"):
        jpg.unlink()
    run = materialize([ocr_text], partition_key=key, resources=res)
    assert run.success
    # The run says it too, in the materialization the UI (and a sensor's run) shows.
    meta = run.asset_materializations_for_node("ocr_text")[0].metadata
    assert meta["quarantined"].value == 1 and "| 0.jpg | missing_keyframe |" in meta["quarantined_files"].value
    losses = input_losses([str(img)])
    assert losses["lost_after_ingest"] == 1 and losses["quarantined_at_ingest"] == 0
    (row,) = losses["losses"]["ocr_text"]["files"]
    assert row["file"] == "card.png" and row["error_type"] == "missing_keyframe"
    assert EXIT_MEDIA_LOST == 4


def test_a_source_replaced_by_a_fifo_after_ingest_is_quarantined_not_waited_on(home, lake):
    from mediaintel_dagster.assets import media_assets, scenes
    from mediaintel_dagster.definitions import RESOURCES
    from mediaintel_dagster.media.samples import make_image
    from mediaintel_dagster.resources import LocalInboxResource
    from conftest import window_of

    img = make_image(home / "inbox" / "card.png", "HELLO", size=(160, 90))
    key = window_of(img)
    res = {**RESOURCES["local"](), "inbox": LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=0)}
    assert materialize([media_assets], partition_key=key, resources=res).success
    img.unlink()
    os.mkfifo(img)  # a decoder opening it would wait for a writer for ever
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "ok", materialize([scenes], partition_key=key, resources=res).success), daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), "the scenes stage blocked on a FIFO"
    assert box["ok"]
    (row,) = [r for r in lake.read("quarantine").to_pylist() if r["stage"] == "scenes"]
    assert row["error_type"] == "not_a_file" and "FIFO" in row["message"]


# Run in a fresh interpreter as root, which then drops to `nobody`: the venv under /root is
# closed to `nobody`, so everything is imported, and the walk run once, before setuid.
_LOCKED_WALK = """
import json, os, sys
from mediaintel_dagster.resources.inbox import LocalInboxResource
inbox = LocalInboxResource(roots=[sys.argv[1]])
list(inbox.list_files())
if os.geteuid() == 0:
    os.setuid(65534)
print(json.dumps([[f.source_uri, f.error] for f in inbox.list_files()]))
"""


def test_a_folder_the_walk_cannot_read_gets_a_row():
    """Permissions do not stop root, so where the test runs as root the listing runs as `nobody`.
    That runs in a fresh interpreter, not a fork of pytest: a fork of this many-threaded
    process (servers, LanceDB's event loop) can inherit a held lock and hang for ever, as it did
    in CI."""
    import shutil
    import subprocess
    import sys
    import tempfile

    base = tempfile.mkdtemp(prefix="mediaintel-perm-")
    locked = os.path.join(base, "locked")
    try:
        os.chmod(base, 0o755)
        os.mkdir(locked)
        with open(os.path.join(locked, "inside.mp4"), "wb") as fh:
            fh.write(b"x")
        os.chmod(locked, 0)
        out = subprocess.run([sys.executable, "-c", _LOCKED_WALK, base], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        (entry,) = json.loads(out.stdout)
        assert entry[0] == locked and entry[1][0] == "unreadable" and "permission denied" in entry[1][1]
    finally:
        os.chmod(locked, 0o755)
        shutil.rmtree(base)


def test_sensor_backpressure_holds_files_in_the_inbox(home, monkeypatch):
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test  # runs in progress, without running them

    from mediaintel_dagster.instance import get_instance
    from mediaintel_dagster.media.samples import make_image
    from mediaintel_dagster.resources import LocalInboxResource
    from mediaintel_dagster.sensors import inbox_sensor

    instance = get_instance()
    inbox = LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=0)
    make_image(home / "inbox" / "a.png", "A", size=(160, 90))

    def tick(cursor=None):
        return inbox_sensor(build_sensor_context(instance=instance, cursor=cursor, resources={"inbox": inbox}))

    monkeypatch.setenv("MEDIAINTEL_MAX_PENDING_RUNS", "2")
    for _ in range(2):
        create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.STARTED)
    held = tick("held-cursor")
    assert not held.run_requests and "backpressure: 2 runs queued or in progress" in held.skip_reason.skip_message
    assert held.cursor == "held-cursor"  # nothing marked seen: the file waits
    monkeypatch.setenv("MEDIAINTEL_MAX_PENDING_RUNS", "3")
    assert len(tick().run_requests) == 1

    # Room for one run, files in three windows: one window is requested, the others wait
    # (not marked seen) and are requested by later ticks as room frees; none is lost.
    from conftest import window_of

    files = [home / "inbox" / "a.png"]
    while len({window_of(p) for p in files}) < 3:  # windows are shards of a path hash
        files.append(home / "inbox" / f"w{len(files)}.png")
        make_image(files[-1], files[-1].stem, size=(160, 90))
    windows = {window_of(p) for p in files}
    first = tick()
    assert len(first.run_requests) == 1, "the room under the limit, not a run per window"
    requested = {str(first.run_requests[0].partition_key)}
    cursor = first.cursor
    monkeypatch.setenv("MEDIAINTEL_MAX_PENDING_RUNS", "5")  # room for two more
    later = tick(cursor)
    requested |= {str(r.partition_key) for r in later.run_requests}
    assert requested == windows and len(later.run_requests) == 2
