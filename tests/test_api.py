"""The REST API, served by real uvicorn on 127.0.0.1 over a real lake (the real pipeline over
a video with speech and captions, a second video, a speech file and an image; see
api_support.py): every endpoint, keys, limits, the one error shape, hostile input, the
timeout, `mediaintel serve` itself, the client the CLI uses, and a schemathesis pass over
the OpenAPI schema.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx
import pytest

import api_support
from api_support import corpus, srv  # noqa: F401 - the shared module fixtures
from api_support import KEYS, ThreadServer
from conftest import REPO, VENV_BIN

HEADERS = {"X-API-Key": KEYS[0]}


@pytest.fixture(scope="module")
def api(srv):
    with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=60) as c:
        yield c


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    """The one error shape: {"error": {"code", "message", "details"}}."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


# ---- service ----------------------------------------------------------------------------

def test_health_is_open_and_ready_checks_everything(srv, corpus):
    r = httpx.get(f"{srv.url}/v1/health")  # no key
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = httpx.get(f"{srv.url}/v1/ready")
    body = r.json()
    assert r.status_code == 200, body
    assert body["status"] == "ready" and body["checks"] == {"lakehouse": "ok", "index": "ok", "models": "ok"}
    assert body["auth"] == "api_keys"
    text_model = corpus["res"]["text_embedder"].model_id
    assert body["index_counts"].get(text_model, 0) > 0


def test_models_are_loaded_once_at_startup(srv):
    st = srv.server.config.app.state.mediaintel  # the app object uvicorn serves
    assert st.warmed["text_embedder"].startswith("sentence-transformers/") and "seconds" in st.warmed
    from mediaintel_dagster.resources.models import loaded_models

    before = loaded_models()
    for q in ("volcano", "cake", "interest rates"):
        httpx.get(f"{srv.url}/v1/search", params={"q": q}, headers=HEADERS).raise_for_status()
    assert loaded_models() == before  # nothing more was loaded by the queries


# ---- search -----------------------------------------------------------------------------

def test_search_returns_described_hits_with_keyframes(api, corpus):
    r = api.get("/v1/search", params={"q": "ash cloud", "k": 5})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["page"] == 1 and page["k"] == 5 and page["mode"] == "hybrid" and page["candidates"] >= 1
    assert page["retrievers"]["keyword"] == "used" and "no CLIP weights" in page["retrievers"]["picture"]
    assert isinstance(page["notes"], list)
    volcano = corpus["media_of"]["volcano"]
    top = page["hits"][0]
    assert top["media_id"] == volcano and top["source_uri"].endswith("volcano.mp4")
    assert {"ash"} <= set(top["matched_words"]) and top["matched"]
    assert top["why"] and all(w["rank"] >= 1 for w in top["why"])
    # the OCR line on the second shot: its keyframe, its time, a link that plays from there
    ocr = next(h for h in page["hits"] if h["item_kind"] == "ocr" and h["media_id"] == volcano)
    assert ocr["scene_index"] == ocr["item_index"] == 1 and ocr["start_s"] == pytest.approx(2.4, abs=0.05)
    assert ocr["keyframe_url"] == f"/v1/media/{volcano}/keyframes/1"
    assert ocr["play_url"] == f"/media/{volcano}#t={ocr['start_s']:.2f}"
    kf = api.get(ocr["keyframe_url"])
    assert kf.status_code == 200 and kf.headers["content-type"] == "image/jpeg" and kf.content[:3] == b"\xff\xd8\xff"


def test_search_filters_modes_and_pages(api, corpus):
    audio = api.get("/v1/search", params={"q": "investors shares", "media_kind": "audio"}).json()
    assert audio["hits"] and {h["media_id"] for h in audio["hits"]} == {corpus["media_of"]["markets"]}
    assert all(h["keyframe_url"] is None for h in audio["hits"])  # a speech file has no picture
    kw = api.get("/v1/search", params={"q": "flour sugar", "mode": "keyword"}).json()
    assert set(kw["retrievers"]) == {"keyword"} and kw["hits"][0]["media_id"] == corpus["media_of"]["baking"]
    only_ocr = api.get("/v1/search", params={"q": "grand opening", "kind": "ocr"}).json()
    assert only_ocr["hits"] and {h["item_kind"] for h in only_ocr["hits"]} == {"ocr"}
    assert not api.get("/v1/search", params={"q": "volcano", "language": "de"}).json()["hits"]
    assert not api.get("/v1/search", params={"q": "volcano", "until": "2000-01-01"}).json()["hits"]
    assert api.get("/v1/search", params={"q": "volcano", "since": "2000-01-01"}).json()["hits"]
    one = api.get("/v1/search", params={"q": "the", "k": 2, "page": 1, "min_score": 0}).json()["hits"]
    two = api.get("/v1/search", params={"q": "the", "k": 2, "page": 2, "min_score": 0}).json()["hits"]
    both = api.get("/v1/search", params={"q": "the", "k": 4, "page": 1, "min_score": 0}).json()["hits"]
    key = lambda hs: [(h["media_id"], h["item_kind"], h["item_index"]) for h in hs]  # noqa: E731
    assert len(one) == 2 and key(one) + key(two) == key(both)


def test_empty_page_says_why(api):
    far = api.get("/v1/search", params={"q": "volcano", "page": 90}).json()
    assert far["hits"] == [] and far["notes"], far


@pytest.mark.parametrize("params, where", [
    ({"q": "x", "k": 0}, "k"), ({"q": "x", "k": 101}, "k"), ({"q": "x", "page": 0}, "page"),
    ({"q": "x", "page": 101}, "page"), ({"q": "x" * 501}, "q"), ({"q": ""}, "q"), ({"q": "   "}, "q"), ({}, "q"),
    ({"q": "x", "mode": "sql"}, "mode"), ({"q": "x", "kind": "file"}, "kind"), ({"q": "x", "since": "yesterday"}, "since"),
    ({"q": "x", "min_duration": "nan"}, "min_duration"), ({"q": "x", "min_duration": "-1"}, "min_duration"),
    ({"q": "x", "min_score": "2"}, "min_score"), ({"q": "x", "language": "en' OR 1=1 --"}, "language"),
])
def test_limits_answer_422_in_the_error_shape(api, params, where):
    err = assert_error(api.get("/v1/search", params=params), 422, "invalid_request")
    if isinstance(err["details"], list):
        assert any(where in [str(x) for x in d["loc"]] for d in err["details"]), err


def test_sql_like_input_is_just_text(api, corpus):
    for q in ("' OR 1=1 --", "volcano'; DROP TABLE media; --", "\" OR \"\"=\"", "%' OR '%'='"):
        r = api.get("/v1/search", params={"q": q, "source": q})
        assert r.status_code == 200, r.text
        assert r.json()["hits"] == []  # the source prefix matches nothing: the quote is data
    assert len(corpus["res"]["lake"].read("media")) == len(corpus["media_of"])  # nothing dropped
    r = api.get("/v1/search", params={"q": "' OR 1=1 -- volcano"})
    assert r.status_code == 200 and r.json()["hits"][0]["media_id"] == corpus["media_of"]["volcano"]


# ---- auth -------------------------------------------------------------------------------

def test_keys_are_required_and_checked(srv):
    url = f"{srv.url}/v1/search?q=volcano"
    assert_error(httpx.get(url), 401, "unauthorized")
    assert_error(httpx.get(url, headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert_error(httpx.get(url, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    assert httpx.get(url, headers={"Authorization": f"Bearer {KEYS[1]}"}).status_code == 200
    assert httpx.get(url, headers={"X-API-Key": KEYS[1]}).status_code == 200
    assert httpx.get(url, cookies={"mediaintel_api_key": KEYS[0]}).status_code == 200  # the page's <img>/<video>
    assert_error(httpx.get(f"{srv.url}/v1/media/{'0' * 16}"), 401)  # before any lookup


def test_without_keys_only_loopback_is_served(corpus):
    from fastapi.testclient import TestClient

    from mediaintel_dagster.api.app import create_app

    app = create_app(corpus["res"], api_keys=[], warm=False)
    srv = ThreadServer(app)
    try:
        assert httpx.get(f"{srv.url}/v1/search", params={"q": "volcano"}).status_code == 200  # no key asked
        assert httpx.get(f"{srv.url}/v1/ready").json()["auth"] == "loopback_only"
    finally:
        srv.stop()
    with TestClient(app, client=("203.0.113.9", 5000)) as remote:  # the same app, asked from elsewhere
        assert_error(remote.get("/v1/search", params={"q": "volcano"}), 403, "forbidden")
        assert remote.get("/v1/health").status_code == 200


# ---- one media --------------------------------------------------------------------------

def test_media_detail(api, corpus):
    volcano = corpus["media_of"]["volcano"]
    d = api.get(f"/v1/media/{volcano}").json()
    assert d["media_id"] == volcano and d["media"]["kind"] == "video" and d["media"]["has_audio"]
    assert d["file_url"] == f"/v1/media/{volcano}/file"
    assert [s["source_uri"] for s in d["sources"]] == [str(corpus["paths"]["volcano"].absolute())]
    assert len(d["scenes"]) == 3 and [s["scene_index"] for s in d["scenes"]] == [0, 1, 2]
    assert all(s["keyframe_url"] == f"/v1/media/{volcano}/keyframes/{s['scene_index']}" for s in d["scenes"])
    assert "keyframe_uri" not in json.dumps(d)  # object-store paths stay on the server
    assert "ASH" in (d["scenes"][1]["ocr_text"] or "").upper()
    assert d["transcript"] and "volcano" in " ".join(t["text"] for t in d["transcript"]).lower()
    assert d["ocr"] and {o["scene_index"] for o in d["ocr"]} <= {0, 1, 2}
    stages = {a["asset"] for a in d["audit"]}
    assert {"media", "scenes", "ocr_text", "transcript_segments", "scene_embeddings", "index_entries"} <= stages
    assert d["quarantine"] == [] and isinstance(d["near_duplicates"], list)


def test_unknown_media_and_routes_are_404(api):
    assert_error(api.get(f"/v1/media/{'0' * 16}"), 404, "media_not_found")
    assert_error(api.get(f"/v1/media/{'0' * 16}/file"), 404, "media_not_found")
    assert_error(api.get(f"/v1/media/{'0' * 16}/similar"), 404, "media_not_found")
    assert_error(api.get(f"/v1/media/{'0' * 16}/keyframes/0"), 404, "scene_not_found")
    assert_error(api.get("/v1/nothing-here"), 404, "not_found")
    assert_error(api.get("/nothing-here"), 404, "not_found")
    assert_error(api.delete("/v1/search"), 405, "method_not_allowed")


def test_keyframes_cache_and_refuse_what_is_not_there(api, corpus):
    volcano = corpus["media_of"]["volcano"]
    r = api.get(f"/v1/media/{volcano}/keyframes/0")
    assert r.status_code == 200 and r.headers["etag"] and "max-age" in r.headers["cache-control"]
    again = api.get(f"/v1/media/{volcano}/keyframes/0", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert_error(api.get(f"/v1/media/{volcano}/keyframes/99"), 404, "scene_not_found")
    assert_error(api.get(f"/v1/media/{volcano}/keyframes/0", params={"n": 50}), 404, "keyframe_not_found")
    assert_error(api.get(f"/v1/media/{volcano}/keyframes/-1"), 422)


@pytest.mark.parametrize("path", [
    "/v1/media/..%2F..%2F..%2Fetc%2Fpasswd", "/v1/media/%2Fetc%2Fpasswd/file", "/v1/media/../../etc/passwd",
    "/v1/media/0123456789abcdef%2F..%2F..%2Fetc%2Fpasswd/file", "/v1/media/0123456789ABCDEF/file",
    "/v1/media/0123456789abcdef0/file", "/v1/media/0123456789abcde'/file",
    "/v1/media/0123456789abcdef/keyframes/..%2F..%2Fetc%2Fpasswd", "/static/..%2F..%2Fapp.py",
    "/static/../app.py", "/media/..%2F..%2Fetc%2Fpasswd",
])
def test_path_traversal_is_refused(srv, path):
    # Sent as typed (httpx would normalise '..'): a raw request line over a socket.
    import socket

    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEYS[0]}\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert status in (400, 404, 422), raw[:300]
    assert b"root:" not in body and b"def create_app" not in body
    if status != 400:  # uvicorn refuses some request lines itself, before the app
        payload = json.loads(body)
        assert set(payload) == {"error"}


def test_original_file_streams_with_range(api, corpus):
    volcano = corpus["media_of"]["volcano"]
    data = corpus["paths"]["volcano"].read_bytes()
    whole = api.get(f"/v1/media/{volcano}/file")
    assert whole.status_code == 200 and whole.content == data and whole.headers["content-type"] == "video/mp4"
    assert whole.headers.get("accept-ranges") == "bytes"
    part = api.get(f"/v1/media/{volcano}/file", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = api.get(f"/v1/media/{volcano}/file", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    assert api.get(f"/v1/media/{volcano}/file", headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416


# ---- similar ----------------------------------------------------------------------------

def test_similar_media_by_id(api, corpus):
    volcano = corpus["media_of"]["volcano"]
    body = api.get(f"/v1/media/{volcano}/similar", params={"k": 3}).json()
    assert body["query"]["media_id"] == volcano and body["query"]["scenes"] == 3
    assert body["media"] and volcano not in {s["media_id"] for s in body["media"]}
    assert all(s["keyframe_url"] and s["media_url"] == f"/media/{s['media_id']}" for s in body["media"])
    err = assert_error(api.get(f"/v1/media/{corpus['media_of']['markets']}/similar"), 400, "bad_request")
    assert "no scene vectors" in err["message"]


def test_similar_upload(api, corpus, tmp_path):
    src = corpus["paths"]["baking"]
    with open(src, "rb") as fh:
        r = api.post("/v1/similar", files={"file": ("my copy.mp4", fh, "video/mp4")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["file"] == "my copy.mp4" and body["query"]["scenes"] >= 1
    assert body["media"][0]["media_id"] == corpus["media_of"]["baking"]  # the same bytes, never ingested twice
    assert str(tmp_path) not in r.text and "mediaintel-upload-" not in r.text  # no server paths
    # not media, empty, missing
    assert_error(api.post("/v1/similar", files={"file": ("notes.mp4", b"not a video at all" * 100, "video/mp4")}),
                 400, "bad_request")
    assert_error(api.post("/v1/similar", files={"file": ("empty.mp4", b"", "video/mp4")}), 400)
    assert_error(api.post("/v1/similar", data={"k": "3"}), 422, "invalid_request")


def test_oversized_upload_is_413(corpus):
    from mediaintel_dagster.api.app import Limits, create_app

    srv = ThreadServer(create_app(corpus["res"], api_keys=KEYS, limits=Limits(max_upload_bytes=100_000), warm=False))
    try:
        big = os.urandom(300_000)
        r = httpx.post(f"{srv.url}/v1/similar", files={"file": ("big.mp4", big, "video/mp4")}, headers=HEADERS)
        assert_error(r, 413, "payload_too_large")

        def chunks():  # no Content-Length: counted as it arrives
            for i in range(0, len(big), 50_000):
                yield big[i:i + 50_000]

        boundary = "----mediaintel"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
                f"Content-Type: video/mp4\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()
        r = httpx.post(f"{srv.url}/v1/similar", content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                       headers={**HEADERS, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert_error(r, 413, "payload_too_large")
    finally:
        srv.stop()


def test_a_search_past_the_deadline_is_504(corpus):
    from mediaintel_dagster.api.app import Limits, create_app

    srv = ThreadServer(create_app(corpus["res"], api_keys=KEYS, limits=Limits(timeout_s=0.0005), warm=False))
    try:
        err = assert_error(httpx.get(f"{srv.url}/v1/search", params={"q": "volcano ash"}, headers=HEADERS), 504,
                           "timeout")
        assert "longer than" in err["message"]
        assert httpx.get(f"{srv.url}/v1/health").status_code == 200  # the server still answers
    finally:
        srv.stop()


# ---- the schema -------------------------------------------------------------------------

def test_openapi_schema_has_real_models(srv):
    s = httpx.get(f"{srv.url}/v1/openapi.json").json()
    assert s["openapi"].startswith("3.")
    paths = s["paths"]
    assert {"/v1/search", "/v1/media/{media_id}", "/v1/media/{media_id}/similar", "/v1/similar",
            "/v1/media/{media_id}/keyframes/{scene_index}", "/v1/media/{media_id}/file", "/v1/health",
            "/v1/ready"} <= set(paths)
    ok = paths["/v1/search"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/SearchPage"}
    err = paths["/v1/search"]["get"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert err == {"$ref": "#/components/schemas/ErrorResponse"}  # not FastAPI's own validation shape
    q = next(p for p in paths["/v1/search"]["get"]["parameters"] if p["name"] == "k")
    assert q["schema"]["maximum"] == 100 and q["schema"]["minimum"] == 1
    assert {"APIKeyHeader", "HTTPBearer"} <= set(s["components"]["securitySchemes"])


def test_schemathesis_finds_no_failures(srv, tmp_path):
    """`st run` against the live schema: every operation, a bounded number of examples."""
    report = tmp_path / "report"
    cmd = [str(VENV_BIN / "st"), "run", f"{srv.url}/v1/openapi.json", "--header", f"X-API-Key: {KEYS[0]}",
           "--max-examples", "10", "--max-time", "40", "--seed", "7", "--workers", "2", "--no-color",
           "--request-timeout", "30", "--report", "ndjson", "--report-dir", str(report),
           # positive_data_acceptance: a valid-per-schema query may still be an empty search (400 is documented)
           "--exclude-checks", "positive_data_acceptance"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    print(out.stdout[-6000:])
    summary = _schemathesis_counts(out.stdout)
    print("schemathesis:", summary)
    (tmp_path / "st.json").write_text(json.dumps(summary))
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    assert summary["operations"] >= 8


def _schemathesis_counts(text: str) -> dict:
    """Operations, generated test cases and failures from `st run`'s summary."""
    ops = re.search(r"Tested:\s+(\d+)", text)
    cases = re.search(r"(\d+) generated", text)
    fails = re.search(r"(\d+) unique failures?", text)
    return {"operations": int(ops.group(1)) if ops else 0, "examples": int(cases.group(1)) if cases else 0,
            "failures": int(fails.group(1)) if fails else 0}


# ---- the process and the client ---------------------------------------------------------

def test_mediaintel_serve_and_the_cli_client(corpus, tmp_path):
    h = corpus["home"]
    env = {**os.environ, "MEDIAINTEL_HOME": str(h), "MEDIAINTEL_LAKE": str(h / "lake"),
           "MEDIAINTEL_OBJECTS": str(h / "objects"), "MEDIAINTEL_INDEX": str(h / "index"),
           "DAGSTER_HOME": str(h / "dagster"), "MEDIAINTEL_API_KEYS": "", "MEDIAINTEL_API_URL": ""}
    # Without keys, an address beyond loopback is refused before anything loads.
    refused = subprocess.run([str(VENV_BIN / "mediaintel"), "serve", "--host", "0.0.0.0", "--port", "9"],
                             capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert refused.returncode == 2 and "MEDIAINTEL_API_KEYS" in refused.stderr, refused.stderr[-2000:]
    port = api_support.free_port()
    proc = subprocess.Popen([str(VENV_BIN / "mediaintel"), "serve", "--port", str(port)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        api_support.wait_http(f"http://127.0.0.1:{port}/v1/ready", timeout=240)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/search", params={"q": "volcano"}).json()["hits"]
        # The client the CLI uses, pointed at it by MEDIAINTEL_API_URL.
        code = ("import json, sys; from mediaintel_dagster.api.client import service_search, service_url; "
                "print(json.dumps([service_url(), service_search({'query': 'volcano ash', 'k': 3, 'kinds': ['ocr'], "
                "'media_kinds': ['video'], 'min_score': None})]))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**env, "MEDIAINTEL_API_URL": f"http://127.0.0.1:{port}/"}, cwd=REPO)
        url, answer = json.loads(out.stdout.strip().splitlines()[-1])
        assert url == f"http://127.0.0.1:{port}"
        assert answer["hits"] and {h["item_kind"] for h in answer["hits"]} == {"ocr"}
        assert answer["hits"][0]["media_id"] == corpus["media_of"]["volcano"]
    finally:
        proc.terminate()
        try:
            log, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
    assert "no MEDIAINTEL_API_KEYS set: no key asked, loopback clients only" in log, log[-3000:]


def test_client_says_none_when_no_service_answers(monkeypatch):
    from mediaintel_dagster.api import client

    port = api_support.free_port()  # nothing listens there
    monkeypatch.setenv("MEDIAINTEL_API_URL", f"http://127.0.0.1:{port}")
    assert client.service_search({"q": "volcano"}) is None
    monkeypatch.delenv("MEDIAINTEL_API_URL")
    monkeypatch.setattr(client, "DEFAULT_URL", f"http://127.0.0.1:{port}")
    assert client.service_url() is None
    q = urllib.parse.parse_qs(client.query_string({"query": "a b", "kinds": ["ocr", "scene"], "media_kinds": None,
                                                    "k": 3}))
    assert q == {"q": ["a b"], "kind": ["ocr", "scene"], "k": ["3"]}


def test_the_cli_asks_a_service_only_over_its_own_lake(srv, corpus, monkeypatch):
    """A `serve` running over another MEDIAINTEL_HOME must not answer this lake's searches."""
    from mediaintel_dagster import config
    from mediaintel_dagster.api import client

    health = httpx.get(f"{srv.url}/v1/health").json()
    served = str(corpus["res"]["lake"].root)
    assert health["lake_id"] == config.lake_id(served)
    monkeypatch.delenv("MEDIAINTEL_API_URL", raising=False)
    monkeypatch.setattr(client, "DEFAULT_URL", srv.url)
    monkeypatch.setenv("MEDIAINTEL_LAKE", served)
    assert client.service_url() == srv.url
    monkeypatch.setenv("MEDIAINTEL_LAKE", served + "-another")
    assert client.service_url() is None, "another lake: search in-process instead"
