"""Reading what an inbox holds, safely: names as bytes, never a blocking open, every read with a deadline.

An inbox is hostile by nature. It receives FIFOs (``pipe.mp4`` hangs a plain ``open()`` for
ever), sockets, device files or links to them (``/dev/zero`` never ends), names that are not
valid UTF-8, paths longer than PATH_MAX, symlink loops, files still being written or
deleted while they are read, and files larger than anyone meant to process. Everything here
turns each of those into a :class:`MediaError` with its own code and a readable reason, so
the ingest stage writes a quarantine row and goes on with the files beside it.

Names. ``source_uri`` is the path as found when it is valid UTF-8 (the common case, what
users type). A name that is not valid UTF-8 cannot be stored in a Delta string column as it
is, and replacing its bad bytes would lose the way back to the file; it becomes a
``file://`` URI whose bytes outside unreserved ASCII are percent-encoded (RFC 8089/3986).
:func:`local_path` turns either form back into the exact bytes on disk, so ``source_uri``
always finds the file.

Deadlines. A read that stalls (a hung network mount, a device) blocks its thread inside the
kernel, where no Python code can interrupt it. Reads therefore run on a worker thread the
caller waits on with a deadline; a stalled worker is abandoned (a daemon thread, parked in
its read) and the file is quarantined as ``read_timeout``, which is retried on a later run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import ErrorCode, MediaError

CHUNK = 1 << 20
# A read that makes no progress for this long has stalled (MEDIAINTEL_READ_TIMEOUT_S).
DEFAULT_STALL_S = 60.0

T = TypeVar("T")


# ---- names -----------------------------------------------------------------------------

def source_uri_for(path: str) -> str:
    """The ``source_uri`` of a local path (str as os.walk gives it, bytes kept by surrogateescape)."""
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
        return os.fsdecode(raw)
    except UnicodeDecodeError:
        return "file://" + urllib.parse.quote(raw, safe="/")


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://bucket/key`` URI."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def staged_path(source_uri: str) -> str:
    """Where a remote object is copied for the pipeline to read: under MEDIAINTEL_HOME/staging,
    in a folder named by a hash of its URI (short and safe whatever the key), its own name kept.
    The queue sensors' ingest run downloads it there (resources/queues.py ``stage_object``)."""
    from .. import config

    digest = hashlib.sha256(source_uri.encode()).hexdigest()[:16]
    name = os.path.basename(split_s3(source_uri)[1]) or "object"
    return str(config.home() / "staging" / digest / name)


def local_path(uri: str) -> str:
    """The local path (as os functions take it) of a ``source_uri``: a plain path, a file://
    URI, or an s3:// object's staged copy (so every stage after ingest decodes remote media
    unchanged; a copy that is not there is a vanished file, quarantined as such)."""
    if uri.startswith("file://"):
        return os.fsdecode(urllib.parse.unquote_to_bytes(uri[len("file://"):]))
    if uri.startswith("s3://"):
        return staged_path(uri)
    return uri


def display_name(path_or_uri: str) -> str:
    """A file's name for a message: bytes that are not UTF-8 shown as \\xNN escapes."""
    path = local_path(path_or_uri)
    name = os.path.basename(path.rstrip("/")) or path
    return os.fsencode(name).decode("utf-8", "backslashreplace")


# ---- what a path is --------------------------------------------------------------------

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a directory"))


def not_a_file(mode: int) -> str | None:
    """What a stat mode is when it is not a regular file (None for a regular file)."""
    for test, what in _KINDS:
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def os_error(path: str, exc: OSError, doing: str = "read") -> MediaError:
    """The MediaError for an OSError on ``path``, labelled by its errno (a loop is not an I/O error)."""
    name = display_name(path)
    code = exc.errno
    if code == errno.ELOOP:
        return MediaError(ErrorCode.BAD_PATH, f"Cannot {doing} {name}: it is a symbolic link loop "
                                              "(links that point at each other); fix or remove the links.")
    if code == errno.ENAMETOOLONG:
        size = len(os.fsencode(path))
        return MediaError(ErrorCode.BAD_PATH, f"Cannot {doing} {name}: its path is {size} bytes, longer than the "
                                              f"system allows (PATH_MAX {os.pathconf('/', 'PC_PATH_MAX')}); "
                                              "move it to a shorter path.")
    if code == errno.ENOENT:
        what = ("a link whose target does not exist" if os.path.islink(path)
                else "the file disappeared before it could be read")
        return MediaError(ErrorCode.UNREADABLE, f"Cannot {doing} {name}: {what}.")
    if code in (errno.EACCES, errno.EPERM):
        return MediaError(ErrorCode.UNREADABLE, f"Cannot {doing} {name}: permission denied "
                                                "(check the owner and mode).")
    if code == errno.EISDIR:
        return MediaError(ErrorCode.NOT_A_FILE, f"Cannot {doing} {name}: it is a directory, not a file.")
    return MediaError(ErrorCode.UNREADABLE, f"Cannot {doing} {name}: {exc.strerror or exc} (errno {code}).")


def open_regular(path: str, max_bytes: int | None = None) -> tuple[int, os.stat_result]:
    """An fd open for reading on a regular file, and its stat; never blocks, never opens a special file.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; the
    fstat that follows rejects anything that is not a regular file (FIFO, socket, device,
    or a link to one) before a byte is read. The flag is cleared for the reads themselves.
    """
    def refuse(mode: int) -> None:
        what = not_a_file(mode)
        if what is not None:
            raise MediaError(ErrorCode.NOT_A_FILE, f"{display_name(path)} is {what}, not a file: it is never "
                                                   "opened for reading (it could block for ever or never end).")

    try:
        refuse(os.stat(path).st_mode)  # a socket cannot even be opened (ENXIO): say what it is
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise os_error(path, exc) from None
    try:
        st = os.fstat(fd)
        refuse(st.st_mode)  # again on what was opened: it may have been swapped in between
        if max_bytes is not None and st.st_size > max_bytes:
            raise MediaError(ErrorCode.TOO_LARGE, f"{display_name(path)} is {st.st_size:,} bytes, over the limit of "
                                                  f"{max_bytes:,} (MEDIAINTEL_MAX_FILE_BYTES); raise the limit, then "
                                                  "`mediaintel redrive --error-type too_large`.")
        os.set_blocking(fd, True)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


# ---- deadlines -------------------------------------------------------------------------

@dataclass
class Progress:
    """A worker's heartbeat: the deadline is counted from its last sign of progress."""

    last: float = 0.0
    done_bytes: int = 0

    def tick(self, n: int = 0) -> None:
        self.last = time.monotonic()
        self.done_bytes += n


def with_deadline(fn: Callable[[Progress], T], *, stall_s: float, what: str, name: str) -> T:
    """Run ``fn(progress)`` on a worker thread; raise ``read_timeout`` when it shows no progress for ``stall_s``.

    ``fn`` calls ``progress.tick()`` as it goes (a function that cannot, such as FFmpeg
    probing a file, gets ``stall_s`` in all). On a timeout the worker is left behind, parked
    in its read: the caller moves on to the next file.
    """
    progress = Progress()
    progress.tick()
    box: dict = {}

    def work():
        try:
            box["value"] = fn(progress)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"mediaintel-read:{name}", daemon=True)
    worker.start()
    while True:
        worker.join(timeout=min(0.5, stall_s))
        if not worker.is_alive():
            break
        if time.monotonic() - progress.last > stall_s:
            raise MediaError(ErrorCode.READ_TIMEOUT,
                             f"{name}: {what} made no progress for {stall_s:g} s after {progress.done_bytes:,} "
                             "bytes (a hung mount or device?); retried on a later run.")
    if "error" in box:
        raise box["error"]
    return box["value"]


# ---- hashing ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Hashed:
    sha256: str
    size_bytes: int

    @property
    def media_id(self) -> str:
        return self.sha256[:16]


def hash_fd(fd: int, progress: Progress | None = None,
            on_chunk: Callable[[int], None] | None = None) -> tuple[str, int]:
    """SHA-256 and byte count of what an open fd reads to its end (``on_chunk``: bytes read so far)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := os.read(fd, CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress.tick(len(chunk))
        if on_chunk is not None:
            on_chunk(size)
    return digest.hexdigest(), size


def hash_file(path: str, *, max_bytes: int | None = None, stall_s: float = DEFAULT_STALL_S,
              on_chunk: Callable[[int], None] | None = None) -> Hashed:
    """SHA-256 of a file's bytes, read safely; raises MediaError for anything that is not a whole, steady file.

    The file is opened without blocking and checked to be a regular file under ``max_bytes``
    (:func:`open_regular`), read on a worker thread with a stall deadline, and stat'ed again
    afterwards: a file whose size or mtime moved while it was read (still being written,
    replaced) is ``changed_while_read`` and retried later, never recorded with a hash of
    bytes that no longer exist. ``on_chunk`` (tests) is called with the bytes read so far.
    """
    name = display_name(path)
    fd, before = open_regular(path, max_bytes)
    try:
        try:
            sha, size = with_deadline(lambda progress: hash_fd(fd, progress, on_chunk), stall_s=stall_s,
                                      what="reading", name=name)
        except OSError as exc:
            raise os_error(path, exc) from None
        after = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        now = os.stat(path)
    except OSError as exc:
        raise MediaError(ErrorCode.CHANGED_WHILE_READ,
                         f"{name} vanished or moved while it was read ({exc.strerror}); retried if it comes back.") from None
    moved = (size != before.st_size or after.st_size != before.st_size or after.st_mtime_ns != before.st_mtime_ns
             or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino))
    if moved:
        raise MediaError(ErrorCode.CHANGED_WHILE_READ,
                         f"{name} changed while it was read ({before.st_size:,} bytes when opened, {size:,} read, "
                         f"{after.st_size:,} after): still being written or replaced; retried on a later run.")
    if size == 0:
        raise MediaError(ErrorCode.EMPTY_FILE, f"{name} is empty (0 bytes): nothing was delivered, or the copy failed.")
    return Hashed(sha, size)


def source_path(uri: str, sha256: str | None = None) -> str:
    """The local path of a media's ``source_uri`` for a stage about to decode it, checked first.

    The file was whole when ingest hashed it, but it may since have vanished, lost its
    permissions or been replaced by a FIFO (which would block the decoder's open for ever):
    each of those raises the MediaError that names it, so the stage quarantines the media
    instead of hanging or failing the run. An s3:// source whose staged copy this machine
    lacks (a step pod on another node than the run that ingested it) is fetched again and
    checked against ``sha256`` (``fetch_staged``).
    """
    path = local_path(uri)
    if uri.startswith("s3://") and not os.path.lexists(path):
        fetch_staged(uri, sha256)
    fd, _ = open_regular(path)
    os.close(fd)
    return path


def fetch_staged(uri: str, sha256: str | None = None) -> str:
    """Download an s3:// source into its staged path. With ``sha256`` (the `media` row's), other
    bytes than the media's are refused: the object was replaced since ingest, and its new
    bytes are a new media that its own notification brings in. A missing object is a vanished
    file; any other S3 error raises as it is (transient: the step is retried)."""
    from ..lake import s3

    path = staged_path(uri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.part"  # concurrent fetches never share one
    bucket, key = split_s3(uri)
    try:
        s3.client().download_file(bucket, key, tmp)
        if sha256:
            h = hashlib.sha256()
            with open(tmp, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != sha256:
                raise MediaError(ErrorCode.CHANGED_WHILE_READ,
                                 f"{display_name(uri)}: the object at {uri} is not the bytes ingested "
                                 f"(SHA-256 {h.hexdigest()[:12]}, ingested {sha256[:12]}): replaced since.")
        os.replace(tmp, path)
    except Exception as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if s3.is_missing(exc):
            raise MediaError(ErrorCode.UNREADABLE, f"Cannot fetch {uri}: deleted since it was ingested.") from None
        raise
    return path
