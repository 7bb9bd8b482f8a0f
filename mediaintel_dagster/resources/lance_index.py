"""The embedded serving index: LanceDB on local disk (or ``s3://``), and its keyword index.

``LanceVectorIndexResource`` keeps one LanceDB table per model_id (``vec__<safe id>__<hash>``;
the model id itself is kept in the table's schema metadata), so vectors of different models
and dims never meet. A table is searched exactly (flat, cosine) until it holds
``ann_min_rows`` vectors; ``optimize()`` then builds its ANN index (IVF_SQ, candidates
re-ranked on the stored vectors; docs/index.md has the measurements behind the parameters)
and, on later calls, folds new rows into it. Rows not yet in the index are still found:
LanceDB searches them flat beside it.

``LanceTextIndexResource`` is the keyword index: one table with LanceDB's native full-text
index (BM25, built in-process; no tantivy, nothing downloaded) on ``text``.

Both push ``IndexFilter`` into the search as one SQL predicate (``filter_sql``) applied before
the top-k is taken (prefilter), so a filtered search returns k hits when k exist.

Writes are ``merge_insert`` on entry_id (idempotent). Concurrent writers to one table race on
LanceDB's optimistic commit; a lost race is retried with backoff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import get_dagster_logger
from pydantic import Field

from .. import config
from .lakehouse import _sql_literal
from .vector_index import (
    ENTRY_SCHEMA,
    KEYWORD_MODEL_ID,
    TEXT_ENTRY_SCHEMA,
    IndexFilter,
    Match,
    TextIndexResource,
    VectorIndexResource,
)

# Schema metadata key holding a vector table's model id (table names are only a safe form of it).
MODEL_ID_KEY = b"mediaintel.model_id"
VECTOR_TABLE_PREFIX = "vec__"
KEYWORD_TABLE = "keyword_bm25"

# The columns a Match is built from.
_MATCH_COLUMNS = ["entry_id", "media_id", "item_kind", "item_index"]

# LanceDB reports a lost optimistic-commit race with these words (lance "Commit conflict for
# version N", "Retryable commit conflict", "Too many concurrent writers").
_CONFLICT_WORDS = ("conflict", "concurrent", "retryable", "too many concurrent writers")

# Ids per SQL IN list (fetch, delete): keeps each predicate a reasonable size.
_ID_CHUNK = 1000


# ---- filters -------------------------------------------------------------------------------
def sql_string(value) -> str:
    """A SQL string literal: single quotes doubled (the lakehouse's quoting; DataFusion, under
    LanceDB, also reads a backslash literally)."""
    return _sql_literal(str(value))


def _sql_number(value) -> str:
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"filter bound must be finite, not {value!r}")
    return repr(x)


def _in_list(column: str, values: Sequence[str], negate: bool = False) -> str:
    values = list(dict.fromkeys(str(v) for v in values))
    if not values:  # an empty allow-list matches nothing; an empty deny-list excludes nothing
        return "TRUE" if negate else "FALSE"
    return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join(sql_string(v) for v in values)})"


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with ``prefix`` (escape char ``\\``)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def filter_sql(flt: Optional[IndexFilter]) -> Optional[str]:
    """``flt`` as one SQL predicate over the FILTER_FIELDS columns (None: no condition).

    The one translation both LanceDB indexes use. Durations: min and max inclusive;
    arrival: from inclusive, to exclusive (IndexFilter's own convention).
    """
    if flt is None or flt.is_empty():
        return None
    parts: list[str] = []
    if flt.media_kinds is not None:
        parts.append(_in_list("media_kind", flt.media_kinds))
    if flt.item_kinds is not None:
        parts.append(_in_list("item_kind", flt.item_kinds))
    if flt.languages is not None:
        parts.append(_in_list("language", flt.languages))
    if flt.media_ids is not None:
        parts.append(_in_list("media_id", flt.media_ids))
    if flt.exclude_media_ids is not None:
        parts.append(_in_list("media_id", flt.exclude_media_ids, negate=True))
    if flt.min_duration_s is not None:
        parts.append(f"duration_s >= {_sql_number(flt.min_duration_s)}")
    if flt.max_duration_s is not None:
        parts.append(f"duration_s <= {_sql_number(flt.max_duration_s)}")
    if flt.arrived_from_s is not None:
        parts.append(f"arrived_at_s >= {_sql_number(flt.arrived_from_s)}")
    if flt.arrived_to_s is not None:
        parts.append(f"arrived_at_s < {_sql_number(flt.arrived_to_s)}")
    if flt.source_prefix is not None:
        parts.append(f"source_uri LIKE {sql_string(like_prefix(flt.source_prefix))} ESCAPE '\\'")
    return " AND ".join(f"({p})" for p in parts)


def _ids_predicate(ids: Sequence[str]) -> str:
    return _in_list("entry_id", ids)


# ---- connections -----------------------------------------------------------------------------
# One connection per (process, root, consistency): opening one costs a few ms and LanceDB's
# connection and table handles are safe to share between threads (the sync API hands every
# call to one background event loop). Keyed by pid so a forked child never reuses its
# parent's handles.
_CONNECTIONS: dict[tuple, object] = {}
_CONNECTIONS_LOCK = threading.Lock()


def connect(root: str, storage_options: Optional[dict] = None, read_consistency_s: float = 0.0):
    import lancedb

    key = (os.getpid(), root, tuple(sorted((storage_options or {}).items())), read_consistency_s)
    with _CONNECTIONS_LOCK:
        db = _CONNECTIONS.get(key)
        if db is None:
            if "://" not in root:
                os.makedirs(root, exist_ok=True)
            db = lancedb.connect(
                root,
                # 0: every read checks for commits made by other processes (a Dagster run
                # writes while the webserver searches); a cheap look at the latest version.
                read_consistency_interval=dt.timedelta(seconds=read_consistency_s),
                storage_options=storage_options or None,
            )
            _CONNECTIONS[key] = db
        return db


def _is_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(w in text for w in _CONFLICT_WORDS)


def _retry(fn, what: str, retries: int):
    """``fn()``, retried with jittered exponential backoff while LanceDB reports a commit race."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:  # lancedb raises plain RuntimeError/OSError/ValueError here
            if attempt == retries or not _is_conflict(exc):
                raise
            delay = min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random())
            get_dagster_logger().info(f"{what}: lost a commit race ({exc}); retry {attempt + 1} in {delay:.2f}s")
            time.sleep(delay)


def _table_names(db) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        resp = db.list_tables(page_token=token, limit=1000)
        names.extend(resp.tables)
        token = getattr(resp, "page_token", None)
        if not token or not resp.tables:
            return names


def _open(db, name: str):
    try:
        return db.open_table(name)
    except (ValueError, FileNotFoundError) as exc:  # "Table 'x' was not found"
        if "not found" in str(exc).lower() or isinstance(exc, FileNotFoundError):
            return None
        raise


def _create(db, name: str, schema: pa.Schema, retries: int):
    """Create the empty table (or open it when another writer created it first)."""
    def attempt():
        try:
            return db.create_table(name, schema=schema, exist_ok=True)
        except Exception as exc:
            table = _open(db, name)
            if table is not None:
                return table
            raise exc
    return _retry(attempt, f"create {name}", retries)


def _merge_insert(table, data: pa.Table, retries: int) -> None:
    def attempt():
        (table.merge_insert("entry_id").when_matched_update_all().when_not_matched_insert_all()
         .execute(data))
    _retry(attempt, f"upsert into {table.name}", retries)


def _delete_ids(table, ids: list[str], retries: int) -> None:
    """Delete rows by entry_id, in chunks that keep each predicate a reasonable size."""
    for start in range(0, len(ids), _ID_CHUNK):
        pred = _ids_predicate(ids[start:start + _ID_CHUNK])
        _retry(lambda: table.delete(pred), f"delete from {table.name}", retries)


def _dedupe_last(entries: pa.Table) -> pa.Table:
    """Keep the last row of each entry_id (merge_insert refuses two source rows per key)."""
    ids = entries.column("entry_id").to_pylist()
    last = {v: i for i, v in enumerate(ids)}
    if len(last) == len(ids):
        return entries
    return entries.take(pa.array(sorted(last.values()), pa.int64()))


def _has_index(table, column: str) -> Optional[object]:
    for idx in table.list_indices():
        if column in list(idx.columns):
            return idx
    return None


def _unindexed_rows(table, index) -> int:
    stats = table.index_stats(index.name)
    return 0 if stats is None else int(stats.num_unindexed_rows)


_ANN_INDEX_PREFIX = "vector_ivfsq_p"

# The scalar indexes an ANN-sized table gets: BITMAP for the few-valued columns, BTREE
# (which also serves LIKE 'prefix%') for the rest.
_SCALAR_INDEXES = {"entry_id": "btree", "media_id": "btree", "source_uri": "btree", "arrived_at_s": "btree",
                   "duration_s": "btree", "media_kind": "bitmap", "item_kind": "bitmap", "language": "bitmap"}


def _index_partitions(index) -> int:
    """The partition count an ANN index was built with (0 when unknown or none)."""
    name = getattr(index, "name", "") or ""
    tail = name[len(_ANN_INDEX_PREFIX):]
    return int(tail) if name.startswith(_ANN_INDEX_PREFIX) and tail.isdigit() else 0


def _compact(table, keep_s: float, retries: int) -> None:
    """Merge small fragments, fold new rows into the indexes, drop versions older than keep_s."""
    _retry(lambda: table.optimize(cleanup_older_than=dt.timedelta(seconds=keep_s)), f"optimize {table.name}", retries)


def vector_table_name(model_id: str) -> str:
    """A LanceDB table name for ``model_id``: a readable safe form plus a hash of the exact id."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", model_id).strip("_")[:60] or "model"
    return f"{VECTOR_TABLE_PREFIX}{safe}__{hashlib.sha1(model_id.encode()).hexdigest()[:10]}"


def _match_kwargs(row: dict) -> dict:
    return dict(entry_id=row["entry_id"], media_id=row["media_id"], item_kind=row["item_kind"],
                item_index=int(row["item_index"]))


# ---- vectors ---------------------------------------------------------------------------------
class LanceVectorIndexResource(VectorIndexResource):
    """Serving vector index in LanceDB: one table per model_id, cosine similarity.

    Exact search below ``ann_min_rows`` rows; from there ``optimize()`` builds an IVF_SQ
    index (8-bit scalar-quantised vectors in ``rows / ann_partition_rows`` partitions),
    searched in the ``nprobes`` nearest partitions with the best ``refine_factor × k``
    candidates re-ranked on the stored vectors, so the scores are exact cosine similarities.
    Filters are applied before the top-k (prefilter).
    """

    root: str = Field(default_factory=config.index_root, description="LanceDB folder (or s3:// URI) of the index.")
    storage_options: dict[str, str] = Field(default_factory=dict, description="LanceDB object store options.")
    ann_min_rows: int = Field(
        default_factory=lambda: config.get_int("MEDIAINTEL_INDEX_ANN_MIN_ROWS"),
        description="A table this large gets an ANN index at optimize(); smaller ones are searched exactly.",
    )
    ann_partition_rows: int = Field(default=4096, description="Target rows per IVF partition of the ANN index.")
    nprobes: int = Field(default=12, description="IVF partitions searched per query (more only when a filter leaves < k).")
    refine_factor: int = Field(default=2, description="Re-rank refine_factor × k index candidates on the stored vectors.")
    exact_filter_rows: int = Field(
        default=10_000, description="A filtered query on an ANN table whose filter matches at most this many rows "
                                    "searches those rows exactly.")
    read_consistency_s: float = Field(default=0.0, description="How stale a read may be, seconds (0: always latest).")
    keep_versions_s: float = Field(default=3600.0, description="optimize() deletes table versions older than this.")
    max_commit_retries: int = Field(default=12, description="Retries after a lost commit race.")
    batch_rows: int = Field(default=50_000, description="Rows per merge_insert.")

    @property
    def backend(self) -> str:
        return "lancedb"

    # ---- tables --------------------------------------------------------------------------
    def _db(self):
        return connect(self.root, dict(self.storage_options), self.read_consistency_s)

    def _table(self, model_id: str):
        return _open(self._db(), vector_table_name(model_id))

    def _tables(self) -> dict[str, object]:
        """model_id -> table, for every vector table under the root."""
        db = self._db()
        out = {}
        for name in _table_names(db):
            if not name.startswith(VECTOR_TABLE_PREFIX):
                continue
            table = _open(db, name)
            if table is None:  # dropped meanwhile
                continue
            model = (table.schema.metadata or {}).get(MODEL_ID_KEY)
            if model is not None:
                out[model.decode()] = table
        return out

    def _table_schema(self, model_id: str, dim: int) -> pa.Schema:
        fields = [f if f.name != "vector" else pa.field("vector", pa.list_(pa.float32(), dim)) for f in ENTRY_SCHEMA]
        return pa.schema(fields, metadata={MODEL_ID_KEY: model_id.encode()})

    @staticmethod
    def dim(table) -> int:
        return table.schema.field("vector").type.list_size

    # ---- writes --------------------------------------------------------------------------
    def upsert(self, model_id: str, entries: pa.Table) -> int:
        """Insert or replace ``entries`` (ENTRY_SCHEMA; all of ``model_id``) by entry_id; the count.

        The table is created on the first upsert with that batch's vector dim; a batch of
        another dim is refused (a model's vectors have one dim).
        """
        if entries.num_rows == 0:
            return 0
        entries = entries.select(ENTRY_SCHEMA.names)
        models = pc.unique(entries.column("model_id")).to_pylist()
        if models != [model_id]:
            raise ValueError(f"upsert for {model_id!r} got entries of {models}")
        vectors = entries.column("vector").combine_chunks()
        lengths = pc.unique(pc.list_value_length(vectors)).to_pylist()
        if len(lengths) != 1 or not lengths[0]:
            raise ValueError(f"{model_id}: vectors of one non-zero dim expected, got lengths {lengths}")
        dim = int(lengths[0])
        table = self._table(model_id)
        if table is None:
            table = _create(self._db(), vector_table_name(model_id), self._table_schema(model_id, dim),
                            self.max_commit_retries)
        if self.dim(table) != dim:
            raise ValueError(f"{model_id}: the index holds {self.dim(table)}-d vectors, got {dim}-d")
        flat = pc.list_flatten(vectors).cast(pa.float32())
        if not np.isfinite(flat.to_numpy(zero_copy_only=False)).all():
            raise ValueError(f"{model_id}: non-finite vector values")
        fixed = pa.FixedSizeListArray.from_arrays(flat, dim)
        data = entries.set_column(entries.schema.get_field_index("vector"), pa.field("vector", fixed.type), fixed)
        data = _dedupe_last(data.cast(self._table_schema(model_id, dim)))
        for start in range(0, data.num_rows, self.batch_rows):
            _merge_insert(table, data.slice(start, self.batch_rows), self.max_commit_retries)
        return entries.num_rows

    def delete(self, model_id: str, ids: Sequence[str]) -> int:
        """Remove these entries of ``model_id`` (unknown ids are ignored); the count asked."""
        ids = list(ids)
        table = self._table(model_id)
        if table is None or not ids:
            return len(ids)
        _delete_ids(table, ids, self.max_commit_retries)
        return len(ids)

    def drop(self, model_id: str) -> None:
        """Remove every entry of ``model_id`` (its table)."""
        try:
            self._db().drop_table(vector_table_name(model_id))
        except (ValueError, FileNotFoundError) as exc:
            if "not found" not in str(exc).lower() and not isinstance(exc, FileNotFoundError):
                raise

    # ---- reads ---------------------------------------------------------------------------
    def query(self, model_id: str, vector: np.ndarray, k: int, flt: Optional[IndexFilter] = None) -> list[Match]:
        """The ``k`` entries of ``model_id`` nearest ``vector`` (cosine), best first, meeting ``flt``."""
        table = self._table(model_id)
        if table is None or k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32).ravel()
        if q.shape[0] != self.dim(table):
            raise ValueError(f"{model_id}: query of dim {q.shape[0]}, the index holds {self.dim(table)}-d vectors")
        where = filter_sql(flt)

        def search(how: str) -> list[dict]:
            s = (table.search(q, vector_column_name="vector").distance_type("cosine").limit(int(k))
                 .select([*_MATCH_COLUMNS, "_distance"]))
            if where is not None:
                s = s.where(where, prefilter=True)
            if how == "exact":
                s = s.bypass_vector_index()
            elif how == "widen":  # past nprobes partitions until k rows pass the filter
                s = s.refine_factor(self.refine_factor).maximum_nprobes(0).minimum_nprobes(self.nprobes)
            else:
                s = s.refine_factor(self.refine_factor).nprobes(self.nprobes)
            return s.to_arrow().to_pylist()

        if where is None or _has_index(table, "vector") is None:
            rows = search("ann")  # without an index this is the exact flat search
        else:
            # Count the matches first (a few ms through the scalar indexes). Few: search just
            # them, exactly: an ANN search would look for them only in the nprobes partitions
            # nearest the query and miss the best ones elsewhere. Many: ANN with the prefilter,
            # widened past nprobes partitions when those hold fewer than k.
            matching = table.count_rows(where)
            if matching == 0:
                return []
            rows = search("exact" if matching <= self.exact_filter_rows else "ann")
            if len(rows) < min(k, matching):
                rows = search("widen")
        return [Match(score=1.0 - float(r["_distance"]), model_id=model_id, **_match_kwargs(r)) for r in rows]

    def fetch(self, model_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these ids (missing ids are absent)."""
        ids = list(dict.fromkeys(ids))
        table = self._table(model_id)
        out: dict[str, np.ndarray] = {}
        if table is None:
            return out
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start:start + _ID_CHUNK]
            got = (table.search().where(_ids_predicate(chunk)).select(["entry_id", "vector"])
                   .limit(len(chunk)).to_arrow())
            vecs = got.column("vector").combine_chunks()
            mat = pc.list_flatten(vecs).to_numpy().reshape(len(vecs), -1) if len(vecs) else None
            for i, eid in enumerate(got.column("entry_id").to_pylist()):
                out[eid] = mat[i].copy()
        return out

    def counts(self) -> dict[str, int]:
        """Entries per model_id."""
        return {model: table.count_rows() for model, table in self._tables().items()}

    # ---- maintenance ---------------------------------------------------------------------
    def optimize(self) -> dict:
        """Per model: build the ANN index once a table holds ``ann_min_rows`` vectors; later,
        fold new rows into it (incremental), or rebuild it once the table has outgrown its
        partitions twice over; compact every table and drop versions older than
        ``keep_versions_s``. Call it after a batch of upserts. What it did, per model id."""
        done: dict[str, str] = {}
        for model, table in self._tables().items():
            rows = table.count_rows()
            index = _has_index(table, "vector")
            want = self.ann_params(rows)["num_partitions"]
            built = _index_partitions(index)
            if (index is None and rows >= self.ann_min_rows) or (index is not None and want >= 2 * built):
                self._build_ann(table, rows)
                done[model] = f"{'re' if index is not None else ''}built IVF_SQ over {rows} rows ({want} partitions)"
                continue
            unindexed = index is not None and _unindexed_rows(table, index)
            _compact(table, self.keep_versions_s, self.max_commit_retries)
            if index is None:
                done[model] = "exact search"
            else:
                done[model] = "refreshed ANN index" if unindexed else "up to date"
        return done

    def ann_params(self, rows: int) -> dict:
        """The IVF_SQ build parameters for a table of ``rows`` vectors."""
        return {"num_partitions": max(1, min(4096, rows // self.ann_partition_rows))}

    def _build_ann(self, table, rows: int) -> None:
        from lancedb.index import Bitmap, BTree, IvfSq

        # Scalar indexes for what a query filters on, so that a prefilter over a large table
        # reads index pages instead of whole columns (1M rows: ~200 ms -> ~25 ms a query), and
        # on entry_id, so merge_insert's join and delete/fetch by id are lookups.
        for column, kind in _SCALAR_INDEXES.items():
            if _has_index(table, column) is None:
                config = BTree() if kind == "btree" else Bitmap()
                _retry(lambda: table.create_index(column, replace=True, config=config),
                       f"index {column} of {table.name}", self.max_commit_retries)
        params = self.ann_params(rows)
        old = _has_index(table, "vector")
        # The partition count goes into the index name: optimize() reads it back to see when
        # the table has outgrown the index (incremental updates never add partitions).
        name = f"{_ANN_INDEX_PREFIX}{params['num_partitions']}"
        _retry(lambda: table.create_index("vector", replace=True, name=name,  # unified API: column first
                                          config=IvfSq(distance_type="cosine", **params)),
               f"ANN index of {table.name}", self.max_commit_retries)
        if old is not None and old.name != name:
            _retry(lambda: table.drop_index(old.name), f"drop old ANN index of {table.name}", self.max_commit_retries)


# ---- keywords ----------------------------------------------------------------------------------
class LanceTextIndexResource(TextIndexResource):
    """Keyword index: LanceDB native full-text search (BM25) over each entry's ``text``.

    The index is built on the first upsert; rows written after it are searched flat beside
    it until ``optimize()`` (also run by an upsert once ``reindex_rows`` rows are unindexed)
    folds them in. Query text is matched as plain words (no query syntax), so quotes,
    brackets or operators in it are just characters.
    """

    root: str = Field(default_factory=config.index_root, description="LanceDB folder (or s3:// URI) of the index.")
    storage_options: dict[str, str] = Field(default_factory=dict, description="LanceDB object store options.")
    table_name: str = Field(default=KEYWORD_TABLE, description="The keyword table.")
    reindex_rows: int = Field(default=10_000, description="Fold new rows into the FTS index once this many are unindexed.")
    read_consistency_s: float = Field(default=0.0, description="How stale a read may be, seconds (0: always latest).")
    keep_versions_s: float = Field(default=3600.0, description="optimize() deletes table versions older than this.")
    max_commit_retries: int = Field(default=12, description="Retries after a lost commit race.")

    def _db(self):
        return connect(self.root, dict(self.storage_options), self.read_consistency_s)

    def _table(self):
        return _open(self._db(), self.table_name)

    def upsert(self, entries: pa.Table) -> int:
        """Insert or replace ``entries`` (TEXT_ENTRY_SCHEMA) by entry_id; the count."""
        if entries.num_rows == 0:
            return 0
        data = _dedupe_last(entries.select(TEXT_ENTRY_SCHEMA.names).cast(TEXT_ENTRY_SCHEMA))
        table = self._table() or _create(self._db(), self.table_name, TEXT_ENTRY_SCHEMA, self.max_commit_retries)
        _merge_insert(table, data, self.max_commit_retries)
        index = _has_index(table, "text")
        if index is None:
            self._build(table)
        elif _unindexed_rows(table, index) >= self.reindex_rows:
            self.optimize()
        return entries.num_rows

    def _build(self, table) -> None:
        from lancedb.index import FTS

        def attempt():
            if _has_index(table, "text") is None:  # another writer may have built it meanwhile
                table.create_index("text", replace=True, config=FTS(with_position=False))
        _retry(attempt, f"FTS index of {table.name}", self.max_commit_retries)

    def optimize(self) -> dict:
        """Fold rows written since the FTS index was built into it; what it did."""
        table = self._table()
        if table is None:
            return {}
        index = _has_index(table, "text")
        if index is None:
            self._build(table)
            return {"keyword": "built FTS index"}
        unindexed = _unindexed_rows(table, index)
        _compact(table, self.keep_versions_s, self.max_commit_retries)
        return {"keyword": "refreshed FTS index" if unindexed else "up to date"}

    def delete(self, ids: Sequence[str]) -> int:
        ids = list(ids)
        table = self._table()
        if table is None or not ids:
            return len(ids)
        _delete_ids(table, ids, self.max_commit_retries)
        return len(ids)

    def search(self, text: str, k: int, flt: Optional[IndexFilter] = None) -> list[Match]:
        """The ``k`` best BM25 matches of ``text``, best first; ``extra['text']`` holds each entry's text."""
        from lancedb.query import MatchQuery

        table = self._table()
        if table is None or k <= 0 or not (text or "").strip():
            return []
        if _has_index(table, "text") is None:
            self._build(table)
        # MatchQuery: the words of `text`, OR-ed and BM25-scored; nothing in it is syntax.
        search = table.search(MatchQuery(text, "text"), query_type="fts").limit(int(k)).select(
            [*_MATCH_COLUMNS, "text", "_score"])
        where = filter_sql(flt)
        if where is not None:
            search = search.where(where, prefilter=True)
        rows = search.to_arrow().to_pylist()
        rows.sort(key=lambda r: -float(r["_score"]))
        return [Match(score=float(r["_score"]), model_id=KEYWORD_MODEL_ID, extra={"text": r["text"]},
                      **_match_kwargs(r)) for r in rows]

    def count(self) -> int:
        table = self._table()
        return 0 if table is None else table.count_rows()


__all__ = ["LanceTextIndexResource", "LanceVectorIndexResource", "filter_sql", "like_prefix", "vector_table_name"]
