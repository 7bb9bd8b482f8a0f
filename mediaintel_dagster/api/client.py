"""Find and ask a running `mediaintel serve` (what `mediaintel search` does first).

``service_url()``: ``MEDIAINTEL_API_URL``, else http://127.0.0.1:8765 when its health check
answers within 0.3 s, else None. ``service_search(params)``: the service's ``/v1/search``
answer as a dict, or None when no service answers (or it answers with an error: the caller
then searches in its own process, which says what was wrong). Standard library only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from .. import config

DEFAULT_URL = "http://127.0.0.1:8765"
PROBE_TIMEOUT_S = 0.3
# CLI (search_page) names -> the API's query parameters.
_NAMES = {"query": "q", "kinds": "kind", "media_kinds": "media_kind", "languages": "language"}


def service_url() -> str | None:
    """Where a running API is: MEDIAINTEL_API_URL, or the default address if it answers and
    serves this process's lake (a `serve` started over another MEDIAINTEL_HOME is not asked)."""
    url = (config.get("MEDIAINTEL_API_URL") or "").strip().rstrip("/")
    if url:
        return url
    try:
        with urllib.request.urlopen(f"{DEFAULT_URL}/v1/health", timeout=PROBE_TIMEOUT_S) as r:
            health = json.loads(r.read() or b"{}") if r.status == 200 else {}
            if health.get("status") == "ok" and health.get("lake_id") == config.lake_id():
                return DEFAULT_URL
    except (OSError, ValueError):
        pass
    return None


def _headers() -> dict:
    keys = [k.strip() for k in (config.get("MEDIAINTEL_API_KEYS") or "").split(",") if k.strip()]
    return {"X-API-Key": keys[0]} if keys else {}


def query_string(params: dict) -> str:
    pairs = []
    for name, value in params.items():
        name = _NAMES.get(name, name)
        if value is None or value == [] or value == "":
            continue
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            pairs.append((name, v if not isinstance(v, bool) else str(v).lower()))
    return urllib.parse.urlencode(pairs)


def service_search(params: dict, timeout: float = 60.0) -> dict | None:
    """``GET /v1/search`` with ``params`` (the API's names or search_page's: kinds, media_kinds,
    languages); the answer, or None when no service answers or it refuses the request."""
    url = service_url()
    if url is None:
        return None
    req = urllib.request.Request(f"{url}/v1/search?{query_string(params)}", headers=_headers())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError):
        return None


__all__ = ["service_search", "service_url"]
