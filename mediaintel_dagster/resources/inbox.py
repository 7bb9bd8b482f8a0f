"""The inbox: where new media files are found.

Listing never fails and never skips in silence. Whatever the walk meets becomes an
:class:`InboxFile`: a file to ingest, or an entry that carries the reason it cannot be
read (a folder the walk cannot open, a path over PATH_MAX, a symlink loop, a link to a
directory), which the ingest stage turns into a quarantine row. Names that are not
valid UTF-8 keep their bytes (``media.files.source_uri_for``). Only names that are never
media (hidden files, partial downloads, OS droppings) are skipped, and they are counted.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from typing import NamedTuple

from dagster import ConfigurableResource
from pydantic import Field

from .. import config
from ..media.errors import ErrorCode
from ..media.files import display_name, local_path, not_a_file, os_error, source_uri_for
from ..partitions import partition_for, split_key

# Names that are never media: partial downloads and editor/OS droppings. Hidden files and
# folders (".name") are skipped too: tools write their temporary files that way.
_SKIP_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".swp")
_SKIP_NAMES = {"Thumbs.db", "desktop.ini"}


class InboxFile(NamedTuple):
    source_uri: str  # where it was found (media.files.source_uri_for: the path, or a file:// URI for non-UTF-8 names)
    size_bytes: int  # -1 when the file cannot be stat'ed (dangling link, vanished, loop, path too long)
    mtime_ns: int
    ctime_ns: int
    # Why this entry cannot be read at all, found by the walk itself (error_type, message);
    # None for an entry that ingest should open. Special files (FIFOs, sockets, devices) are
    # left to ingest, which refuses them before reading.
    error: tuple[str, str] | None = None

    @property
    def path(self) -> str:
        """The local path, as os functions take it."""
        return local_path(self.source_uri)

    @property
    def signature(self) -> str:
        return f"{self.source_uri}|{self.size_bytes}|{self.mtime_ns}"

    def partition_key(self):
        return partition_for(self.source_uri, self.mtime_ns, ctime_ns=self.ctime_ns)


class Listing(NamedTuple):
    files: list[InboxFile]
    skipped: list[str]  # source_uris of names that are never media (hidden, partial downloads)


class LocalInboxResource(ConfigurableResource):
    """Folders (or single files) on the local filesystem where media arrives.

    A file is *settled* once its mtime is ``settle_seconds`` old: files still being copied
    are left for a later sensor tick instead of being ingested half-written.
    """

    roots: list[str] = Field(default_factory=config.inbox_roots, description="Folders or files to watch.")
    settle_seconds: float = Field(default=5.0, description="Leave files younger than this for later.")

    def scan(self) -> Listing:
        """Every entry under the roots, and the names skipped as never media."""
        files: list[InboxFile] = []
        skipped: list[str] = []
        for root in self.roots:
            _scan_root(os.path.abspath(root), files, skipped)
        return Listing(files, skipped)

    def list_files(self) -> Iterator[InboxFile]:
        yield from self.scan().files

    def is_settled(self, f: InboxFile, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        # A future mtime (clock skew, touch -d) says nothing about the copy: use ctime then.
        changed = f.mtime_ns / 1e9
        if changed > now:
            changed = f.ctime_ns / 1e9
        return f.size_bytes < 0 or (now - changed) >= self.settle_seconds

    def files_in_partition(self, partition_key) -> list[InboxFile]:
        """The settled files whose arrival window is ``partition_key``."""
        want = split_key(partition_key)
        now = time.time()
        return [
            f for f in self.list_files()
            if self.is_settled(f, now) and split_key(f.partition_key()) == want
        ]


def _skip(name: str) -> bool:
    return name.startswith(".") or name in _SKIP_NAMES or name.lower().endswith(_SKIP_SUFFIXES)


def _scan_root(root: str, files: list[InboxFile], skipped: list[str]) -> None:
    try:
        st = os.stat(root)
    except OSError as exc:
        if exc.errno != errno.ENOENT or os.path.islink(root):  # a root that is simply absent has nothing
            files.append(stat_file(root))
        return
    if not stat.S_ISDIR(st.st_mode):
        files.append(stat_file(root))
        return

    def unreadable_folder(exc: OSError) -> None:
        if exc.errno == errno.ENOENT:  # vanished between listing and reading: nothing in it was known
            return
        folder = exc.filename if isinstance(exc.filename, str) else root
        err = os_error(folder, exc, doing="list the folder")
        files.append(_entry(folder, err.error_type, err.message))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable_folder):
        keep = []
        for d in sorted(dirnames):
            if _skip(d):
                skipped.append(source_uri_for(os.path.join(dirpath, d)))
            elif os.path.islink(os.path.join(dirpath, d)):
                # Not followed: a link may point back up the tree (a loop) or out of the inbox.
                path = os.path.join(dirpath, d)
                files.append(_entry(path, ErrorCode.NOT_A_FILE.value,
                                    f"{display_name(path)} is a link to a folder, which the inbox does not follow "
                                    "(it could loop or leave the inbox); add its target as an inbox root instead."))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if _skip(name):
                skipped.append(source_uri_for(path))
            else:
                files.append(stat_file(path))


def _entry(path: str, error_type: str, message: str) -> InboxFile:
    try:
        st = os.lstat(path)
        times = st.st_mtime_ns, st.st_ctime_ns
    except OSError:
        times = 0, 0
    return InboxFile(source_uri_for(path), -1, *times, error=(error_type, message))


def stat_file(path_or_uri: str) -> InboxFile:
    """An InboxFile for a path or source_uri: one being listed, or one recorded earlier outside the roots."""
    path = local_path(path_or_uri)
    uri = source_uri_for(path)
    try:
        st = os.stat(path)
        if not_a_file(st.st_mode) == "a directory":
            return _entry(path, ErrorCode.NOT_A_FILE.value, f"{display_name(path)} is a directory, not a file.")
        return InboxFile(uri, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
            err = os_error(path, exc)
            return _entry(path, err.error_type, err.message)
        # A dangling link or a file that vanished: keep it, so the run can quarantine it
        # with a reason instead of it disappearing without a trace.
        try:
            st = os.lstat(path)
            return InboxFile(uri, -1, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            return InboxFile(uri, -1, 0, 0)
