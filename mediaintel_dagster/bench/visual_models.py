"""Keyframes per second of the visual models: OCR (RapidOCR), CLIP (OpenCLIP ViT-B-32), and
the fallback image embedder. ``python -m mediaintel_dagster.bench.visual_models [--n 20]``

Generates captioned keyframes (half 640x360, half 1280x720, JPEG as the scenes stage
writes them) and times each model on them after one warm-up call. CLIP runs with the
configured weights when they are on this machine; otherwise with the same architecture
randomly initialised (speed does not depend on the weights), and says so.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CAPTIONS = [
    "BREAKING NEWS", "WEATHER TODAY", "GRAND OPENING SATURDAY", "CITY CENTER", "SPORTS RESULTS",
    "THANK YOU FOR WATCHING", "LIVE AT FIVE", "MARKET UPDATE", "TRAFFIC ALERT", "CLOSING BELL",
]


def make_keyframes(folder: Path, n: int) -> list[Path]:
    from ..media.samples import make_image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        size = (640, 360) if i % 2 == 0 else (1280, 720)
        bg = tuple(int(c) for c in rng.integers(0, 256, 3))
        paths.append(make_image(folder / f"kf{i:03d}.jpg", CAPTIONS[i % len(CAPTIONS)], size=size, background=bg))
    return paths


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:.2f} keyframes/s ({seconds / n * 1000:.0f} ms each)"


def bench_ocr(paths: list[Path]) -> dict:
    from ..media.keyframes import open_keyframe_bgr
    from ..resources.ocr import OcrResource

    ocr = OcrResource()
    images = [open_keyframe_bgr(str(p)) for p in paths]
    t = time.perf_counter()
    ocr.engine()
    load = time.perf_counter() - t
    ocr.read(images[0])  # warm-up
    by_size: dict[str, list[float]] = {}
    exact = 0
    misses = []
    t0 = time.perf_counter()
    for i, img in enumerate(images):
        t = time.perf_counter()
        lines = ocr.read(img)
        by_size.setdefault(f"{img.shape[1]}x{img.shape[0]}", []).append(time.perf_counter() - t)
        got = " ".join(x.text for x in lines)
        exact += got == CAPTIONS[i % len(CAPTIONS)]
        if got != CAPTIONS[i % len(CAPTIONS)]:
            misses.append(f"{CAPTIONS[i % len(CAPTIONS)]!r} -> {got!r} ({img.shape[1]}x{img.shape[0]})")
    total = time.perf_counter() - t0
    print(f"OCR   {ocr.model_id}: {_rate(len(images), total)}; load {load:.2f}s; "
          + ", ".join(f"{k}: {np.mean(v) * 1000:.0f} ms" for k, v in sorted(by_size.items()))
          + f"; captions read exactly (words and spaces): {exact}/{len(images)}")
    for m in misses:
        print(f"      not exact: {m}")
    return {"keyframes_per_s": len(images) / total, "exact": exact}


def bench_clip(paths: list[Path], batch_size: int, device: str) -> dict:
    import torch

    from ..resources.clip import ClipEmbedder, ClipResource
    from ..resources.models import resolve_device

    res = ClipResource(batch_size=batch_size, device=device)
    t = time.perf_counter()
    emb = res.embedder()
    load = time.perf_counter() - t
    note = ""
    if emb.is_fallback:
        import open_clip

        dev = resolve_device(device)
        t = time.perf_counter()
        model, _, preprocess = open_clip.create_model_and_transforms(res.model_name, pretrained=None, device=dev)
        model.eval()
        load = time.perf_counter() - t
        emb = ClipEmbedder(model, preprocess, f"open_clip/{res.model_name}@random-init", dev)
        note = " [weights absent: same architecture, random init; speed does not depend on the weights]"
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    emb.embed(images[:2])  # warm-up
    t0 = time.perf_counter()
    batches = 0
    for s in range(0, len(images), batch_size):
        v = emb.embed(images[s:s + batch_size])
        batches += 1
    total = time.perf_counter() - t0
    print(f"CLIP  {emb.model_id} on {emb.device} (torch threads {torch.get_num_threads()}), batch size "
          f"{batch_size} ({batches} batches): {_rate(len(images), total)}; load {load:.2f}s; dim {v.shape[1]}{note}")
    return {"keyframes_per_s": len(images) / total, "device": emb.device}


def bench_fallback(paths: list[Path], batch_size: int) -> dict:
    from PIL import Image

    from ..resources.clip import ImageFeatureEmbedder

    emb = ImageFeatureEmbedder()
    images = [Image.open(p).convert("RGB") for p in paths]
    emb.embed(images[:2])
    t0 = time.perf_counter()
    for s in range(0, len(images), batch_size):
        emb.embed(images[s:s + batch_size])
    total = time.perf_counter() - t0
    print(f"IMG   {emb.model_id} (fallback, CPU), batch size {batch_size}: {_rate(len(images), total)}; dim {emb.dim}")
    return {"keyframes_per_s": len(images) / total}


def fallback_decision_seconds() -> float:
    """How long a fresh process takes to find the CLIP weights absent and pick the fallback."""
    import subprocess
    import sys

    code = ("import time; t = time.perf_counter()\n"
            "from mediaintel_dagster.resources.clip import ClipResource\n"
            "e = ClipResource().embedder(); print(e.model_id, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split()
    return float(out[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20, help="keyframes to generate (half 640x360, half 1280x720)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as d:
        paths = make_keyframes(Path(d), args.n)
        print(f"{len(paths)} keyframes (640x360 and 1280x720 JPEG, one caption each), cpu cores {os.cpu_count()}")
        ocr = bench_ocr(paths)
        clip = bench_clip(paths, args.batch_size, args.device)
        fb = bench_fallback(paths, args.batch_size)
    secs = fallback_decision_seconds()
    print(f"weights absent -> fallback chosen in {secs:.2f}s in a fresh process (no download tried)")
    print(f"ratios: CLIP/OCR {clip['keyframes_per_s'] / ocr['keyframes_per_s']:.1f}x, "
          f"fallback/CLIP {fb['keyframes_per_s'] / clip['keyframes_per_s']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
