"""The inbox: where new media files are found."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import NamedTuple

from dagster import ConfigurableResource
from pydantic import Field

from .. import config
from ..partitions import partition_for, split_key

# Names that are never media: partial downloads and editor/OS droppings. Hidden files and
# folders (".name") are skipped too: tools write their temporary files that way.
_SKIP_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".swp")
_SKIP_NAMES = {"Thumbs.db", "desktop.ini"}


class InboxFile(NamedTuple):
    source_uri: str  # the path as found (absolute, symlinks not resolved)
    size_bytes: int  # -1 when the file cannot be stat'ed (dangling link, vanished)
    mtime_ns: int
    ctime_ns: int

    @property
    def signature(self) -> str:
        return f"{self.source_uri}|{self.size_bytes}|{self.mtime_ns}"

    def partition_key(self):
        return partition_for(self.source_uri, self.mtime_ns, ctime_ns=self.ctime_ns)


class LocalInboxResource(ConfigurableResource):
    """Folders (or single files) on the local filesystem where media arrives.

    A file is *settled* once its mtime is ``settle_seconds`` old: files still being copied
    are left for a later sensor tick instead of being ingested half-written.
    """

    roots: list[str] = Field(default_factory=config.inbox_roots, description="Folders or files to watch.")
    settle_seconds: float = Field(default=5.0, description="Leave files younger than this for later.")

    def list_files(self) -> Iterator[InboxFile]:
        for root in self.roots:
            root = os.path.abspath(root)
            if os.path.isfile(root) or (os.path.islink(root) and not os.path.isdir(root)):
                yield stat_file(root)
                continue
            if not os.path.isdir(root):
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith(".") or name in _SKIP_NAMES or name.lower().endswith(_SKIP_SUFFIXES):
                        continue
                    yield stat_file(os.path.join(dirpath, name))

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


def stat_file(path: str) -> InboxFile:
    """An InboxFile for a path: one being listed, or one recorded earlier outside the roots."""
    try:
        st = os.stat(path)
        return InboxFile(path, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        # A dangling link or a file that vanished: keep it, so the run can quarantine it
        # with a reason instead of it disappearing without a trace.
        try:
            st = os.lstat(path)
            return InboxFile(path, -1, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            return InboxFile(path, -1, 0, 0)
