"""Pinecone: the production serving index, through the real ``pinecone`` client (10.2).

A Pinecone index is dense, cosine and of one dimension; each ``model_id`` is its own
namespace in it, so vectors of two models never meet. Models of another dimension (CLIP's
512 beside MiniLM's 384) need their own index: ``host`` may list several hosts, one index
per dimension, and each call goes to the index of its vectors' dimension (writes and reads
by id go to every listed index; an index without the namespace has nothing to do). A vector's id is its
``entry_id``; its metadata holds the filter columns (``FILTER_FIELDS``) and ``source_dirs``,
the folder prefixes of its source_uri (Pinecone has no prefix operator; see
``source_dirs``). Pinecone metadata cannot hold nulls, so a null field is left out, and a
filter on that field does not match the entry (as a SQL comparison with NULL does not).

Every call goes through one retry loop (``_call``): 429, 5xx, 408, a dropped connection and
a timeout are retried with capped exponential backoff and jitter (a 429's Retry-After is
honoured); any other 4xx raises at once. Writes are idempotent (upsert and delete by id), so
a retry after a timeout cannot double anything. The client's own transport retries (three,
fixed, on the data plane: 10.2 takes no retry_config there) are switched off, so
``retries`` means what it says and the count is observable (``stats()``).

Docs: docs/pinecone.md (settings, namespaces, metadata, filters, retries, what the tests'
stand-in covers).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

import numpy as np
import pyarrow as pa
from dagster import get_dagster_logger
from pydantic import Field, PrivateAttr

from .. import config
from .vector_index import FILTER_FIELDS, IndexFilter, Match, VectorIndexResource, parse_entry_id

# Pinecone's data-plane limits (docs.pinecone.io, "Limits"): an upsert request holds at most
# 1000 vectors and 2 MB; a delete at most 1000 ids; top_k at most 10000; $in/$nin lists at
# most 10000 values.
MAX_BATCH = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_TOP_K = 10_000
MAX_FILTER_VALUES = 10_000
# Fetch is a GET with every id in the query string (ids=...&ids=...): an entry id is ~70
# characters and ~90 once percent-encoded, so 50 keep the URL near 5 KB, under the 8 KB
# many proxies and load balancers allow.
FETCH_BATCH = 50
# A float in the JSON body is at most ~24 characters with its comma: the upper bound used
# to keep a batch under MAX_REQUEST_BYTES without encoding it twice.
_BYTES_PER_FLOAT = 25
_REQUEST_HEADROOM = 64 * 1024


class PineconeIndexError(RuntimeError):
    """A Pinecone call that failed for good: a permanent error (at once), or every try failed."""

    def __init__(self, message: str, op: str = "", status: Optional[int] = None, tries: int = 0):
        super().__init__(message)
        self.op, self.status, self.tries = op, status, tries


class PineconeIndexTimeout(PineconeIndexError, TimeoutError):
    """Every try of a Pinecone call ran past ``timeout_s``."""


def source_dirs(source_uri: str) -> list[str]:
    """Every prefix of ``source_uri`` that ends with '/', shortest first.

    ``s3://b/in/a.mp4`` -> ``['s3:/', 's3://', 's3://b/', 's3://b/in/']``. Stored on each
    vector, they turn "source_uri starts with this folder" into ``$in`` on a list field.
    """
    return [source_uri[: i + 1] for i, ch in enumerate(source_uri) if ch == "/"]


def source_prefix_filter(prefix: str) -> Optional[dict]:
    """The Pinecone filter for ``IndexFilter.source_prefix``.

    A prefix ending with '/' is a folder: entries whose source_uri lies under it. A prefix
    not ending with '/' is read as a whole last path component: the file itself, or the
    folder of that name (``/data/inbox`` matches ``/data/inbox`` and ``/data/inbox/a.mp4``,
    not ``/data/inbox2/a.mp4``). LanceDB's plain string prefix would also match the last;
    Pinecone has no prefix operator, so a prefix that ends inside a component cannot be
    asked. The empty prefix is no condition.
    """
    if not prefix:
        return None
    if prefix.endswith("/"):
        return {"source_dirs": {"$in": [prefix]}}
    return {"$or": [{"source_uri": {"$eq": prefix}}, {"source_dirs": {"$in": [prefix + "/"]}}]}


def _values(name: str, values: Sequence) -> list:
    out = list(values)
    if len(out) > MAX_FILTER_VALUES:
        raise ValueError(f"IndexFilter.{name} holds {len(out)} values; Pinecone takes at most {MAX_FILTER_VALUES}")
    return out


def matches_nothing(flt: Optional[IndexFilter]) -> bool:
    """An empty inclusion list (``media_kinds=[]`` ...) admits no entry: no need to ask."""
    return flt is not None and any(
        v is not None and len(v) == 0
        for v in (flt.media_kinds, flt.item_kinds, flt.languages, flt.media_ids))


def pinecone_filter(flt: Optional[IndexFilter]) -> Optional[dict]:
    """``flt`` in Pinecone's metadata filter language ($eq/$in/$nin/$gte/$lte/$lt/$or/$and).

    Ranges: ``min_duration_s`` and ``max_duration_s`` are inclusive, ``arrived_from_s``
    inclusive and ``arrived_to_s`` exclusive. An empty exclusion list is no condition; check
    ``matches_nothing`` first for empty inclusion lists.
    """
    if flt is None:
        return None
    clauses: list[dict] = []
    for name, key in (("media_kinds", "media_kind"), ("item_kinds", "item_kind"), ("languages", "language"),
                      ("media_ids", "media_id")):
        values = getattr(flt, name)
        if values is not None:
            clauses.append({key: {"$in": _values(name, values)}})
    if flt.exclude_media_ids:
        clauses.append({"media_id": {"$nin": _values("exclude_media_ids", flt.exclude_media_ids)}})
    for value, key, op in ((flt.min_duration_s, "duration_s", "$gte"), (flt.max_duration_s, "duration_s", "$lte"),
                           (flt.arrived_from_s, "arrived_at_s", "$gte"), (flt.arrived_to_s, "arrived_at_s", "$lt")):
        if value is not None:
            clauses.append({key: {op: float(value)}})
    if flt.source_prefix is not None:
        clause = source_prefix_filter(flt.source_prefix)
        if clause is not None:
            clauses.append(clause)
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def entry_metadata(row: dict) -> dict:
    """The Pinecone metadata of one ENTRY_SCHEMA row: its non-null filter fields and source_dirs."""
    md = {}
    for name in FILTER_FIELDS.names:
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # Pinecone metadata holds no nulls (a null is a 400); NaN is not JSON
        md[name] = value
    if row.get("source_uri"):
        md["source_dirs"] = source_dirs(row["source_uri"])
    return md


def _namespace(model_id: str) -> str:
    # Pinecone's rule for namespace names: 1-512 ASCII characters, no NUL.
    if not model_id or len(model_id) > 512 or not model_id.isascii() or "\x00" in model_id:
        raise ValueError(f"model_id {model_id!r} cannot name a Pinecone namespace (1-512 ASCII characters)")
    return model_id


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


def _upsert_batches(vectors: list[dict], size: int) -> Iterator[list[dict]]:
    """Batches of at most ``size`` vectors whose JSON body stays under Pinecone's 2 MB."""
    batch, nbytes = [], 0
    limit = MAX_REQUEST_BYTES - _REQUEST_HEADROOM
    for v in vectors:
        est = len(v["values"]) * _BYTES_PER_FLOAT + len(json.dumps(v["metadata"])) + len(v["id"]) + 64
        if batch and (len(batch) >= size or nbytes + est > limit):
            yield batch
            batch, nbytes = [], 0
        batch.append(v)
        nbytes += est
    if batch:
        yield batch


def _switch_off_client_retries(index: Any) -> bool:
    """Make the client's REST transport try once, so our loop is the only retry policy.

    pinecone 10.2's data-plane ``Index`` retries 3 times on 408/429/5xx and on transport
    errors (timeouts included) and takes no retry_config (only the control plane and gRPC
    do); left on, each of our tries would be up to 4 requests and ``retries`` would lie.
    This reaches into its transport (``_http._client._transport._config``); the tests check
    that one try is one request, so a client upgrade that moves it fails loudly there.
    """
    from pinecone import RetryConfig

    transport = getattr(getattr(getattr(index, "_http", None), "_client", None), "_transport", None)
    current = getattr(transport, "_config", None)
    if not isinstance(current, RetryConfig):
        get_dagster_logger().warning(
            "pinecone: could not switch off the client's own retries (its transport changed); "
            "each try may send up to 4 requests")
        return False
    transport._config = dataclasses.replace(current, max_retries=0)
    return True


class PineconeVectorIndexResource(VectorIndexResource):
    """The serving vector index on Pinecone (production): one namespace per model_id.

    Through the real ``pinecone`` client against the index's data-plane host (or hosts: one
    dense cosine index per vector dimension). Batched upserts; every call has a timeout, and
    429, 5xx and timeouts are retried with capped exponential backoff and jitter; other 4xx
    fail at once with the server's message. ``stats()`` counts the tries and retries.
    """

    api_key: str = Field(default_factory=lambda: config.get("PINECONE_API_KEY") or "",
                         description="Pinecone API key (default: PINECONE_API_KEY).")
    host: str = Field(default_factory=lambda: config.get("PINECONE_INDEX_HOST") or "",
                      description="The index's data-plane host, https://<index>-<project>.svc.<region>.pinecone.io, "
                                  "or several separated by commas, one index per vector dimension "
                                  "(default: PINECONE_INDEX_HOST).")
    timeout_s: float = Field(default_factory=lambda: config.get_float("MEDIAINTEL_PINECONE_TIMEOUT_S"),
                             description="Timeout of one try of every call, seconds (connect and each read) "
                                         "(default: MEDIAINTEL_PINECONE_TIMEOUT_S).")
    retries: int = Field(default_factory=lambda: config.get_int("MEDIAINTEL_PINECONE_RETRIES"),
                         description="Retries of a call answered 429/5xx or timed out "
                                     "(default: MEDIAINTEL_PINECONE_RETRIES).")
    batch_size: int = Field(default=100, description="Vectors per upsert request (at most 1000; a batch is also "
                                                     "cut to stay under Pinecone's 2 MB request limit).")
    backoff_s: float = Field(default=0.5, description="First retry's backoff, seconds; doubles on each retry.")
    backoff_max_s: float = Field(default=20.0, description="Cap of one backoff (and of a 429's Retry-After), seconds.")

    _indexes: dict = PrivateAttr(default_factory=dict)  # host -> pinecone Index
    _by_dim: Optional[dict] = PrivateAttr(default=None)  # dimension -> host, with several hosts
    _stats: dict = PrivateAttr(default_factory=lambda: {"calls": 0, "tries": 0, "retries": 0, "retried": {}})

    @property
    def backend(self) -> str:
        return "pinecone"

    def stats(self) -> dict:
        """Calls made, tries sent, retries taken and their reasons ({'429': n, '503': n, 'timeout': n})."""
        return {**self._stats, "retried": dict(self._stats["retried"])}

    # ---- the client and the retry loop ---------------------------------------------------
    def hosts(self) -> list[str]:
        """The index hosts ``host`` lists (one, or several separated by commas)."""
        return [h.strip() for h in self.host.split(",") if h.strip()]

    def _client(self, host: str) -> Any:
        if host in self._indexes:
            return self._indexes[host]
        if not self.api_key:
            raise PineconeIndexError("no Pinecone API key: set PINECONE_API_KEY (or the resource's api_key)")
        if not host:
            raise PineconeIndexError("no Pinecone index host: set PINECONE_INDEX_HOST to the index's data-plane host "
                                     "(https://<index>-<project>.svc.<region>.pinecone.io, shown by the console "
                                     "or describe_index)")
        if not self.timeout_s > 0 or self.retries < 0 or not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"PineconeVectorIndexResource needs timeout_s > 0, retries >= 0 and 1 <= batch_size <= "
                             f"{MAX_BATCH}; got {self.timeout_s}, {self.retries}, {self.batch_size}")
        from pinecone import Pinecone
        from pinecone.errors import PineconeValueError

        try:
            index = Pinecone(api_key=self.api_key, timeout=self.timeout_s).Index(host=host)
        except PineconeValueError as exc:
            raise PineconeIndexError(f"PINECONE_INDEX_HOST: {host!r} is not a usable Pinecone index host: "
                                     f"{exc}") from exc
        _switch_off_client_retries(index)
        self._indexes[host] = index
        return index

    def _all(self) -> list[tuple[str, Any]]:
        """(host, client) of every listed index."""
        return [(h, self._client(h)) for h in self.hosts() or [""]]

    def _host_for(self, dim: int, model_id: str) -> tuple[str, Any]:
        """The index for vectors of ``dim`` dimensions: the one host, or the listed index of that dimension."""
        listed = self._all()
        if len(listed) == 1:
            return listed[0]  # its dimension is checked by Pinecone (a 400 that names both)
        if self._by_dim is None:
            by_dim: dict[int, str] = {}
            for host, index in listed:
                d = self._call("describe_index_stats", host, lambda i=index: i.describe_index_stats(
                    timeout=self.timeout_s)).dimension
                if d is None:
                    raise PineconeIndexError(f"the Pinecone index at {host} reports no dimension (not a dense index); "
                                             f"PINECONE_INDEX_HOST should list dense cosine indexes")
                if d in by_dim:
                    raise PineconeIndexError(f"PINECONE_INDEX_HOST lists two indexes of {d} dimensions ({by_dim[d]}, "
                                             f"{host}): list one index per dimension")
                by_dim[int(d)] = host
            self._by_dim = by_dim
        if dim not in self._by_dim:
            raise PineconeIndexError(f"no Pinecone index for {dim}-d vectors (model {model_id}): PINECONE_INDEX_HOST "
                                     f"lists indexes of {sorted(self._by_dim)} dimensions; create a {dim}-d cosine "
                                     f"index and add its host")
        host = self._by_dim[dim]
        return host, self._client(host)

    def _backoff(self, attempt: int, retry_after: Optional[float]) -> float:
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** attempt) * (0.5 + 0.5 * random.random())
        if retry_after is not None:
            delay = max(delay, min(self.backoff_max_s, retry_after))
        return delay

    def _call(self, op: str, host: str, fn: Callable[[], Any], missing_ok: bool = False) -> Any:
        """``fn()`` (one client call), retried on 429/5xx/408/timeouts/dropped connections.

        ``missing_ok``: a 404 that says the namespace is not there means nothing to do
        (serverless indexes answer it to a delete in an empty namespace); returns None.
        """
        import httpx
        from pinecone.errors import (ApiError, PineconeConnectionError, PineconeTimeoutError, RateLimitError,
                                     ResponseParsingError)

        tries = self.retries + 1
        self._stats["calls"] += 1
        reasons: list[str] = []
        last: Optional[BaseException] = None
        log = get_dagster_logger()
        for attempt in range(tries):
            self._stats["tries"] += 1
            retry_after = None
            try:
                return fn()
            except RateLimitError as exc:
                reason, retry_after, last = "429", exc.retry_after, exc
            except ApiError as exc:
                status = exc.status_code
                if status in (408,) or 500 <= status <= 599:
                    reason, last = str(status), exc
                elif status == 404 and missing_ok and "namespace" in str(exc).lower():
                    return None
                else:
                    raise self._permanent(op, host, exc) from exc
            except PineconeTimeoutError as exc:
                reason, last = "timeout", exc
            except PineconeConnectionError as exc:
                if isinstance(exc.__cause__, httpx.ConnectError):
                    raise PineconeIndexError(f"pinecone {op}: cannot connect to the index host {host}: {exc}; "
                                             f"check PINECONE_INDEX_HOST", op=op, tries=attempt + 1) from exc
                reason, last = "connection", exc  # dropped mid-request: transient
            except ResponseParsingError as exc:
                raise PineconeIndexError(f"pinecone {op}: {host} did not answer as a Pinecone index "
                                         f"({exc}); check PINECONE_INDEX_HOST", op=op, tries=attempt + 1) from exc
            reasons.append(reason)
            if attempt + 1 == tries:
                break
            delay = self._backoff(attempt, retry_after)
            self._stats["retries"] += 1
            self._stats["retried"][reason] = self._stats["retried"].get(reason, 0) + 1
            log.warning(f"pinecone {op}: {reason} on try {attempt + 1}/{tries}; retrying in {delay:.2f} s")
            time.sleep(delay)
        where = (f"host {host}, timeout_s={self.timeout_s:g} (MEDIAINTEL_PINECONE_TIMEOUT_S), "
                 f"retries={self.retries} (MEDIAINTEL_PINECONE_RETRIES)")
        if all(r == "timeout" for r in reasons):
            raise PineconeIndexTimeout(f"pinecone {op}: no answer within {self.timeout_s:g} s on any of {tries} "
                                       f"tries ({where})", op=op, tries=tries) from last
        raise PineconeIndexError(f"pinecone {op}: failed on all {tries} tries ({', '.join(reasons)}; last: {last}; "
                                 f"{where})", op=op, status=getattr(last, "status_code", None), tries=tries) from last

    def _permanent(self, op: str, host: str, exc: Any) -> PineconeIndexError:
        status = exc.status_code
        if status in (401, 403):
            hint = "check PINECONE_API_KEY (and that the key's project owns this index)"
        elif status == 404:
            hint = f"no such index at {host}: check PINECONE_INDEX_HOST (the index's data-plane host)"
        else:
            hint = "not retried (the request itself is wrong)"
        return PineconeIndexError(f"pinecone {op} rejected ({exc}); {hint}", op=op, status=status, tries=1)

    # ---- the interface ---------------------------------------------------------------------
    def upsert(self, model_id: str, entries: pa.Table) -> int:
        ns = _namespace(model_id)
        if entries.num_rows == 0:
            return 0
        others = sorted(set(entries.column("model_id").to_pylist()) - {model_id}, key=str)
        if others:
            raise ValueError(f"upsert into {model_id!r} holds entries of other models: {others}")
        cols = ["entry_id", *FILTER_FIELDS.names, "vector"]
        vectors = [{"id": r["entry_id"], "values": r["vector"], "metadata": entry_metadata(r)}
                   for r in entries.select(cols).to_pylist()]
        dims = {len(v["values"] or ()) for v in vectors}
        if len(dims) != 1:
            raise ValueError(f"upsert into {model_id!r}: vectors of several dimensions {sorted(dims)}")
        host, index = self._host_for(dims.pop(), model_id)
        total = 0
        for batch in _upsert_batches(vectors, self.batch_size):
            resp = self._call("upsert", host, lambda b=batch: index.upsert(vectors=b, namespace=ns,
                                                                           timeout=self.timeout_s))
            total += resp.upserted_count
        return total

    def delete(self, model_id: str, ids: Sequence[str]) -> int:
        ns = _namespace(model_id)
        ids = list(ids)
        if not ids:
            return 0
        for host, index in self._all():  # ids name their model: another index has no such namespace
            for batch in _batches(ids, min(self.batch_size, MAX_BATCH)):
                self._call("delete", host, lambda b=batch, i=index: i.delete(ids=b, namespace=ns,
                                                                             timeout=self.timeout_s), missing_ok=True)
        return len(ids)

    def query(self, model_id: str, vector: np.ndarray, k: int, flt: Optional[IndexFilter] = None) -> list[Match]:
        ns = _namespace(model_id)
        if k <= 0 or matches_nothing(flt):
            return []
        if k > MAX_TOP_K:
            raise ValueError(f"Pinecone returns at most {MAX_TOP_K} matches per query; asked for {k}")
        q = np.asarray(vector, dtype=np.float32)
        if q.ndim != 1:
            raise ValueError(f"query vector must be 1-D, got shape {q.shape}")
        where = pinecone_filter(flt)
        host, index = self._host_for(int(q.shape[0]), model_id)
        # Ids only: an entry id carries media_id, item_kind and item_index, and without
        # metadata Pinecone allows top_k up to 10000 (1000 with it).
        resp = self._call("query", host, lambda: index.query(vector=q.tolist(), top_k=int(k), namespace=ns,
                                                             filter=where, include_values=False,
                                                             include_metadata=False, timeout=self.timeout_s))
        out = []
        for m in resp.matches:
            try:
                media_id, item_kind, item_index, _ = parse_entry_id(m.id)
            except ValueError:
                get_dagster_logger().warning(f"pinecone namespace {ns!r} holds {m.id!r}, not an entry id: skipped")
                continue
            out.append(Match(entry_id=m.id, media_id=media_id, item_kind=item_kind, item_index=item_index,
                             score=float(m.score), model_id=model_id))
        return out

    def fetch(self, model_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        ns = _namespace(model_id)
        ids = list(dict.fromkeys(ids))
        out: dict[str, np.ndarray] = {}
        for host, index in (self._all() if ids else ()):
            for batch in _batches(ids, FETCH_BATCH):
                resp = self._call("fetch", host, lambda b=batch, i=index: i.fetch(ids=b, namespace=ns,
                                                                                  timeout=self.timeout_s),
                                  missing_ok=True)
                for vid, vec in (resp.vectors.items() if resp is not None else ()):
                    out[vid] = np.asarray(vec.values, dtype=np.float32)
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for host, index in self._all():
            resp = self._call("describe_index_stats", host, lambda i=index: i.describe_index_stats(
                timeout=self.timeout_s))
            for ns, summary in resp.namespaces.items():
                if summary.vector_count:
                    out[ns] = out.get(ns, 0) + int(summary.vector_count)
        return out

    def drop(self, model_id: str) -> None:
        ns = _namespace(model_id)
        for host, index in self._all():
            self._call("drop", host, lambda i=index: i.delete(delete_all=True, namespace=ns, timeout=self.timeout_s),
                       missing_ok=True)


__all__ = ["PineconeIndexError", "PineconeIndexTimeout", "PineconeVectorIndexResource", "entry_metadata",
           "matches_nothing", "pinecone_filter", "source_dirs", "source_prefix_filter"]
