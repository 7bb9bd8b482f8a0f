"""A local stand-in for Pinecone's data plane, for tests. It is NOT Pinecone.

It speaks the REST data-plane protocol that the real ``pinecone`` client (10.2) sends to an
index host, so ``Pinecone(api_key=...).Index(host=server.host)`` talks to it unchanged. The
wire format was read from the installed client (``pinecone/index/__init__.py``: the request
bodies it builds; ``pinecone/models/vectors/responses.py``: the camelCase fields it decodes).

Implemented, for one dense index with the cosine metric and a fixed dimension:

- ``POST /vectors/upsert`` ``{"vectors": [{"id", "values", "metadata"?}], "namespace"?}``
  -> ``{"upsertedCount": n}``; at most 1000 vectors (else 400) and 2 MB (else 413) per
  request, every vector of the index's dimension and not all zero (else 400), metadata values
  a string, number, boolean or list of strings (a null is a 400, as on Pinecone).
- ``POST /query`` ``{"vector", "topK", "namespace"?, "filter"?, "includeValues",
  "includeMetadata"}`` -> ``{"matches": [{"id", "score", "values", "metadata"?}],
  "namespace", "usage"}``; the score is the exact cosine similarity (numpy, float64), best
  first; topK 1..10000, at most 1000 when values or metadata are asked for (Pinecone's rule).
- ``GET /vectors/fetch?ids=..&ids=..&namespace=..`` -> ``{"vectors": {id: {...}}, "namespace"}``.
- ``POST /vectors/delete`` ``{"ids"? | "deleteAll"? | "filter"?, "namespace"}`` -> ``{}``; at
  most 1000 ids; a namespace that holds nothing answers 404 "Namespace not found", as
  serverless indexes have been reported to.
- ``POST /describe_index_stats`` ``{"filter"?}`` -> ``{"namespaces": {ns: {"vectorCount"}},
  "dimension", "indexFullness", "totalVectorCount", "metric", "vectorType"}``; a namespace
  appears while it holds vectors.
- Filters: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`` and the ``{"f": value}``
  shorthand for ``$eq``; against a list-valued field, ``$eq``/``$in`` match when any element
  does and ``$ne``/``$nin`` when none does; a missing field matches only ``$ne``, ``$nin`` and
  ``$exists: false``.
- The ``Api-Key`` header must equal the server's key (else 401); the
  ``X-Pinecone-Api-Version`` header is recorded with every request.
- Faults for tests: ``fail_next(n, status)`` answers the next n requests with that status
  (429 carries ``Retry-After``), ``slow_next(n, seconds)`` answers them late (to trip a
  client timeout); ``requests`` records every request that reached it (with the faults).

Not implemented (what real Pinecone does that this does not): eventual consistency (Pinecone
may not show an upsert or a delete to a query or to the stats for a few seconds; here every
write is visible at once); approximate search (Pinecone's index is ANN: its top-k can miss a
true neighbour, and its scores are float32); sparse and hybrid vectors, ``update``, ``list``,
``fetch_by_metadata``, namespaces API, imports, the control plane (create/describe index);
metadata size limits (40 KB per vector) and indexed-field configuration; read/write unit
accounting beyond a constant; rate limits of its own (429s only when injected); TLS.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_TOP_K = 10_000
MAX_TOP_K_WITH_DATA = 1000
MAX_DELETE_IDS = 1000


@dataclass
class Fault:
    status: int | None = None  # answer with this status instead of serving
    delay_s: float = 0.0  # answer this late


@dataclass
class Record:
    """One request as it reached the server."""

    method: str
    path: str
    body: Any
    query: dict
    headers: dict
    status: int = 0  # what it was answered


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class PineconeStandIn:
    """A threaded HTTP server on 127.0.0.1 (port 0: the OS picks one). Use as a context manager."""

    def __init__(self, api_key: str = "test-key", dimension: int = 4):
        self.api_key = api_key
        self.dimension = dimension
        self.namespaces: dict[str, dict[str, dict]] = {}  # namespace -> id -> {"values": np.ndarray, "metadata"}
        self.requests: list[Record] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects

            def do_GET(self):
                standin._handle(self, "GET")

            def do_POST(self):
                standin._handle(self, "POST")

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="pinecone-standin", daemon=True)

    # ---- lifecycle -----------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PineconeStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PineconeStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- fault injection and inspection ------------------------------------------------
    def fail_next(self, n: int, status: int) -> None:
        """Answer the next ``n`` requests with ``status`` (queued after faults already set)."""
        with self._lock:
            self._faults.extend(Fault(status=status) for _ in range(n))

    def slow_next(self, n: int, seconds: float) -> None:
        """Answer the next ``n`` requests ``seconds`` late (then serve them normally)."""
        with self._lock:
            self._faults.extend(Fault(delay_s=seconds) for _ in range(n))

    def calls(self, path: str | None = None) -> list[Record]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def reset_calls(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- the protocol -------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        rec = Record(method, parts.path, None, parse_qs(parts.query), {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.requests.append(rec)
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is not None and fault.status is not None:
            headers = {"Retry-After": "0"} if fault.status == 429 else {}
            return self._reply(h, rec, fault.status, _error(fault.status, f"injected {fault.status}"), headers)
        if rec.headers.get("api-key") != self.api_key:
            return self._reply(h, rec, 401, {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"},
                                             "status": 401})
        try:
            if len(raw) > MAX_REQUEST_BYTES:
                raise _BadRequest(413, f"Request size {len(raw)} bytes exceeds the limit of {MAX_REQUEST_BYTES} bytes")
            body = json.loads(raw) if raw else {}
            rec.body = body
            route = {
                ("POST", "/vectors/upsert"): self._upsert,
                ("POST", "/query"): self._query,
                ("GET", "/vectors/fetch"): self._fetch,
                ("POST", "/vectors/delete"): self._delete,
                ("POST", "/describe_index_stats"): self._stats,
            }.get((method, parts.path))
            if route is None:
                raise _BadRequest(404, f"no route {method} {parts.path}")
            with self._lock:
                out = route(body, rec.query)
        except _BadRequest as exc:
            return self._reply(h, rec, exc.status, _error(exc.status, exc.message))
        except (ValueError, TypeError, KeyError) as exc:
            return self._reply(h, rec, 400, _error(400, f"bad request: {exc}"))
        return self._reply(h, rec, 200, out)

    def _reply(self, h, rec: Record, status: int, payload: dict, headers: Mapping[str, str] = ()) -> None:
        rec.status = status
        data = json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in dict(headers).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): nothing to answer

    def _upsert(self, body: dict, _query) -> dict:
        vectors = body["vectors"]
        if not isinstance(vectors, list) or not vectors:
            raise _BadRequest(400, "vectors must be a non-empty list")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise _BadRequest(400, f"Upsert of {len(vectors)} vectors exceeds the limit of {MAX_UPSERT_VECTORS}")
        staged = {}
        for v in vectors:
            values = np.asarray(v["values"], dtype=np.float64)
            if values.shape != (self.dimension,):
                raise _BadRequest(400, f"Vector dimension {values.size} does not match the dimension of the "
                                       f"index {self.dimension}")
            if not np.any(values):
                raise _BadRequest(400, "Dense vectors must contain at least one non-zero value")
            metadata = v.get("metadata")
            if metadata is not None:
                _check_metadata(metadata)
            staged[str(v["id"])] = {"values": values, "metadata": metadata}
        self.namespaces.setdefault(body.get("namespace", ""), {}).update(staged)
        return {"upsertedCount": len(staged)}

    def _query(self, body: dict, _query) -> dict:
        top_k = int(body["topK"])
        with_data = bool(body.get("includeValues") or body.get("includeMetadata"))
        limit = MAX_TOP_K_WITH_DATA if with_data else MAX_TOP_K
        if not 1 <= top_k <= limit:
            raise _BadRequest(400, f"topK must be 1..{limit}{' with values or metadata' if with_data else ''}")
        q = np.asarray(body["vector"], dtype=np.float64)
        if q.shape != (self.dimension,):
            raise _BadRequest(400, f"Query vector dimension {q.size} does not match the dimension of the "
                                   f"index {self.dimension}")
        ns = body.get("namespace", "")
        flt = body.get("filter")
        rows = [(i, r) for i, r in self.namespaces.get(ns, {}).items()
                if flt is None or matches(r["metadata"] or {}, flt)]
        if not rows:
            return {"matches": [], "namespace": ns, "usage": {"readUnits": 1}}
        ids = [i for i, _ in rows]
        mat = np.stack([r["values"] for _, r in rows])
        qn = np.linalg.norm(q)
        scores = (mat @ q) / (np.linalg.norm(mat, axis=1) * qn) if qn else np.zeros(len(ids))
        order = sorted(range(len(ids)), key=lambda j: (-scores[j], ids[j]))[:top_k]
        out = []
        for j in order:
            m = {"id": ids[j], "score": float(scores[j]),
                 "values": rows[j][1]["values"].tolist() if body.get("includeValues") else []}
            if body.get("includeMetadata") and rows[j][1]["metadata"] is not None:
                m["metadata"] = rows[j][1]["metadata"]
            out.append(m)
        return {"matches": out, "namespace": ns, "usage": {"readUnits": 5}}

    def _fetch(self, _body, query: dict) -> dict:
        ids = query.get("ids", [])
        if not ids:
            raise _BadRequest(400, "ids must be given")
        ns = (query.get("namespace") or [""])[0]
        stored = self.namespaces.get(ns, {})
        vectors = {}
        for i in ids:
            if i in stored:
                v = {"id": i, "values": stored[i]["values"].tolist()}
                if stored[i]["metadata"] is not None:
                    v["metadata"] = stored[i]["metadata"]
                vectors[i] = v
        return {"vectors": vectors, "namespace": ns, "usage": {"readUnits": 1}}

    def _delete(self, body: dict, _query) -> dict:
        ns = body.get("namespace", "")
        modes = [k for k in ("ids", "deleteAll", "filter") if body.get(k)]
        if len(modes) != 1:
            raise _BadRequest(400, "exactly one of ids, deleteAll or filter must be given")
        stored = self.namespaces.get(ns)
        if not stored:
            raise _BadRequest(404, "Namespace not found")
        if "ids" in modes:
            if len(body["ids"]) > MAX_DELETE_IDS:
                raise _BadRequest(400, f"Delete of {len(body['ids'])} ids exceeds the limit of {MAX_DELETE_IDS}")
            for i in body["ids"]:
                stored.pop(i, None)
        elif "deleteAll" in modes:
            stored.clear()
        else:
            for i in [i for i, r in stored.items() if matches(r["metadata"] or {}, body["filter"])]:
                del stored[i]
        if not stored:
            del self.namespaces[ns]
        return {}

    def _stats(self, body: dict, _query) -> dict:
        flt = body.get("filter")
        namespaces = {}
        for ns, stored in self.namespaces.items():
            n = sum(1 for r in stored.values() if flt is None or matches(r["metadata"] or {}, flt))
            if stored:
                namespaces[ns] = {"vectorCount": n}
        return {"namespaces": namespaces, "dimension": self.dimension, "indexFullness": 0.0,
                "totalVectorCount": sum(v["vectorCount"] for v in namespaces.values()),
                "metric": "cosine", "vectorType": "dense"}


def _error(status: int, message: str) -> dict:
    # Pinecone's data plane answers errors in the grpc-gateway shape: {"code", "message", "details"}.
    return {"code": status, "message": message, "details": []}


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict):
        raise _BadRequest(400, "metadata must be an object")
    for key, value in metadata.items():
        ok = (isinstance(value, (str, bool, int, float)) and value is not None
              or isinstance(value, list) and all(isinstance(x, str) for x in value))
        if not ok:
            raise _BadRequest(400, f"Metadata value for field {key!r} must be a string, number, boolean or list of "
                                   f"strings, got {json.dumps(value)}")


_COMPARE = {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
            "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}


def matches(metadata: dict, flt: dict) -> bool:
    """Whether ``metadata`` meets a Pinecone metadata filter (the operators listed above)."""
    if not isinstance(flt, dict):
        raise _BadRequest(400, f"filter must be an object, got {json.dumps(flt)}")
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(metadata, c) for c in cond):
                return False
        elif key == "$or":
            if not any(matches(metadata, c) for c in cond):
                return False
        elif key.startswith("$"):
            raise _BadRequest(400, f"unknown top-level operator {key}")
        elif not _field_matches(metadata, key, cond if isinstance(cond, dict) else {"$eq": cond}):
            return False
    return True


def _field_matches(metadata: dict, field: str, cond: dict) -> bool:
    present = field in metadata
    value = metadata.get(field)
    values = value if isinstance(value, list) else [value]
    for op, arg in cond.items():
        if op == "$exists":
            ok = present == bool(arg)
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list):
                raise _BadRequest(400, f"{op} takes a list")
            hit = present and any(v in arg for v in values)
            ok = hit if op == "$in" else not hit
        elif op == "$eq":
            ok = present and arg in values
        elif op == "$ne":
            ok = not (present and arg in values)
        elif op in _COMPARE:
            if not isinstance(arg, (int, float)) or isinstance(arg, bool):
                raise _BadRequest(400, f"{op} takes a number")
            ok = present and isinstance(value, (int, float)) and not isinstance(value, bool) and _COMPARE[op](value, arg)
        else:
            raise _BadRequest(400, f"unknown operator {op}")
        if not ok:
            return False
    return True
