"""The lakehouse resource: the one owner of the Delta tables of the contract."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import random
import time
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.dataset as pads
from dagster import ConfigurableResource, get_dagster_logger
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from pydantic import Field

from .. import config
from ..lake import schemas
from ..lake.datasets import delta_dataset
from ..media.errors import error_code

# delta-rs reports a lost optimistic-concurrency race either as CommitFailedError or,
# for some operations, as a generic DeltaError whose text names the conflict.
_CONFLICT_WORDS = ("conflict", "version already exists", "concurrent", "commit failed")


def _is_conflict(exc: Exception) -> bool:
    if isinstance(exc, CommitFailedError):
        return True
    return isinstance(exc, DeltaError) and any(w in str(exc).lower() for w in _CONFLICT_WORDS)


def _sql_literal(value) -> str:
    if value is None:
        raise ValueError("key columns must not be null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_predicate(key_columns: Sequence[str], key_values: Iterable[tuple]) -> str:
    """SQL predicate matching exactly the given key tuples (what a replace deletes)."""
    values = sorted(set(key_values))
    if not values:
        raise ValueError("no keys to replace")
    if len(key_columns) == 1:
        return f"{key_columns[0]} IN ({', '.join(_sql_literal(v[0]) for v in values)})"
    clauses = (
        "(" + " AND ".join(f"{c} = {_sql_literal(v)}" for c, v in zip(key_columns, tup)) + ")"
        for tup in values
    )
    return " OR ".join(clauses)


# The commit-info key a stage's commits carry: which stage wrote them.
WRITER_KEY = "mediaintel_writer"

# The audit columns a done-check reads.
AUDIT_PLAN_COLUMNS = ["asset", "media_id", "status", "code_version", "model_id", "model_requested", "model_route", "at"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class LakehouseResource(ConfigurableResource):
    """Delta tables under one root (local folder or ``s3://bucket/prefix``).

    Writes replace the rows of the keys they carry (``lake.schemas.KEYS``) in one Delta
    commit, so a rerun rewrites rather than duplicates. Concurrent runs writing different
    media to one table race on the Delta log; a lost race is retried with backoff.

    On ``s3://`` (``MEDIAINTEL_LAKE=s3://bucket/prefix``) credentials, region and endpoint
    come from the standard AWS_* variables; each commit is a conditional PUT (delta-rs's
    default, no lock table needed), and the store is asked once whether it honours
    conditional writes before anything is written (a store that ignores them loses
    concurrent commits). Transient S3 errors (503 SlowDown) are retried by delta-rs's
    object store client; one that outlasts those retries fails the write cleanly, with the
    table at its previous version.
    """

    root: str = Field(default_factory=config.lake_root, description="Root of the Delta tables.")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="delta-rs object store options (S3 endpoint, region, ...)."
    )
    max_commit_retries: int = Field(default=12, description="Retries after a lost commit race.")
    allow_unconditional_store: bool = Field(
        default=False,
        description=("s3:// only: write even to a store that ignores conditional writes (If-None-Match). "
                     "There, two concurrent commits can both succeed and one is silently lost; set this only "
                     "when a single process ever writes the lake."))

    # ---- locations -------------------------------------------------------------
    def uri(self, table: str) -> str:
        schemas.schema(table)  # unknown names fail loudly
        return f"{self.root.rstrip('/')}/{table}"

    def _is_s3(self) -> bool:
        from ..lake import s3

        return s3.is_s3(self.root)

    def _options(self) -> dict[str, str] | None:
        """delta-rs storage options: on ``s3://``, the standard AWS_* variables of this process
        with ``storage_options`` over them (lake/s3.py); elsewhere ``storage_options`` alone."""
        if self._is_s3():
            from ..lake import s3

            return s3.delta_storage_options(self.storage_options)
        return dict(self.storage_options) or None

    def check_store(self) -> None:
        """Refuse to write to an ``s3://`` store that ignores conditional writes: delta-rs's
        commits there are conditional PUTs, and a store that ignores the condition loses
        concurrent commits without an error. Asked once per process (lake/s3.py)."""
        if not self._is_s3() or self.allow_unconditional_store:
            return
        from ..lake import s3

        endpoint = (self._options() or {}).get("AWS_ENDPOINT_URL")
        if not s3.conditional_writes_honoured(self.root, endpoint):
            raise RuntimeError(
                f"the object store of {self.root} (endpoint {endpoint or 'AWS'}) ignores conditional writes "
                "(If-None-Match: *): concurrent Delta commits would overwrite each other and lose rows. Use AWS S3 "
                "or a store with conditional PUT (MinIO, R2, recent Ceph); or, with exactly one writer, set "
                "lake.allow_unconditional_store=true")

    def delta_table(self, table: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri(table), storage_options=self._options())
        except TableNotFoundError:
            return None

    def version(self, table: str) -> int | None:
        dtab = self.delta_table(table)
        return None if dtab is None else dtab.version()

    def ensure(self, table: str) -> None:
        """Create the table with its contract schema if it does not exist yet."""
        self.check_store()
        for attempt in range(self.max_commit_retries + 1):
            try:
                DeltaTable.create(
                    self.uri(table), schema=schemas.schema(table), mode="ignore",
                    storage_options=self._options(),
                )
                return
            except Exception as exc:  # two creators racing for version 0
                if self.delta_table(table) is not None:
                    return
                if attempt == self.max_commit_retries or not _is_conflict(exc):
                    raise
                self._backoff(attempt)

    def ensure_all(self) -> None:
        for table in schemas.TABLES:
            self.ensure(table)

    # ---- reads -----------------------------------------------------------------
    @contextlib.contextmanager
    def window_lock(self, stage: str, partition: str | None):
        """Held while a stage plans, computes and writes one window, so two runs of the same
        window (a sensor run and a CLI call, a retried run beside its original) do not both
        do all the compute: the second waits, then finds the work done.

        On a local lake this is an exclusive file lock beside the tables (``_locks/``, not a
        table). On an object store there is no shared filesystem; production's run queue
        already runs one run per shard at a time (the ``dagster/partition/shard`` tag limit
        in deploy/dagster.postgres.yaml), which serialises a window's runs.
        """
        if "://" in self.root and not self.root.startswith("file://"):
            yield
            return
        import fcntl

        folder = os.path.join(self.root.removeprefix("file://"), "_locks")
        os.makedirs(folder, exist_ok=True)
        name = hashlib.sha256(f"{stage}\x00{partition}".encode()).hexdigest()[:24]
        with open(os.path.join(folder, f"{name}.lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def dataset(self, table: str, as_of_version: int | None = None) -> pads.Dataset:
        """The table as an Arrow dataset (filters push down); empty if it does not exist."""
        dtab = self.delta_table(table)
        if dtab is None:
            return pads.dataset(schemas.schema(table).empty_table())
        if as_of_version is not None:
            dtab.load_as_version(as_of_version)
        return delta_dataset(dtab, self.uri(table))

    def read(self, table: str, columns: list[str] | None = None, filter=None) -> pa.Table:
        return self.dataset(table).to_table(columns=columns, filter=filter)

    def read_keys(self, table: str, column: str, values: Iterable[str], columns: list[str] | None = None) -> pa.Table:
        values = list(values)
        if not values:
            return schemas.schema(table).empty_table().select(columns or schemas.schema(table).names)
        return self.read(table, columns=columns, filter=pads.field(column).isin(values))

    # ---- writes ----------------------------------------------------------------
    def replace(self, table: str, rows: pa.Table | list[dict], keys: Iterable[tuple] | None = None,
                writer: str | None = None) -> int:
        """Replace every row whose key is in ``keys`` (default: the keys of ``rows``) by ``rows``.

        One atomic Delta commit (predicate overwrite). ``keys`` may name keys without rows,
        which deletes them: a media that now has no scenes loses its old ones.
        Returns the new table version.
        """
        key_columns = schemas.KEYS[table]
        if key_columns is None:
            raise ValueError(f"{table} is append-only; use append()")
        data = self.conform(table, rows)
        key_set = set(keys) if keys is not None else set()
        key_set |= set(zip(*(data.column(c).to_pylist() for c in key_columns))) if data.num_rows else set()
        if not key_set:
            return self.version(table) or 0
        predicate = key_predicate(key_columns, key_set)
        return self._commit(table, data, mode="overwrite", predicate=predicate, writer=writer)

    def append(self, table: str, rows: pa.Table | list[dict], writer: str | None = None) -> int:
        data = self.conform(table, rows)
        return self._commit(table, data, mode="append", predicate=None, writer=writer)

    def untracked_version(self, table: str) -> int | None:
        """The table's version when its newest commit was not made by a stage (a repair by
        hand, another tool), else None. Stages tag their commits (``writer=``), so checks
        can tell rows they have judged from rows someone changed behind the pipeline's back."""
        dtab = self.delta_table(table)
        if dtab is None:
            return None
        last = dtab.history(1)
        return None if last and last[0].get(WRITER_KEY) else dtab.version()

    def conform(self, table: str, rows: pa.Table | list[dict]) -> pa.Table:
        """``rows`` (Arrow or dicts) as an Arrow table with the table's contract schema."""
        if isinstance(rows, pa.Table):
            sch = schemas.schema(table)
            missing = [n for n in sch.names if n not in rows.column_names]
            for name in missing:
                rows = rows.append_column(name, pa.nulls(rows.num_rows, sch.field(name).type))
            return rows.select(sch.names).cast(sch)
        return schemas.to_arrow(table, rows)

    def _commit(self, table: str, data: pa.Table, mode: str, predicate: str | None, writer: str | None = None) -> int:
        from deltalake import CommitProperties

        self.ensure(table)
        uri = self.uri(table)
        for attempt in range(self.max_commit_retries + 1):
            try:
                # schema_mode="merge": a lake written by an older release gains the columns
                # this one added (the contract only ever adds columns).
                write_deltalake(uri, data, mode=mode, predicate=predicate, storage_options=self._options(),
                                schema_mode="merge",
                                commit_properties=CommitProperties(custom_metadata={WRITER_KEY: writer}) if writer else None)
                # The version we just wrote: the newest one that holds our commit. A later
                # writer may already have committed on top, which is fine for the audit trail.
                return DeltaTable(uri, storage_options=self._options()).version()
            except Exception as exc:
                if attempt == self.max_commit_retries or not _is_conflict(exc):
                    raise
                get_dagster_logger().info(
                    f"commit race on {table} (attempt {attempt + 1}): {exc.__class__.__name__}; retrying"
                )
                self._backoff(attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _backoff(attempt: int) -> None:
        time.sleep(min(2.0, 0.02 * (2**attempt)) * (0.5 + random.random()))

    # ---- what a window holds ------------------------------------------------------
    def window_media(self, partition: str, columns: list[str] | None = None) -> list[dict]:
        """The `media` rows of content that arrived in this window (via media_sources.arrival_partition),
        ordered by media_id.

        Content first seen elsewhere and re-delivered here belongs to both windows; the
        done-check keeps it from being processed twice.
        """
        ids = self.read("media_sources", columns=["media_id"],
                        filter=pads.field("arrival_partition") == str(partition)).column("media_id").to_pylist()
        rows = self.read_keys("media", "media_id", sorted(set(ids)), columns=columns).to_pylist()
        return sorted(rows, key=lambda r: r["media_id"])

    # ---- the audit trail and quarantine -----------------------------------------
    def latest_audit(self, assets: Iterable[str], media_ids: Iterable[str]) -> dict[tuple[str, str], dict]:
        """{(asset, media_id): its newest audit_log row} for these assets and media, in one read.

        The one question every stage's done-check asks of the audit trail ("what did each
        of these stages last do to each of these media?"), answered by one filtered scan
        (filters push down to the Parquet files; ``compact`` keeps their number small).
        """
        ids, assets = sorted(set(media_ids)), sorted(set(assets))
        if not ids or not assets:
            return {}
        ds = self.dataset("audit_log")  # opened once: its schema and its rows
        cols = [c for c in AUDIT_PLAN_COLUMNS if c in ds.schema.names]  # a lake from before a column existed
        log = ds.to_table(columns=cols,
                          filter=pads.field("asset").isin(assets) & pads.field("media_id").isin(ids)).to_pylist()
        out: dict[tuple[str, str], dict] = {}
        for r in log:
            key = (r["asset"], r["media_id"])
            if key not in out or r["at"] >= out[key]["at"]:
                out[key] = r
        return out

    def audit(self, entries: list[dict], at: dt.datetime | None = None) -> int | None:
        """Append audit_log rows (one per media a materialization wrote or quarantined)."""
        if not entries:
            return None
        now = at or utcnow()
        return self.append("audit_log", [{"at": now, **e} for e in entries])

    def quarantine(self, rows: list[dict]) -> int | None:
        """Record input that could not be processed; replaces the same file's row for that stage.

        ``attempts`` counts how often this stage quarantined the input with the same code
        version and the same bytes (media_id, size, mtime): the retry rule stops there.
        """
        if not rows:
            return None
        now = utcnow()
        prior = {}
        if self.delta_table("quarantine") is not None:
            uris = sorted({r["source_uri"] for r in rows})
            for p in self.read("quarantine", filter=pads.field("source_uri").isin(uris)).to_pylist():
                prior[(p["source_uri"], p["stage"])] = p
        out = []
        for r in rows:
            p = prior.get((r["source_uri"], r["stage"]))
            same = p is not None and all(p.get(k) == r.get(k) for k in ("code_version", "media_id", "size_bytes",
                                                                        "mtime_ns"))
            out.append({"seen_at": now, **r, "attempts": ((p.get("attempts") or 1) + 1) if same else 1,
                        "retryable": error_code(r["error_type"]).retryable})
        return self.replace("quarantine", out)

    def clear_quarantine(self, stage: str, source_uris: Iterable[str]) -> None:
        """Drop quarantine rows of files that now passed ``stage`` (a fixed file, a fixed bug)."""
        uris = sorted(set(source_uris))
        if not uris or self.delta_table("quarantine") is None:
            return
        existing = self.read(
            "quarantine", columns=["source_uri"],
            filter=(pads.field("stage") == stage) & pads.field("source_uri").isin(uris),
        )
        stale = {(u, stage) for u in existing.column("source_uri").to_pylist()}
        if stale:
            self.replace("quarantine", [], keys=stale)

    def request_redrive(self, stage: str | None = None, error_type: str | None = None,
                        dry_run: bool = False) -> list[dict]:
        """Mark quarantine rows (of ``stage``, of ``error_type``; all when neither) for one
        more try by the next run of their window, whatever the retry rule says: dead letters
        (permanent errors, or retryable ones out of attempts) after their cause was fixed.
        Returns the rows marked (or that would be, with ``dry_run``), marked in one commit."""
        if self.delta_table("quarantine") is None:
            return []
        where = None
        for col, value in (("stage", stage), ("error_type", error_type)):
            if value is not None:
                term = pads.field(col) == value
                where = term if where is None else where & term
        rows = self.read("quarantine", filter=where).to_pylist()
        if rows and not dry_run:
            now = utcnow()
            rows = [{**r, "redrive_requested_at": now} for r in rows]
            self.replace("quarantine", rows, writer="redrive")
        return rows

    def delete_media(self, media_ids: Iterable[str], writer: str | None = None) -> dict[str, int]:
        """Remove every row of these media from every table that holds media rows (a
        takedown; `audit_log` keeps its history). One commit per table; {table: rows removed}."""
        ids = sorted(set(media_ids))
        out: dict[str, int] = {}
        for table, key_columns in schemas.KEYS.items():
            if not ids or key_columns is None or self.delta_table(table) is None:
                continue
            if "media_id" not in self.dataset(table).schema.names:
                continue
            rows = self.read(table, columns=key_columns, filter=pads.field("media_id").isin(ids))
            if rows.num_rows:
                keys = set(zip(*(rows.column(c).to_pylist() for c in key_columns)))
                self.replace(table, [], keys=keys, writer=writer)
                out[table] = rows.num_rows
        return out

    # ---- maintenance ----------------------------------------------------------------
    def compact(self, table: str, vacuum_hours: int | None = None) -> dict:
        """Compact ``table`` (OPTIMIZE), and VACUUM files older than ``vacuum_hours`` when given.

        `audit_log` gets one small file per stage per run, and its done-check reads filter by
        media_id, which are random hashes: no file or row group could be skipped. So it is
        Z-ordered by media_id into small row groups, whose min/max statistics let a window's
        read skip almost everything (measured at 1M rows: 177 ms before, 35 ms after).
        """
        from deltalake import WriterProperties

        dtab = self.delta_table(table)
        if dtab is None:
            return {"table": table, "skipped": "does not exist"}
        before = len(dtab.file_uris())
        if table == "audit_log":
            metrics = dtab.optimize.z_order(["media_id"], target_size=32 << 20,
                                            writer_properties=WriterProperties(max_row_group_size=8192))
        else:
            metrics = dtab.optimize.compact()
        out = {"table": table, "files_before": before, "files_removed": metrics.get("numFilesRemoved"),
               "files_added": metrics.get("numFilesAdded")}
        if vacuum_hours is not None:
            out["vacuumed"] = len(self.delta_table(table).vacuum(retention_hours=vacuum_hours, dry_run=False,
                                                                 enforce_retention_duration=False))
        out["files_after"] = len(self.delta_table(table).file_uris())
        return out
