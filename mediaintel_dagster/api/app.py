"""The REST API over the lakehouse and the serving index, and the search page.

``create_app()`` builds the FastAPI application; ``mediaintel serve`` (api/server.py) runs
it under uvicorn. Routes live under ``/v1`` (the OpenAPI schema is ``/v1/openapi.json``):

- ``GET /v1/search``: hybrid search (mediaintel_dagster.search.search_page), with filters;
- ``GET /v1/media/{media_id}/similar``, ``POST /v1/similar`` (an uploaded file): similar media;
- ``GET /v1/media/{media_id}``: everything the lake knows about one media;
- ``GET /v1/media/{media_id}/keyframes/{scene_index}``: a keyframe JPEG;
- ``GET /v1/media/{media_id}/file``: the original file, with HTTP Range (the page's player);
- ``GET /v1/health`` (liveness, open) and ``GET /v1/ready`` (lake, index and models).

The models (text embedder, CLIP or its fallback) and the index handles are made once per
process and warmed when the server starts, so the first query is as fast as the next.

Keys: ``MEDIAINTEL_API_KEYS`` (comma-separated), sent as ``X-API-Key``, ``Authorization:
Bearer`` or the page's ``mediaintel_api_key`` cookie. Without keys the API answers loopback
clients only (and ``serve`` refuses to listen elsewhere). Every 4xx/5xx answer has one shape:
``{"error": {"code", "message", "details"}}``.

User text never becomes a path or SQL: media ids must be 16 hex digits, and files and
keyframes are found by looking the id up in the lake (pyarrow filters, not SQL strings).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import inspect
import ipaddress
import logging
import math
import mimetypes
import os
import re
import secrets
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, FastAPI, File, Form, Path as PathParam, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import config
from . import models as m

log = logging.getLogger("mediaintel.api")

API_VERSION = "1"
STATIC = Path(__file__).with_name("static")
MEDIA_ID = r"^[0-9a-f]{16}$"
_MEDIA_ID_RE = re.compile(MEDIA_ID)
KEY_COOKIE = "mediaintel_api_key"
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
         416: "range_not_satisfiable", 422: "invalid_request", 429: "too_many_requests", 500: "internal_error",
         503: "not_ready", 504: "timeout"}
_ERR = {"model": m.ErrorResponse}
ERROR_RESPONSES = {401: {**_ERR, "description": "missing or wrong API key"},
                   403: {**_ERR, "description": "no API keys are configured and the client is not on loopback"},
                   404: {**_ERR, "description": "no such media, scene or route"},
                   422: {**_ERR, "description": "invalid parameters (each one in details)"},
                   500: {**_ERR, "description": "a bug"}}


class ApiError(Exception):
    """An error answer in the API's one shape."""

    def __init__(self, status: int, message: str, code: Optional[str] = None, details: Any = None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details
        self.code = code or CODES.get(status, "error")


def error_response(status: int, code: str, message: str, details: Any = None, headers=None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": _clean(details)}},
                        status_code=status, headers=headers)


def api_keys_from_config() -> list[str]:
    return [k.strip() for k in (config.get("MEDIAINTEL_API_KEYS") or "").split(",") if k.strip()]


@dataclass
class Limits:
    max_query_chars: int = 500
    max_k: int = 100
    max_page: int = 100
    max_upload_bytes: int = 64 << 20
    timeout_s: float = 30.0

    @classmethod
    def from_config(cls) -> "Limits":
        return cls(max_query_chars=config.get_int("MEDIAINTEL_API_MAX_QUERY_CHARS"),
                   max_k=config.get_int("MEDIAINTEL_API_MAX_K"), max_page=config.get_int("MEDIAINTEL_API_MAX_PAGE"),
                   max_upload_bytes=int(config.get_float("MEDIAINTEL_API_MAX_UPLOAD_MB") * (1 << 20)),
                   timeout_s=config.get_float("MEDIAINTEL_API_TIMEOUT_S"))


@dataclass
class State:
    """What one process serves with: made once, warmed at startup."""

    resources: dict
    keys: list[str]
    limits: Limits
    executor: ThreadPoolExecutor
    warm: bool = True
    warmed: dict = field(default_factory=dict)  # what the warm-up loaded, and how long it took


def _clean(value):
    """JSON-safe: timestamps as ISO 8601, NaN and infinities as null, bytes dropped."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


# How long a request may read a table's snapshot opened by an earlier request. Opening a
# Delta table (its log) costs 2-3 ms, and a search reads five (media, segments, scenes, OCR
# lines, then scenes for the keyframes): about 25 ms of a ~70 ms search at 100k vectors.
LAKE_SNAPSHOT_S = 2.0


class SnapshotLake:
    """The lakehouse, read through table snapshots at most LAKE_SNAPSHOT_S old (the API only
    reads; what a pipeline run commits shows within that time). Everything else is the
    wrapped LakehouseResource's."""

    def __init__(self, lake, max_age_s: float = LAKE_SNAPSHOT_S):
        self._lake, self._max_age_s = lake, max_age_s
        self._snapshots: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._lake, name)

    def dataset(self, table: str, as_of_version: Optional[int] = None):
        if as_of_version is not None:
            return self._lake.dataset(table, as_of_version)
        now = time.monotonic()
        with self._lock:
            hit = self._snapshots.get(table)
        if hit and now - hit[0] < self._max_age_s:
            return hit[1]
        ds = self._lake.dataset(table)
        with self._lock:
            self._snapshots[table] = (now, ds)
        return ds

    def read(self, table: str, columns=None, filter=None):
        return self.dataset(table).to_table(columns=columns, filter=filter)

    def read_keys(self, table: str, column: str, values, columns=None):
        import pyarrow.dataset as pads

        from ..lake import schemas

        values = list(values)
        if not values:
            return schemas.schema(table).empty_table().select(columns or schemas.schema(table).names)
        return self.read(table, columns=columns, filter=pads.field(column).isin(values))


def _is_loopback(host: Optional[str]) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def default_resources() -> dict:
    """The configured lake, object store, models and serving index (what `mediaintel` uses)."""
    from ..resources import ClipResource, LakehouseResource, ObjectStoreResource, TextEmbedderResource
    from ..search import default_indexes

    vector_index, text_index = default_indexes()
    return {"lake": LakehouseResource(), "objects": ObjectStoreResource(), "text_embedder": TextEmbedderResource(),
            "clip": ClipResource(), "vector_index": vector_index, "text_index": text_index}


def warm_up(res: dict, torch_threads: Optional[int] = None) -> dict:
    """Load the models and open the index once, so the first request does not pay for it.
    ``torch_threads``: torch's intra-op threads for this process (see create_app)."""
    from ..resources.clip import FALLBACK_MODEL_ID
    from ..search import search_page

    out = {}
    t = time.perf_counter()
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
        out["torch_threads"] = int(torch_threads)
    res["text_embedder"].embed(["warm up"])
    out["text_embedder"] = res["text_embedder"].model_id
    clip_id, _ = res["clip"].route()
    res["clip"].embedder()  # CLIP (picture search, uploads) or the declared fallback
    out["clip"] = clip_id if clip_id != FALLBACK_MODEL_ID else f"{clip_id} (no CLIP weights)"
    try:  # opens the LanceDB tables and the keyword index
        search_page("warm up", k=1, min_score=0, **_search_res(res))
    except Exception as exc:  # an empty lake or index: ready says so
        out["search"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.perf_counter() - t, 2)
    return out


def _search_res(res: dict) -> dict:
    return {k: res[k] for k in ("lake", "text_embedder", "clip", "vector_index", "text_index")}


def _day_start_s(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


def create_app(resources: Optional[dict] = None, *, api_keys: Optional[list[str]] = None,
               limits: Optional[Limits] = None, warm: bool = True, max_threads: int = 4,
               torch_threads: Optional[int] = 1) -> FastAPI:
    """The API and the search page. ``resources``: lake, objects, text_embedder, clip,
    vector_index, text_index (default: the configured ones); ``api_keys`` (default
    MEDIAINTEL_API_KEYS; empty: loopback clients only); ``limits`` (default from config).

    ``torch_threads`` (default 1, None leaves torch alone): a query is one short sentence,
    which gains nothing from torch's intra-op threads; with them, on a busy machine, their
    spin-waits made one MiniLM query embedding 400-1000 ms instead of 30 ms (measured on 2
    shared cores). Requests run in parallel in ``max_threads`` worker threads instead."""
    res = dict(resources) if resources else default_resources()
    if "objects" not in res:
        from ..resources import ObjectStoreResource

        res["objects"] = ObjectStoreResource()
    if not isinstance(res["lake"], SnapshotLake):
        res["lake"] = SnapshotLake(res["lake"])
    keys = list(api_keys) if api_keys is not None else api_keys_from_config()
    lim = limits or Limits.from_config()
    st = State(resources=res, keys=keys, limits=lim, warm=warm,
               executor=ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="mediaintel-api"))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if not keys:
            log.warning("no MEDIAINTEL_API_KEYS: the API asks for no key and answers loopback clients only")
        if warm:
            st.warmed = await asyncio.get_running_loop().run_in_executor(st.executor, warm_up, res, torch_threads)
            log.info(f"models loaded and index opened in {st.warmed.get('seconds')} s: {st.warmed}")
        yield
        st.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="mediaintel API", version=f"{API_VERSION}.0",
                  description="Search and browse the media lakehouse: hybrid search over speech, on-screen text "
                              "and pictures, similar media, and everything the lake knows about a media.",
                  openapi_url="/v1/openapi.json", docs_url="/v1/docs", redoc_url=None, lifespan=lifespan)
    app.state.mediaintel = st
    app.state.lake_id = config.lake_id(str(res["lake"].root))

    @app.middleware("http")
    async def _timing(request: Request, call_next):
        """``Server-Timing: app;dur=<ms>``: the time spent in the app, apart from the network."""
        t = time.perf_counter()
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t) * 1000:.1f}"
        return response

    # ---- errors: one shape --------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        first = details[0] if details else {}
        where = ".".join(str(x) for x in first.get("loc", [])[1:]) or "request"
        return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}", details)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception(f"{request.method} {request.url.path} failed")
        return error_response(500, "internal_error", f"{type(exc).__name__}: the server failed on this request")

    # ---- auth ---------------------------------------------------------------------------
    header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="one of MEDIAINTEL_API_KEYS")
    bearer = HTTPBearer(auto_error=False, description="one of MEDIAINTEL_API_KEYS")

    def authorize(request: Request, x_api_key: Optional[str] = Depends(header_key),
                  cred: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        if not keys:
            if not _is_loopback(request.client.host if request.client else None):
                raise ApiError(403, "no API keys are configured (MEDIAINTEL_API_KEYS): only loopback clients "
                                    "are served")
            return
        given = x_api_key or (cred.credentials if cred else None) or request.cookies.get(KEY_COOKIE)
        if not given:
            raise ApiError(401, "an API key is required: header X-API-Key or Authorization: Bearer")
        if not any(secrets.compare_digest(given.encode(), k.encode()) for k in keys):
            raise ApiError(401, "the API key is not valid")

    async def run_limited(fn, *args, **kwargs):
        """``fn`` in the worker threads with the request deadline: past it, a 504."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(st.executor, lambda: fn(*args, **kwargs))
        try:
            return await asyncio.wait_for(fut, timeout=lim.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the request took longer than {lim.timeout_s:g} s", "timeout") from None
        except ValueError as exc:  # the search module's word for a bad request
            raise ApiError(400, str(exc)) from None

    open_router = APIRouter(prefix="/v1", tags=["service"])
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)

    @open_router.get("/health", response_model=m.Health, summary="Liveness: the process answers")
    def health():
        return {"status": "ok", "version": app.version, "lake_id": app.state.lake_id}

    @open_router.get("/ready", response_model=m.Ready, summary="Readiness: lakehouse, index and models",
                     responses={503: {**_ERR, "description": "not ready: details say which check failed"}})
    async def ready():
        return await asyncio.get_running_loop().run_in_executor(st.executor, _ready)

    def _ready():
        checks, counts = {}, {}
        try:
            res["lake"].version("media")
            checks["lakehouse"] = "ok"
        except Exception as exc:
            checks["lakehouse"] = f"{type(exc).__name__}: {exc}"
        try:
            counts = {str(k): int(v) for k, v in res["vector_index"].counts().items()}
            res["text_index"].count()
            checks["index"] = "ok"
        except Exception as exc:
            checks["index"] = f"{type(exc).__name__}: {exc}"
        checks["models"] = "ok" if (st.warmed or not st.warm) else "loading"
        body = {"status": "ready" if all(v == "ok" for v in checks.values()) else "not_ready", "checks": checks,
                "index_counts": counts, "auth": "api_keys" if keys else "loopback_only"}
        if body["status"] != "ready":
            return error_response(503, "not_ready", "not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items()
                                                                              if v != "ok"), body)
        return body

    # ---- search -------------------------------------------------------------------------
    @v1.get("/search", response_model=m.SearchPage, summary="Hybrid search over speech, on-screen text and pictures",
            responses={400: {**_ERR, "description": "a request the search cannot answer"},
                       504: {**_ERR, "description": "the search ran past MEDIAINTEL_API_TIMEOUT_S"}})
    async def search(
        q: str = Query(min_length=1, max_length=lim.max_query_chars, pattern=r"\S", description="the query text"),
        k: int = Query(10, ge=1, le=lim.max_k, description="hits per page"),
        page: int = Query(1, ge=1, le=lim.max_page, description="which page of k hits, from 1"),
        mode: Literal["hybrid", "vector", "keyword", "picture"] = Query(
            "hybrid", description="hybrid: every retriever fused by reciprocal rank; or one retriever alone"),
        kind: Optional[list[Literal["segment", "ocr", "scene"]]] = Query(None, description="only these item kinds"),
        media_kind: Optional[list[Literal["video", "audio", "image"]]] = Query(None, description="only media of these kinds"),
        language: Optional[list[str]] = Query(None, description="only this spoken language (e.g. en)",
                                              max_length=10),
        min_duration: Optional[float] = Query(None, ge=0, le=1e9, description="media at least this many seconds long"),
        max_duration: Optional[float] = Query(None, ge=0, le=1e9, description="media at most this many seconds long"),
        since: Optional[dt.date] = Query(None, description="arrived on or after this UTC date"),
        until: Optional[dt.date] = Query(None, description="arrived on or before this UTC date"),
        source: Optional[str] = Query(None, max_length=1000, description="source_uri starts with this prefix"),
        min_score: Optional[float] = Query(None, ge=0, le=1, description="the cosine a vector-only hit needs "
                                                                          "(default MEDIAINTEL_SEARCH_MIN_SCORE)"),
    ):
        from ..resources.vector_index import IndexFilter
        from ..search import RETRIEVERS, search_page

        if language and any(not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})?", x) for x in language):
            raise ApiError(422, "language: a language code such as en or pt-BR", "invalid_request")
        flt = IndexFilter(media_kinds=media_kind or None, languages=language or None, min_duration_s=min_duration,
                          max_duration_s=max_duration, arrived_from_s=_day_start_s(since) if since else None,
                          arrived_to_s=_day_start_s(until) + 86400.0 if until else None, source_prefix=source or None)
        kw = dict(k=k, page=page, flt=flt, kinds=kind or None, retrievers=RETRIEVERS if mode == "hybrid" else (mode,),
                  **_search_res(res))
        if min_score is not None and "min_score" in inspect.signature(search_page).parameters:
            kw["min_score"] = min_score
        result = await run_limited(search_page, q, **kw)
        hits = await run_limited(_describe_hits, [h.as_dict() for h in result.hits])
        return {"query": q, "mode": mode, "hits": hits, "page": result.page, "k": result.k,
                "candidates": result.candidates, "retrievers": result.retrievers,
                "notes": list(getattr(result, "notes", []) or []), "min_score": getattr(result, "min_score", None)}

    def _scenes_of(media_ids: list[str]) -> dict[str, list[dict]]:
        rows = res["lake"].read_keys("scenes", "media_id", sorted(set(media_ids)),
                                     columns=["media_id", "scene_index", "start_s", "end_s", "keyframe_uri"]).to_pylist()
        out: dict[str, list[dict]] = {}
        for r in sorted(rows, key=lambda r: (r["media_id"], r["scene_index"])):
            out.setdefault(r["media_id"], []).append(r)
        return out

    def _describe_hits(hits: list[dict]) -> list[dict]:
        scenes = _scenes_of([h["media_id"] for h in hits])
        out = []
        for h in hits:
            mid, shots = h["media_id"], scenes.get(h["media_id"], [])
            si = None
            if h["item_kind"] in ("scene", "ocr"):
                si = h["item_index"] if any(s["scene_index"] == h["item_index"] for s in shots) else None
            elif shots and h.get("start_s") is not None:  # a segment: the shot it begins in
                t = float(h["start_s"])
                inside = [s for s in shots if (s["start_s"] or 0) <= t + 1e-6]
                si = (inside[-1] if inside else shots[0])["scene_index"]
            kf = next((s for s in shots if s["scene_index"] == si), None)
            start = h.get("start_s")
            out.append({**_clean(h), "scene_index": si,
                        "keyframe_url": f"/v1/media/{mid}/keyframes/{si}" if kf and kf.get("keyframe_uri") else None,
                        "media_url": f"/media/{mid}",
                        "play_url": f"/media/{mid}" + (f"#t={float(start):.2f}" if start is not None else "")})
        return out

    # ---- similar ------------------------------------------------------------------------
    def _similar_body(result: dict) -> dict:
        media = [s.as_dict() for s in result["media"]]
        scenes = _scenes_of([x["media_id"] for x in media])
        for x in media:
            best = x["scenes"][0]["scene_index"] if x["scenes"] else None
            has = any(s["scene_index"] == best and s.get("keyframe_uri") for s in scenes.get(x["media_id"], []))
            x["keyframe_url"] = f"/v1/media/{x['media_id']}/keyframes/{best}" if has else None
            x["media_url"] = f"/media/{x['media_id']}"
        q = dict(result["query"])
        return {"query": q, "media": _clean(media)}

    def _similar(target: str, k: int) -> dict:
        from ..search import similar_media

        return _similar_body(similar_media(target, k, lake=res["lake"], clip=res["clip"],
                                           vector_index=res["vector_index"]))

    @v1.get("/media/{media_id}/similar", response_model=m.SimilarResponse, summary="Media similar to a media",
            responses={400: {**_ERR, "description": "the media has no scene vectors (audio only)"},
                       504: {**_ERR, "description": "ran past MEDIAINTEL_API_TIMEOUT_S"}})
    async def similar(media_id: str = PathParam(pattern=MEDIA_ID, description="16 hex digits"),
                      k: int = Query(10, ge=1, le=lim.max_k)):
        _require_media(media_id)
        return await run_limited(_similar, media_id, k)

    @v1.post("/similar", response_model=m.SimilarResponse, summary="Media similar to an uploaded file (not ingested)",
             responses={400: {**_ERR, "description": "the file has no picture or cannot be read"},
                        413: {**_ERR, "description": "larger than MEDIAINTEL_API_MAX_UPLOAD_MB"},
                        504: {**_ERR, "description": "ran past MEDIAINTEL_API_TIMEOUT_S"}})
    async def similar_upload(request: Request, file: UploadFile = File(description="a video or an image"),
                             k: int = Form(10, ge=1, le=lim.max_k)):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > lim.max_upload_bytes + (64 << 10):
            raise ApiError(413, f"the upload is larger than {lim.max_upload_bytes >> 20} MiB", "payload_too_large")
        name = os.path.basename(file.filename or "upload")[:200]
        suffix = Path(name).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
        with tempfile.TemporaryDirectory(prefix="mediaintel-upload-") as tmp:
            path = os.path.join(tmp, "upload" + suffix)
            size = 0
            with open(path, "wb") as fh:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > lim.max_upload_bytes:
                        raise ApiError(413, f"the upload is larger than {lim.max_upload_bytes >> 20} MiB",
                                       "payload_too_large")
                    fh.write(chunk)
            if not size:
                raise ApiError(400, "the uploaded file is empty")

            def run():
                try:
                    body = _similar(path, k)
                except ValueError as exc:
                    raise ValueError(str(exc).replace(path, name)) from None
                except Exception as exc:  # unreadable media: the client's file, not our bug
                    raise ValueError(f"{name}: cannot be read as media ({type(exc).__name__})") from None
                body["query"]["file"], body["query"]["label"] = name, name
                return body

            return await run_limited(run)

    # ---- one media ----------------------------------------------------------------------
    def _require_media(media_id: str) -> dict:
        if not _MEDIA_ID_RE.fullmatch(media_id):
            raise ApiError(422, "media_id: 16 hex digits", "invalid_request")
        rows = res["lake"].read_keys("media", "media_id", [media_id]).to_pylist()
        if not rows:
            raise ApiError(404, f"no media {media_id} in the lakehouse", "media_not_found")
        return rows[0]

    def _rows(table: str, media_id: str, column: str = "media_id", sort=()) -> list[dict]:
        import pyarrow.dataset as pads

        rows = res["lake"].read(table, filter=pads.field(column) == media_id).to_pylist()
        return sorted(rows, key=lambda r: tuple((r.get(c) is None, r.get(c)) for c in sort)) if sort else rows

    def _media_file(media_id: str, media: dict) -> Optional[str]:
        """A local file holding the media's bytes: one of its known locations (never a user path)."""
        for uri in [media.get("source_uri")] + [r["source_uri"] for r in _rows("media_sources", media_id)]:
            if not uri or ("://" in uri and not uri.startswith("file://")):
                continue
            p = uri.removeprefix("file://")
            try:
                if os.path.isfile(p) and os.path.getsize(p) == media.get("size_bytes"):
                    return p
            except OSError:
                continue
        return None

    def _detail(media_id: str) -> dict:
        media = _require_media(media_id)
        ocr = _rows("ocr_text", media_id, sort=("scene_index", "line_index"))
        lines: dict[int, list[str]] = {}
        for r in ocr:
            lines.setdefault(r["scene_index"], []).append(r.get("text") or "")
        scenes = []
        for s in _rows("scenes", media_id, sort=("scene_index",)):
            s = {k: v for k, v in s.items() if k not in ("media_id", "keyframe_uri", "extra_keyframe_uris")} | {
                "keyframe_url": f"/v1/media/{media_id}/keyframes/{s['scene_index']}" if s.get("keyframe_uri") else None,
                "extra_keyframe_urls": [f"/v1/media/{media_id}/keyframes/{s['scene_index']}?n={i}"
                                        for i in range(1, len(s.get("extra_keyframe_uris") or []) + 1)],
                "ocr_text": " ".join(lines.get(s["scene_index"], [])) or None}
            scenes.append(s)
        transcript = [{k: v for k, v in r.items() if k not in ("media_id", "words")}
                      for r in _rows("transcript_segments", media_id, sort=("segment_index",))]
        dups = _rows("near_duplicates", media_id) + [r for r in _rows("near_duplicates", media_id, "duplicate_of")
                                                     if r["media_id"] != media_id]
        audit = _rows("audit_log", media_id, sort=("at",))
        quarantine = _rows("quarantine", media_id)
        sources = _rows("media_sources", media_id, sort=("seen_at",))
        return _clean({"media_id": media_id, "media": media,
                       "file_url": f"/v1/media/{media_id}/file" if _media_file(media_id, media) else None,
                       "sources": sources, "scenes": scenes, "transcript": transcript,
                       "ocr": [{k: v for k, v in r.items() if k != "media_id"} for r in ocr],
                       "near_duplicates": dups, "audit": audit, "quarantine": quarantine})

    @v1.get("/media/{media_id}", response_model=m.MediaDetail,
            summary="A media: probe, locations, shots, transcript, on-screen text, duplicates, lineage, quarantine")
    async def media_detail(media_id: str = PathParam(pattern=MEDIA_ID, description="16 hex digits")):
        return await run_limited(_detail, media_id)

    @v1.get("/media/{media_id}/keyframes/{scene_index}", response_class=Response,
            summary="A shot's keyframe (JPEG); n=1.. its extra keyframes",
            responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "the JPEG"},
                       304: {"description": "unchanged (If-None-Match)"}})
    async def keyframe(request: Request, media_id: str = PathParam(pattern=MEDIA_ID),
                       scene_index: int = PathParam(ge=0, le=10_000_000),
                       n: int = Query(0, ge=0, le=1000, description="0: the representative keyframe; n: the n-th extra")):
        def load():
            import pyarrow.dataset as pads

            rows = res["lake"].read("scenes", columns=["keyframe_uri", "extra_keyframe_uris"],
                                    filter=(pads.field("media_id") == media_id)
                                    & (pads.field("scene_index") == scene_index)).to_pylist()
            if not rows:
                raise ApiError(404, f"no scene {scene_index} of media {media_id}", "scene_not_found")
            uri = rows[0]["keyframe_uri"] if n == 0 else (
                (rows[0]["extra_keyframe_uris"] or [])[n - 1] if n <= len(rows[0]["extra_keyframe_uris"] or []) else None)
            if not uri:
                raise ApiError(404, f"scene {scene_index} of media {media_id} has no keyframe {n}", "keyframe_not_found")
            try:
                return res["objects"].get(uri)
            except (OSError, ValueError):
                raise ApiError(404, f"the keyframe of scene {scene_index} is not in the object store",
                               "keyframe_not_found") from None

        data = await run_limited(load)
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="image/jpeg", headers=headers)

    @v1.get("/media/{media_id}/file", response_class=FileResponse, summary="The original file (HTTP Range supported)",
            responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}}
                                         for t in ("video/*", "audio/*", "image/*", "application/octet-stream")},
                             "description": "the bytes, with the type their file name says"},
                       206: {"description": "the asked range"},
                       416: {**_ERR, "description": "range not satisfiable"}})
    async def media_file(media_id: str = PathParam(pattern=MEDIA_ID)):
        def find():
            media = _require_media(media_id)
            path = _media_file(media_id, media)
            if not path:
                raise ApiError(404, f"no readable file holds media {media_id} here (moved or remote)", "file_not_found")
            return path

        path = await run_limited(find)
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return FileResponse(path, media_type=kind, headers={"Cache-Control": "private, max-age=3600"},
                            content_disposition_type="inline")

    app.include_router(open_router)
    app.include_router(v1)

    # ---- the page -----------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index_page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/search", include_in_schema=False)
    def search_page_html():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/media/{media_id}", include_in_schema=False)
    def media_page(media_id: str = PathParam(pattern=MEDIA_ID)):
        return FileResponse(STATIC / "media.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


__all__ = ["ApiError", "Limits", "create_app", "default_resources", "warm_up"]
