"""A hostile inbox: every kind of entry a real inbox receives beside good media.

``make_hostile_inbox(folder)`` builds it and returns {source_uri: expected outcome}, where
the outcome is an error_type (a quarantine row at ingest) or "media" (processed into rows).
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from mediaintel_dagster.media.files import source_uri_for
from mediaintel_dagster.media.samples import make_image

MAX_BYTES = 1_000_000  # the size limit the corpus is built for (MEDIAINTEL_MAX_FILE_BYTES)


def _deep_folder(base: Path, min_len: int) -> str:
    """The first folder of a chain whose path reaches ``min_len`` bytes, with a file inside,
    made with fd-relative calls (a path that long cannot be named in one system call)."""
    part = "d" * 200
    path = str(base)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while len(os.fsencode(path)) < min_len:
            os.mkdir(part, dir_fd=fd)
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            path = os.path.join(path, part)
        wfd = os.open("clip.mp4", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"\x00" * 1000)
        os.close(wfd)
    finally:
        os.close(fd)
    return path


def make_hostile_inbox(folder: Path) -> tuple[dict[str, str], list]:
    """The corpus; returns ({source_uri: expected}, [objects to keep alive, e.g. bound sockets])."""
    folder.mkdir(parents=True, exist_ok=True)
    expect: dict[str, str] = {}
    keep = []

    def add(path, outcome: str) -> None:
        expect[source_uri_for(os.fsdecode(path))] = outcome

    make_image(folder / "good.png", "GOOD FILE", size=(320, 180))
    add(folder / "good.png", "media")
    # A name that is not UTF-8: processed, and its source_uri finds the file again.
    raw = os.fsencode(folder) + b"/\xff\xfe-poster.png"
    make_image(Path(os.fsdecode(raw)), "RAW NAME", size=(320, 180), background=(30, 60, 120))
    add(raw, "media")

    os.mkfifo(folder / "pipe.mp4")  # a plain open() of it blocks for ever
    add(folder / "pipe.mp4", "not_a_file")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "socket.mp4"))
    keep.append(sock)
    add(folder / "socket.mp4", "not_a_file")
    os.symlink("/dev/zero", folder / "zero.mp4")  # reading it never ends
    add(folder / "zero.mp4", "not_a_file")
    if os.geteuid() == 0:  # only root may make device nodes
        os.mknod(folder / "device.mp4", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        add(folder / "device.mp4", "not_a_file")

    os.symlink("loop_b.mp4", folder / "loop_a.mp4")
    os.symlink("loop_a.mp4", folder / "loop_b.mp4")
    add(folder / "loop_a.mp4", "bad_path")
    add(folder / "loop_b.mp4", "bad_path")
    os.symlink("gone.mp4", folder / "dangling.mp4")
    add(folder / "dangling.mp4", "unreadable")
    (folder / "linked_dir_target").mkdir()
    os.symlink(folder / "linked_dir_target", folder / "link_to_folder")
    add(folder / "link_to_folder", "not_a_file")

    (folder / "empty.mp4").write_bytes(b"")
    add(folder / "empty.mp4", "empty_file")
    junk = os.urandom(4096)
    for name in ("junk_1.mp4", "junk_2.mp4"):  # the same bad bytes twice: each row names its own file
        (folder / name).write_bytes(junk)
        add(folder / name, "not_media")
    with open(folder / "huge.mov", "wb") as fh:  # sparse: over the limit without writing it
        fh.truncate(MAX_BYTES * 3)
    add(folder / "huge.mov", "too_large")

    (folder / "deep").mkdir()
    deep = _deep_folder(folder / "deep", os.pathconf("/", "PC_PATH_MAX"))
    add(deep, "bad_path")  # the walk cannot list it: one row for the folder, naming why

    # Never media: skipped by name (counted, not quarantined).
    (folder / ".hidden.mp4").write_bytes(b"x")
    (folder / "upload.mp4.part").write_bytes(b"x")
    return expect, keep
