"""Scene image embeddings: a tiny OpenCLIP the test builds and saves, loaded through the same
`pretrained=<file>` path as production; batching across media; one load per process;
missing weights -> the declared fallback, fast and loudly."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pyarrow.dataset as pads
import pytest
from dagster import DagsterInstance, materialize
from PIL import Image

from mediaintel_dagster.assets import media_assets, scene_embeddings
from mediaintel_dagster.resources import ClipResource, LakehouseResource, LocalInboxResource
from mediaintel_dagster.resources.clip import FALLBACK_MODEL_ID, ImageFeatureEmbedder
from mediaintel_dagster.resources.models import loaded_models
from mediaintel_dagster.media.samples import Shot, make_image, make_video
from conftest import window_of

from mediaintel_dagster.assets import scenes
from mediaintel_dagster.resources import ObjectStoreResource

TINY = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    # The real BPE vocabulary size: the text tower must accept what CLIP's tokenizer emits.
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random-init tiny CLIP: its config JSON and its state_dict saved to a file."""
    import open_clip
    import torch

    d = tmp_path_factory.mktemp("tinyclip")
    cfg = d / "tiny-config.json"
    cfg.write_text(json.dumps(TINY))
    open_clip.add_model_config(cfg)  # registered as "tiny-config" (its file stem)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-config")
    weights = d / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return {"config": str(cfg), "weights": str(weights),
            "sha": hashlib.sha256(weights.read_bytes()).hexdigest()[:12]}


def _clip(tiny, **kw) -> ClipResource:
    return ClipResource(model_name="mi-tiny", pretrained=tiny["weights"], model_config_file=tiny["config"],
                        device="cpu", **kw)


def test_tiny_clip_loads_from_file(tiny_clip):
    import torch

    res = _clip(tiny_clip, batch_size=4)
    emb = res.embedder()
    assert not emb.is_fallback
    assert emb.model_id == f"open_clip/mi-tiny@sha256:{tiny_clip['sha']}"
    # The weights are the saved ones, not a fresh random init.
    saved = torch.load(tiny_clip["weights"])
    assert torch.equal(emb.model.visual.conv1.weight, saved["visual.conv1.weight"])
    images = [Image.new("RGB", (64, 48), (40 * i, 90, 200 - 30 * i)) for i in range(3)]
    vecs = emb.embed(images)
    assert vecs.shape == (3, 24) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vecs[0], vecs[2])
    # One load per process: another resource object with the same config gets the same model.
    assert _clip(tiny_clip, batch_size=4).embedder() is emb
    assert sum(1 for k in loaded_models() if k[0] == "open_clip" and k[1] == "mi-tiny") == 1


def test_known_repos_match_open_clip():
    import open_clip

    from mediaintel_dagster.resources.clip import KNOWN_HF_REPOS

    for (arch, tag), repo in KNOWN_HF_REPOS.items():
        assert open_clip.get_pretrained_cfg(arch, tag)["hf_hub"].strip("/") == repo


def test_missing_weights_route_to_fallback_fast(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf" / "hub"))
    caplog.set_level(logging.WARNING)
    # "Fast" means no network wait: no name is even looked up (not a timed assertion).
    import socket
    import threading

    # Only this thread's lookups: servers earlier tests left running (uvicorn, pika, ...)
    # resolve names in their own threads.
    me, lookups = threading.get_ident(), []
    real_getaddrinfo = socket.getaddrinfo

    def recording(*a, **k):
        if threading.get_ident() == me:
            lookups.append(a[:2])
        return real_getaddrinfo(*a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    # A fresh choice, as a new process makes it: earlier tests in this process (the suite)
    # already routed the default CLIP and would hand back their embedder, with no warning.
    from mediaintel_dagster.resources import models

    monkeypatch.setattr(models, "_CACHE", {})
    emb = ClipResource(device="cpu").embedder()  # ViT-B-32 laion2b_s34b_b79k, not on this machine
    assert lookups == [], f"the route to the fallback looked up {lookups}"
    assert emb.is_fallback and emb.model_id == FALLBACK_MODEL_ID
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "laion2b_s34b_b79k" in warning and "huggingface-cli download" in warning and FALLBACK_MODEL_ID in warning

    # In a fresh process (a run's first step), without even importing torch.
    import os
    import subprocess
    import sys

    code = ("import socket, sys; calls = []; real = socket.getaddrinfo\n"
            "socket.getaddrinfo = lambda *a, **k: calls.append(a[:2]) or real(*a, **k)\n"
            "from mediaintel_dagster.resources.clip import ClipResource\n"
            "e = ClipResource().embedder()\n"
            "print(e.model_id, len(calls), 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ})
    out = (proc.stdout.strip().splitlines() or [""])[-1].split()  # its own line, whatever was printed before
    assert out == [FALLBACK_MODEL_ID, "0", "False"], (proc.stdout[-2000:], proc.stderr[-2000:])

    # A configured file that is not there: the same route.
    missing = ClipResource(pretrained=str(tmp_path / "nope.safetensors"), device="cpu").embedder()
    assert missing.model_id == FALLBACK_MODEL_ID
    # ... unless the user asked for no fallback.
    from mediaintel_dagster.resources.models import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="does not exist"):
        ClipResource(pretrained=str(tmp_path / "nope2.bin"), device="cpu", fallback="none").embedder()


def test_fallback_features_find_similar_images(tmp_path):
    emb = ImageFeatureEmbedder()
    a = make_image(tmp_path / "a.jpg", "CITY CENTER", size=(640, 360), background=(30, 90, 200))
    a_small = make_image(tmp_path / "a2.jpg", "CITY CENTER", size=(320, 180), background=(30, 90, 200), quality=60)
    b = make_image(tmp_path / "b.jpg", "THANK YOU", size=(640, 360), background=(240, 170, 30))
    va, va2, vb = emb.embed([Image.open(p) for p in (a, a_small, b)])
    assert va.shape == (512,) and abs(np.linalg.norm(va) - 1) < 1e-5
    assert float(va @ va2) > 0.95 > float(va @ vb), "a resized re-encode is nearer than another picture"
    again = emb.embed([Image.open(a)])[0]
    assert np.array_equal(va, again), "deterministic"


def _setup_media(home):
    inbox = home / "inbox"
    make_video(inbox / "one.mp4", [Shot(1.0, "ONE", style="stripes"), Shot(1.0, "TWO", style="checker")],
               size=(320, 180), fps=10)
    make_video(inbox / "two.mp4", [Shot(1.0, None, style="circles"), Shot(1.0, None, style="bars"),
                                   Shot(1.0, "THREE", style="gradient")], size=(320, 180), fps=10)
    make_image(inbox / "still.png", "STILL", size=(320, 180))
    return inbox


def _materialize(window, resources, assets, force=False):
    run_config = {"ops": {"scene_embeddings": {"config": {"force": True}}}} if force else None
    res = materialize(assets, partition_key=window, resources=resources, instance=DagsterInstance.ephemeral(),
                      run_config=run_config)
    assert res.success
    return res.asset_materializations_for_node("scene_embeddings")[0].metadata


def test_scene_embeddings_stage(home, tiny_clip, monkeypatch):
    # All files in one window (one shard), so that one run sees every media.
    # Read when used (no module state to patch): the shard of every file is now 0.
    monkeypatch.setenv("MEDIAINTEL_SHARDS", "1")
    inbox = _setup_media(home)
    windows = {window_of(p) for p in inbox.iterdir()}
    assert len(windows) == 1
    (window,) = windows
    lake = LakehouseResource(root=str(home / "lake"))
    clip = _clip(tiny_clip, batch_size=16)
    resources = {"lake": lake, "inbox": LocalInboxResource(roots=[str(inbox)], settle_seconds=0),
                 "objects": ObjectStoreResource(), "clip": clip}
    emb = clip.embedder()
    calls_before = emb.forward_calls

    meta = _materialize(window, resources, [media_assets, scenes, scene_embeddings])
    rows = lake.read("embeddings").to_pylist()
    scene_rows = lake.read("scenes").to_pylist()
    assert len(rows) == len(scene_rows) == 6  # 2 + 3 one-second scenes + 1 still
    assert {(r["media_id"], r["item_index"]) for r in rows} == {(s["media_id"], s["scene_index"]) for s in scene_rows}
    assert all(r["item_kind"] == "scene" and r["model_id"] == emb.model_id for r in rows)
    vecs = np.asarray([r["vector"] for r in rows], dtype=np.float32)
    assert vecs.shape == (6, 24) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # Batched across media: six keyframes of three media in one forward pass.
    assert emb.forward_calls - calls_before == 1 and emb.batch_sizes[-1] == 6
    assert meta["batches"].value == 1 and meta["batch_size"].value == 16
    assert meta["dim"].value == 24 and meta["fallback"].value is False
    assert abs(meta["norm_min"].value - 1) < 1e-4 and abs(meta["norm_max"].value - 1) < 1e-4
    assert meta["keyframes_per_second"].value > 0
    audit = lake.read("audit_log", filter=pads.field("asset") == "scene_embeddings").to_pylist()
    assert sorted(r["rows"] for r in audit) == [1, 2, 3] and {r["model_id"] for r in audit} == {emb.model_id}

    # Text -> scene search goes through the same CLIP's text tower, against these vectors
    # (the tiny model is random, so only the mechanics are asserted, not the ranking).
    from mediaintel_dagster.assets.index import index_media
    from mediaintel_dagster.search import search
    from conftest import index_resources_at

    idx = index_resources_at(home / "index")
    index_media(lake, idx["vector_index"], idx["text_index"], sorted({r["media_id"] for r in rows}))
    text_vec = emb.embed_text(["a striped pattern"])
    assert text_vec.shape == (1, 24) and abs(float(np.linalg.norm(text_vec)) - 1) < 1e-5
    # min_score=0: every hit, however weak (a random tiny model's cosines sit below the floors)
    hits = search("a striped pattern", k=4, lake=lake, clip=clip, kinds=["scene"], retrievers=["picture"],
                  min_score=0, **idx)
    assert len(hits) == 4 and {h.item_kind for h in hits} == {"scene"} and {h.model_id for h in hits} == {emb.model_id}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    best = {(r["media_id"], r["item_index"]): float(np.dot(r["vector"], text_vec[0])) for r in rows}
    assert (hits[0].media_id, hits[0].item_index) == max(best, key=best.get)
    assert all(h.start_s is not None and h.source_uri for h in hits)

    # Done media are skipped: no forward pass, no write.
    version = lake.version("embeddings")
    meta = _materialize(window, resources, [scene_embeddings])
    assert meta["media_skipped_done"].value == 3 and emb.forward_calls - calls_before == 1
    assert lake.version("embeddings") == version

    # A smaller batch size splits the run into ceil(6 / 4) = 2 passes; a bad keyframe is
    # quarantined and the rest is written.
    kf = sorted(s["keyframe_uri"] for s in scene_rows)[0]
    with open(kf, "wb") as f:
        f.write(b"not a jpeg")
    small = _clip(tiny_clip, batch_size=4)
    resources["clip"] = small
    meta = _materialize(window, resources, [scene_embeddings], force=True)
    assert small.embedder() is emb, "same model config: no second load"
    assert meta["batches"].value == 2 and meta["keyframes_quarantined"].value == 1
    assert lake.read("embeddings").num_rows == 5
    (q,) = lake.read("quarantine", filter=pads.field("stage") == "scene_embeddings").to_pylist()
    assert q["source_uri"] == kf and q["error_type"] == "unreadable_keyframe"

    # Without weights the same window is embedded by the fallback, side by side (other model_id).
    resources["clip"] = ClipResource(pretrained=str(home / "absent.pt"), device="cpu")
    meta = _materialize(window, resources, [scene_embeddings])
    assert meta["model_id"].value == FALLBACK_MODEL_ID and meta["fallback"].value is True
    by_model = {}
    for r in lake.read("embeddings").to_pylist():
        by_model.setdefault(r["model_id"], []).append(len(r["vector"]))
    assert sorted(by_model) == sorted([emb.model_id, FALLBACK_MODEL_ID])
    assert set(by_model[FALLBACK_MODEL_ID]) == {512} and len(by_model[FALLBACK_MODEL_ID]) == 5


def test_visual_assets_in_definitions():
    from dagster import AssetKey

    from mediaintel_dagster.definitions import defs
    from mediaintel_dagster.jobs import GPU_OP_TAGS, GPU_POOL

    emb = defs.resolve_assets_def("scene_embeddings")
    ocr = defs.resolve_assets_def("ocr_text")
    for a, key in [(emb, "scene_embeddings"), (ocr, "ocr_text")]:
        k = AssetKey(key)
        assert a.group_names_by_key[k] == "visual" and a.code_versions_by_key[k]
        assert AssetKey("scenes") in a.asset_deps[k]
        assert a.specs_by_key[k].description and "scene" in a.specs_by_key[k].description
    assert emb.op.pool == GPU_POOL and emb.op.tags["mediaintel/device"] == GPU_OP_TAGS["mediaintel/device"]
    assert {"ocr", "clip"} <= set(defs.resources)
