"""Arrival-window partitions: arrival date (daily, UTC) x shard.

Partitions are windows, not files (DESIGN.md): Dagster caps partitions near 100k per asset
and its UI slows long before, while dates x a handful of shards stay in the thousands for
years and backfill naturally by date range. A file belongs to the window of its arrival
time, taken from its mtime (S3: LastModified), with a stated rule for odd clocks:

- mtime before the first partition date (archive copies that kept an old mtime) -> the
  first date, so old material is still ingested rather than silently ignored;
- mtime in the future (a clock ahead, or a touched file) -> its ctime, the moment it
  appeared here (never later than now). Not "now": the window must not move between the
  sensor's tick and a run that starts after midnight or a rerun next week.

A file's shard is a stable hash of its source URI, so the same location always lands in
the same shard.

Where the partitions start (MEDIAINTEL_PARTITION_START, default 2026-11-01, this release's
first month): the Dagster UI counts every window from the start to today as "missing"
until something is materialized in it, so a start years before the data made an idle inbox
look like a backlog of thousands of windows. Set it to the day your data starts. Moving it
earlier is always safe; moving it later than a window that holds data hides that window
from Dagster (its rows stay in the lake, but its partition key stops existing), so an
existing install keeps its old start (docs/ui.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib

from dagster import (
    DailyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from . import config

DATE_DIM = "date"
SHARD_DIM = "shard"


def _start() -> dt.date:
    return dt.date.fromisoformat(config.partition_start())


@functools.lru_cache(maxsize=None)
def _partitions(start: str, shards: int) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {
            # end_offset=1: today's window exists while files are still arriving in it.
            DATE_DIM: DailyPartitionsDefinition(start_date=start, end_offset=1, timezone="UTC"),
            SHARD_DIM: StaticPartitionsDefinition([str(i) for i in range(shards)]),
        }
    )


def arrival_partitions_def() -> MultiPartitionsDefinition:
    """The arrival-window partitions of the current configuration (MEDIAINTEL_PARTITION_START,
    MEDIAINTEL_SHARDS), read when called: ``build_defs`` builds every asset and check with
    it, and ``shard_of`` reads the same setting, so the two agree in any process."""
    return _partitions(config.partition_start(), config.shard_count())


# The partitions of the configuration at import, for the module-level asset objects that
# scripts and tests use directly; the code location (build_defs) builds its own.
arrival_partitions = arrival_partitions_def()


def shard_of(source_uri: str, shards: int | None = None) -> str:
    shards = shards or config.shard_count()
    # surrogateescape: a raw path with undecodable bytes hashes by those bytes instead of
    # raising (inbox source_uris are valid UTF-8 already; see media.files.source_uri_for).
    return str(int(hashlib.sha256(source_uri.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16) % shards)


def arrival_date(mtime_ns: int, now: dt.datetime | None = None, ctime_ns: int | None = None) -> dt.date:
    """The arrival date of a file, with the rule above for times outside the partitions."""
    now = now or dt.datetime.now(dt.timezone.utc)
    when = dt.datetime.fromtimestamp(mtime_ns / 1e9, tz=dt.timezone.utc)
    if when > now:
        appeared = dt.datetime.fromtimestamp(ctime_ns / 1e9, tz=dt.timezone.utc) if ctime_ns else now
        when = min(now, appeared)
    day = when.date()
    return max(day, _start())


def partition_for(source_uri: str, mtime_ns: int, now: dt.datetime | None = None,
                  ctime_ns: int | None = None) -> MultiPartitionKey:
    return MultiPartitionKey(
        {DATE_DIM: arrival_date(mtime_ns, now, ctime_ns).isoformat(), SHARD_DIM: shard_of(source_uri)}
    )


def split_key(partition_key: str | MultiPartitionKey) -> tuple[str, str]:
    """(date, shard) of a partition key, from a MultiPartitionKey or its string form."""
    if isinstance(partition_key, MultiPartitionKey):
        dims = partition_key.keys_by_dimension
    else:
        dims = arrival_partitions.get_partition_key_from_str(partition_key).keys_by_dimension
    return dims[DATE_DIM], dims[SHARD_DIM]
