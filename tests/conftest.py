"""Shared fixtures: an isolated MEDIAINTEL_HOME per test, real media, real bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """Model folders assembled from pip packages (Whisper base), shared by every test's home."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def home(tmp_path, monkeypatch, models_dir) -> Path:
    """A fresh MEDIAINTEL_HOME with its lake, inbox and Dagster instance folders."""
    h = tmp_path / "mi"
    (h / "inbox").mkdir(parents=True)
    monkeypatch.setenv("MEDIAINTEL_MODELS", str(models_dir))
    monkeypatch.setenv("MEDIAINTEL_HOME", str(h))
    monkeypatch.setenv("MEDIAINTEL_LAKE", str(h / "lake"))
    monkeypatch.setenv("MEDIAINTEL_INBOX", str(h / "inbox"))
    # Set, not left to their defaults: a module fixture's home (set_home) sets them, and a test
    # of the same module would otherwise write keyframes and index entries into that home.
    monkeypatch.setenv("MEDIAINTEL_OBJECTS", str(h / "objects"))
    monkeypatch.setenv("MEDIAINTEL_INDEX", str(h / "index"))
    monkeypatch.setenv("DAGSTER_HOME", str(h / "dagster"))
    # A transient step failure is retried (tested in test_stage.py) after 0.5 s, not 10 s.
    monkeypatch.setenv("MEDIAINTEL_STEP_RETRY_DELAY_S", "0.5")
    return h


@pytest.fixture
def lake(home):
    from mediaintel_dagster.resources import LakehouseResource

    return LakehouseResource(root=str(home / "lake"))


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Small real media made once per session: a video with audio, speech audio, images."""
    from mediaintel_dagster.media.samples import Shot, make_audio, make_image, make_video

    d = tmp_path_factory.mktemp("media")
    make_video(d / "clip.mp4", [Shot(1.0, "FIRST", style="gradient"), Shot(1.0, "SECOND", style="checker")],
               speech="hello world", size=(320, 180))
    make_video(d / "silent.mkv", [Shot(1.5, None, style="circles")], size=(160, 96))
    make_audio(d / "speech.wav", "testing one two three")
    make_image(d / "poster.png", "GRAND OPENING", size=(320, 180))
    make_image(d / "photo.jpg", "PHOTO", size=(200, 120))
    return d


def make_bad_files(folder: Path, good_video: Path) -> dict[str, str]:
    """One file of every kind of bad input; returns {file name: expected error_type}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.mp4").write_bytes(b"")
    data = good_video.read_bytes()
    (folder / "cut_in_half.mp4").write_bytes(data[: len(data) // 2])
    (folder / "readme.mp4").write_text("This is a text file, not a video.\n" * 50)
    (folder / "random.bin").write_bytes(os.urandom(4096))
    os.symlink(folder / "does-not-exist.mp4", folder / "dangling.mp4")
    return {
        "zero.mp4": "empty_file",
        "cut_in_half.mp4": "truncated",
        "readme.mp4": "not_media",
        "random.bin": "not_media",
        "dangling.mp4": "unreadable",
    }


def copy_into(src_dir: Path, names: list[str], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        shutil.copy2(src_dir / n, dest / n)
        out.append(dest / n)
    return out


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed `mediaintel` script, in the environment the `home` fixture set."""
    return subprocess.run(
        [str(VENV_BIN / "mediaintel"), *args], capture_output=True, text=True,
        timeout=timeout, cwd=REPO,
    )


def window_of(path: os.PathLike) -> str:
    """The arrival window (partition key) of a file, as the inbox sensor computes it."""
    from mediaintel_dagster.resources.inbox import stat_file

    return str(stat_file(str(path)).partition_key())


def set_home(mp: pytest.MonkeyPatch, h: Path, models_dir: Path) -> Path:
    """What the ``home`` fixture sets, for module-scoped fixtures: every folder under ``h``."""
    for key, sub in [("MEDIAINTEL_HOME", ""), ("MEDIAINTEL_LAKE", "lake"), ("MEDIAINTEL_INBOX", "inbox"),
                     ("MEDIAINTEL_OBJECTS", "objects"), ("MEDIAINTEL_INDEX", "index"), ("DAGSTER_HOME", "dagster")]:
        mp.setenv(key, str(h / sub) if sub else str(h))
    mp.setenv("MEDIAINTEL_MODELS", str(models_dir))
    mp.setenv("MEDIAINTEL_STEP_RETRY_DELAY_S", "0.5")
    (h / "inbox").mkdir(parents=True, exist_ok=True)
    return h


def pipeline_resources(h: Path, models_dir: Path, **override) -> dict:
    """Every resource of a whole-pipeline run over the home ``h``, on the CPU."""
    from mediaintel_dagster.resources import (ClipResource, LakehouseResource, LocalInboxResource,
                                              ObjectStoreResource, OcrResource, TextEmbedderResource, WhisperResource)

    return {
        "inbox": LocalInboxResource(roots=[str(h / "inbox")], settle_seconds=0.0),
        "lake": LakehouseResource(root=str(h / "lake")),
        "objects": ObjectStoreResource(root=str(h / "objects")),
        "whisper": WhisperResource(model_dir=str(models_dir / "whisper-base-ct2"), device="cpu"),
        "text_embedder": TextEmbedderResource(device="cpu"),
        "ocr": OcrResource(),
        "clip": ClipResource(device="cpu"),  # no CLIP weights here: the declared fallback
        **index_resources_at(h / "index"),
        **override,
    }


def ingest_one_window(resources: dict, files) -> object:
    """The real ingest_job (every stage) over the one arrival window all ``files`` fall in,
    on the persistent instance of the current home; the run's result (not raised on error)."""
    from mediaintel_dagster.definitions import build_defs
    from mediaintel_dagster.instance import get_instance

    windows = {window_of(p) for p in files}
    assert len(windows) == 1, f"the files fall in several windows: {sorted(windows)}"
    job = build_defs(resources).resolve_job_def("ingest_job")
    return job.execute_in_process(partition_key=windows.pop(), instance=get_instance(), raise_on_error=False)


def index_resources_at(root: Path) -> dict:
    """The embedded serving index (LanceDB vectors and keyword index) under ``root``."""
    from mediaintel_dagster.resources.lance_index import LanceTextIndexResource, LanceVectorIndexResource

    return {"vector_index": LanceVectorIndexResource(root=str(root)), "text_index": LanceTextIndexResource(root=str(root))}


def rows_by_file(lake):
    """The `media` rows by file name, and ``rows(table)``: that table's rows grouped by file name."""
    media = {Path(r["source_uri"]).name: r for r in lake.read("media").to_pylist()}
    names = {r["media_id"]: n for n, r in media.items()}

    def rows(table: str) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {n: [] for n in media}
        for r in lake.read(table).to_pylist():
            out[names[r["media_id"]]].append(r)
        return out

    return media, rows
