"""What the REST API tests share: one small real lake (the real pipeline over four media),
built once per test session, and real uvicorn servers on 127.0.0.1 serving it.

test_api.py and test_search_page.py both ask for them; run together they build the lake
and load the models once (in this process, which the servers' threads share).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ingest_one_window, pipeline_resources, set_home

KEYS = ["test-key-one", "test-key-two"]
# Topics whose words the tests search for: speech, burned-in captions (OCR), an image, audio.
VOLCANO_SPEECH = "The volcano erupted last night and ash covered the nearby villages."
_CACHE: dict = {}


def build_lake(tmp_path_factory, models_dir) -> dict:
    """The lake, its resources and {name: media_id}, built once per session."""
    if "lake" in _CACHE:
        return _CACHE["lake"]
    from mediaintel_dagster.media.samples import Shot, make_audio, make_image, make_video

    h = tmp_path_factory.mktemp("api") / "mi"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAINTEL_SHARDS", "1")
        inbox = set_home(mp, h, models_dir) / "inbox"
        paths = {
            "volcano": make_video(inbox / "volcano.mp4", [Shot(2.4, "VOLCANO ALERT", style="stripes"),
                                                          Shot(2.4, "ASH CLOUD", style="checker"),
                                                          Shot(2.4, "RESCUE TEAMS", style="circles")],
                                  speech=VOLCANO_SPEECH, size=(320, 180), rate_wpm=160)["path"],
            "baking": make_video(inbox / "baking.mp4", [Shot(2.4, "BAKING CLASS", style="gradient"),
                                                        Shot(2.4, "CAKE RECIPE", style="noise")],
                                 speech="Add the flour and sugar, then bake the cake for thirty minutes.",
                                 size=(320, 180), rate_wpm=160)["path"],
            "markets": make_audio(inbox / "markets.wav",
                                  "Shares fell sharply as investors worried about rising interest rates.",
                                  sample_rate=16000, silence_s=0.3),
            "poster": make_image(inbox / "poster.png", "GRAND OPENING", size=(320, 180)),
        }
        paths = {k: Path(v) for k, v in paths.items()}
        res = pipeline_resources(h, models_dir)
        result = ingest_one_window(res, paths.values())
        assert result.success, "the test lake's ingest run failed"
        by_uri = {r["source_uri"]: r["media_id"] for r in res["lake"].read("media_sources").to_pylist()}
        media_of = {name: by_uri[str(p.absolute())] for name, p in paths.items()}
    _CACHE["lake"] = {"home": h, "res": res, "media_of": media_of, "paths": paths}
    return _CACHE["lake"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """A real uvicorn server on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 180  # the lifespan warms the models first
        while time.time() < deadline:
            if self.server.started:
                return
            if not self.thread.is_alive():
                raise RuntimeError("the API server thread died at startup")
            time.sleep(0.05)
        raise RuntimeError("the API server did not start in 180 s")

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def server(tmp_path_factory, models_dir) -> ThreadServer:
    """The session's API server over the test lake, asking for KEYS."""
    if "server" not in _CACHE:
        from mediaintel_dagster.api.app import create_app

        corpus = build_lake(tmp_path_factory, models_dir)
        _CACHE["server"] = ThreadServer(create_app(corpus["res"], api_keys=KEYS, torch_threads=None))  # the test process keeps its torch
    return _CACHE["server"]


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


# The module fixtures both API test files use (imported there: one lake build per session).
@pytest.fixture(scope="module")
def corpus(tmp_path_factory, models_dir):
    return build_lake(tmp_path_factory, models_dir)


@pytest.fixture(scope="module")
def srv(corpus, tmp_path_factory, models_dir):
    return server(tmp_path_factory, models_dir)
