"""Keyframe fingerprints and sequence alignment for near-duplicate video detection.

Pure code (numpy, Pillow, imagehash; no Dagster). Two pieces:

* :func:`keyframe_print`: one keyframe's fingerprint. Black bars (letterbox, pillarbox) are
  found and cut off first, so a letterboxed copy hashes like its source; then a 64-bit
  pHash of the picture at three centred crops (100 %, 90 %, 80 % of each side), so a copy
  cropped by up to ~20 % still meets its source at a neighbouring scale, and at four corner
  crops (90 % of each side), so a copy cropped unevenly (off two sides) meets one of them. Keyframes with
  too little information to be evidence (near-black, near-uniform, almost no edges: black
  openings, fades, plain slates) are flagged and never count.
* :func:`align` and :func:`judge`: whether two media show the same content. Keyframes match
  when their hashes are close (or fairly close and their image embeddings agree); the
  matches are chained in order in both media (a longest weighted common subsequence whose
  steps keep a plausible speed ratio), which survives trims (a missing head), speed
  changes (times scale), a copy embedded in a longer video (an offset, unmatched content
  around it) and re-cut first shots. A pair is a duplicate only with enough aligned,
  distinct, informative evidence covering most of one of the two media: one shared frame
  (a station's logo card, a title-card template) is never enough.

Rarity: ``weights`` lets a caller discount keyframes that many otherwise unrelated media
share (the near_duplicates stage counts, per keyframe, how many media match that keyframe
but fail the pair test: a template shared by a hundred station videos weighs 1/101).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

# The crops a keyframe is hashed at (fraction of each side kept, centred) ...
SCALES = (1.0, 0.9, 0.8)
# ... and off-centre: 90 % of each side against one corner (top-left, top-right, bottom-left,
# bottom-right), so a copy cropped from two sides, not evenly, meets its source's corner crop.
CORNERS = ("tl", "tr", "bl", "br")
CORNER_KEEP = 0.9


@dataclass(frozen=True)
class PrintParams:
    """What counts as a bar and as a low-information keyframe (luma 0-255)."""

    bar_luma: float = 24.0  # a bar row/column is darker than this on average ...
    bar_std: float = 10.0  # ... and this flat (JPEG noise on black stays below it)
    min_content: float = 0.3  # bars never leave less than this fraction of a side
    dark_luma: float = 30.0  # a keyframe darker than this on average ...
    dark_std: float = 18.0  # ... with less spread than this is near-black
    flat_std: float = 8.0  # any keyframe with less spread than this is near-uniform
    edge_threshold: float = 24.0  # gradient magnitude of an edge pixel
    min_edge_density: float = 0.01  # fewer edge pixels than this fraction: no structure


def _bars(gray: np.ndarray, p: PrintParams) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) rows/columns of black bars."""
    h, w = gray.shape

    def run(lines: np.ndarray, limit: int) -> int:
        n = 0
        means, stds = lines.mean(axis=1), lines.std(axis=1)
        while n < limit and means[n] < p.bar_luma and stds[n] < p.bar_std:
            n += 1
        return n

    max_h, max_w = int(h * (1 - p.min_content) / 2), int(w * (1 - p.min_content) / 2)
    top, bottom = run(gray, max_h), run(gray[::-1], max_h)
    left, right = run(gray.T, max_w), run(gray.T[::-1], max_w)
    # A bar of a pixel or two is a dark picture edge or encoder padding, not a letterbox.
    min_h, min_w = max(2, h // 50), max(2, w // 50)
    top, bottom = (top if top >= min_h else 0), (bottom if bottom >= min_h else 0)
    left, right = (left if left >= min_w else 0), (right if right >= min_w else 0)
    return top, bottom, left, right


def _hash64(gray_img) -> int:
    import imagehash

    return int(str(imagehash.phash(gray_img)), 16)


def keyframe_print(image, params: PrintParams = PrintParams()) -> dict:
    """The fingerprint of one keyframe (a PIL image): hashes at ``SCALES`` (ints, 64 bits)
    of the picture without its black bars and at its ``CORNERS`` (corner_hashes), whether it is informative (and if not, why),
    the bars and the picture's measures."""
    from PIL import Image

    gray_img = image.convert("L")
    gray = np.asarray(gray_img, dtype=np.float32)
    h, w = gray.shape
    top, bottom, left, right = _bars(gray, params)
    pic = gray[top:h - bottom, left:w - right]
    if pic.size == 0:
        pic, top, bottom, left, right = gray, 0, 0, 0, 0
    mean, std = float(pic.mean()), float(pic.std())
    gy, gx = np.gradient(pic)
    edges = float((np.hypot(gx, gy) > params.edge_threshold).mean())
    reason = None
    if mean < params.dark_luma and std < params.dark_std:
        reason = "near_black"
    elif std < params.flat_std:
        reason = "near_uniform"
    elif edges < params.min_edge_density:
        reason = "low_edges"
    ph, pw = pic.shape
    pil = Image.fromarray(pic.astype(np.uint8))
    hashes = []
    for s in SCALES:
        ch, cw = max(1, int(round(ph * s))), max(1, int(round(pw * s)))
        y0, x0 = (ph - ch) // 2, (pw - cw) // 2
        hashes.append(_hash64(pil.crop((x0, y0, x0 + cw, y0 + ch))))
    ch, cw = max(1, int(round(ph * CORNER_KEEP))), max(1, int(round(pw * CORNER_KEEP)))
    corners = []
    for c in CORNERS:
        y0 = 0 if c[0] == "t" else ph - ch
        x0 = 0 if c[1] == "l" else pw - cw
        corners.append(_hash64(pil.crop((x0, y0, x0 + cw, y0 + ch))))
    return {"hashes": hashes, "corner_hashes": corners, "informative": reason is None, "low_info_reason": reason,
            "luma_mean": mean, "luma_std": std, "edge_density": edges,
            "content_width": pw, "content_height": ph,
            "bar_top": top, "bar_bottom": bottom, "bar_left": left, "bar_right": right}


def hex64(value: int) -> str:
    return f"{value & 0xFFFFFFFFFFFFFFFF:016x}"


def from_hex(text: str) -> int:
    return int(text, 16)


# ---- matching ---------------------------------------------------------------------------------

@dataclass
class Item:
    """One keyframe of a media, as the alignment sees it."""

    t: float  # seconds from the start of the media
    hashes: Sequence[int]  # one per SCALES entry
    informative: bool = True
    vector: Optional[np.ndarray] = None  # its image embedding, L2-normalised (representative keyframes)
    key: tuple = ()  # (scene_index, keyframe_n), for reporting
    corners: Sequence[int] = ()  # one per CORNERS entry (none: not compared off-centre)


@dataclass(frozen=True)
class MatchParams:
    """Thresholds of the pair test (the benchmark in bench/near_duplicates.py measured them)."""

    strict_bits: int = 12  # hashes this close (of 64 bits) match on their own
    loose_bits: int = 16  # ... this close match when the embeddings also agree
    min_cosine: float = 0.90
    # Consecutive aligned keyframes must advance in step: time in B over time in A within
    # [1/max_speed, max_speed] once they are this far apart (closer ones jitter by a frame).
    max_speed: float = 2.0
    jitter_s: float = 0.6
    min_evidence: float = 1.5  # weighted aligned keyframes (two full-weight ones pass)
    min_coverage: float = 0.5  # of the informative keyframes of one of the two media
    # Where the two timelines overlap (under the fitted speed and offset), a keyframe that did
    # not align contradicts the pair when every keyframe of the other media near its mapped
    # time is clearly another picture (more than contra_bits apart; unrelated pictures sit
    # near 32). More than max_contradiction of a side's keyframes in the overlap contradicting
    # means the two share a part (an intro, a stock shot) and then go different ways.
    contra_bits: int = 22
    contra_window_s: float = 1.5
    max_contradiction: float = 0.25


def hamming(a: int, b: int) -> int:
    return int((a ^ b).bit_count())


def item_distance(a: Item, b: Item) -> int:
    """The smallest Hamming distance between the two keyframes' hashes at the same or
    neighbouring centred crop scales (a 10 % crop of one is the other's next scale), or
    between one's whole picture and the other's corner crops (a crop off two sides)."""
    best = 64
    n = min(len(a.hashes), len(b.hashes))
    for i in range(n):
        for j in range(max(0, i - 1), min(n, i + 2)):
            d = hamming(a.hashes[i], b.hashes[j])
            if d < best:
                best = d
    for c in b.corners:
        best = min(best, hamming(a.hashes[0], c))
    for c in a.corners:
        best = min(best, hamming(c, b.hashes[0]))
    return best


def items_match(a: Item, b: Item, params: MatchParams = MatchParams()) -> tuple[bool, int, Optional[float]]:
    """(match?, hash distance, embedding cosine or None) for two informative keyframes."""
    if not (a.informative and b.informative):
        return False, 64, None
    d = item_distance(a, b)
    cos = None
    if a.vector is not None and b.vector is not None and len(a.vector) == len(b.vector):
        cos = float(np.dot(a.vector, b.vector))
    if d <= params.strict_bits:
        return True, d, cos
    if d <= params.loose_bits and cos is not None and cos >= params.min_cosine:
        return True, d, cos
    return False, d, cos


@dataclass
class Alignment:
    """The best ordered chain of keyframe matches between media A and B."""

    pairs: list = field(default_factory=list)  # (i, j, distance, cosine) in order
    evidence: float = 0.0  # weighted distinct informative matches
    coverage_a: float = 0.0  # weighted share of A's informative keyframes in the chain
    coverage_b: float = 0.0
    speed_ratio: Optional[float] = None  # seconds of B per second of A
    offset_s: Optional[float] = None  # t_B = speed_ratio * t_A + offset_s
    mean_distance: Optional[float] = None
    matched_a: set = field(default_factory=set)  # indices of A matched by any keyframe of B
    # Informative keyframes inside the overlap of the two timelines (aligned ones included),
    # and those of them that contradict the pair (see MatchParams.contra_bits).
    overlap_a: int = 0
    overlap_b: int = 0
    contradictions_a: int = 0
    contradictions_b: int = 0

    @property
    def contradiction(self) -> float:
        """The larger share of contradicting keyframes in the overlap, of the two media."""
        return max(self.contradictions_a / self.overlap_a if self.overlap_a else 0.0,
                   self.contradictions_b / self.overlap_b if self.overlap_b else 0.0)

    @property
    def coverage(self) -> float:
        return max(self.coverage_a, self.coverage_b)

    @property
    def relation(self) -> str:
        """'copy' (each covers three quarters of the other or more), 'contained_in' (A is inside
        B: a trimmed copy, a clip of a longer video) or 'contains'."""
        if self.coverage_a >= 0.75 and self.coverage_b >= 0.75:
            return "copy"
        return "contained_in" if self.coverage_a >= self.coverage_b else "contains"


def _consistent(ta0: float, tb0: float, ta1: float, tb1: float, p: MatchParams) -> bool:
    da, db = ta1 - ta0, tb1 - tb0
    if da <= p.jitter_s or db <= p.jitter_s:
        # Close keyframes: only an order check (timing within a frame or two is noise).
        return abs(da - db) <= p.jitter_s * 2 or (min(da, db) > 0 and max(da, db) / min(da, db) <= p.max_speed)
    r = db / da
    return 1.0 / p.max_speed <= r <= p.max_speed


def align(a: Sequence[Item], b: Sequence[Item], weights: Optional[Sequence[float]] = None,
          params: MatchParams = MatchParams()) -> Alignment:
    """The heaviest chain of matching keyframes in order in both media (strictly later in
    A and in B at each step, at a plausible speed), with its coverage of each media.

    ``weights``: per keyframe of A, its rarity weight (1.0 when None); a match takes its A
    keyframe's weight, on both sides, so a discounted template frame counts in neither
    the evidence nor either media's total.
    """
    wa = list(weights) if weights is not None else [1.0] * len(a)
    matches = []  # (i, j, d, cos)
    matched_a = set()
    for i, x in enumerate(a):
        if not x.informative or wa[i] <= 0:
            continue
        for j, y in enumerate(b):
            ok, d, cos = items_match(x, y, params)
            if ok:
                matches.append((i, j, d, cos))
                matched_a.add(i)
    out = Alignment(matched_a=matched_a)
    if not matches:
        return out
    # Heaviest chain: O(K^2) over K matches (K is small: tens per pair).
    matches.sort(key=lambda m: (a[m[0]].t, b[m[1]].t))
    k = len(matches)
    best = [0.0] * k
    prev = [-1] * k
    for n, (i, j, d, _) in enumerate(matches):
        w = wa[i] * (1.0 - d / 128.0)  # a closer match is slightly stronger evidence
        best[n] = w
        for m in range(n):
            i0, j0, _, _ = matches[m]
            if i0 < i and j0 < j and a[i0].t < a[i].t and b[j0].t < b[j].t \
                    and _consistent(a[i0].t, b[j0].t, a[i].t, b[j].t, params) and best[m] + w > best[n]:
                best[n], prev[n] = best[m] + w, m
    n = max(range(k), key=lambda x: best[x])
    chain = []
    while n >= 0:
        chain.append(matches[n])
        n = prev[n]
    chain.reverse()
    out.pairs = chain
    # Distinct evidence: a keyframe of A counts once, and so does a keyframe of B.
    used_a = {c[0] for c in chain}
    used_b = {c[1] for c in chain}
    out.evidence = sum(wa[i] for i in used_a)
    inf_a = [i for i, x in enumerate(a) if x.informative]
    total_a = sum(wa[i] for i in inf_a)
    out.coverage_a = out.evidence / total_a if total_a > 0 else 0.0
    # B's keyframes take the weight of the A keyframe they matched; the others weigh 1.
    wb_matched = {c[1]: wa[c[0]] for c in chain}
    total_b = sum(wb_matched.get(j, 1.0) for j, y in enumerate(b) if y.informative)
    out.coverage_b = sum(wb_matched[j] for j in used_b) / total_b if total_b > 0 else 0.0
    ds = [c[2] for c in chain]
    out.mean_distance = float(np.mean(ds))
    ta = np.array([a[c[0]].t for c in chain])
    tb = np.array([b[c[1]].t for c in chain])
    if len(chain) >= 2 and np.ptp(ta) > 0:
        slope, offset = np.polyfit(ta, tb, 1)
        out.speed_ratio, out.offset_s = float(slope), float(offset)
    else:
        out.speed_ratio, out.offset_s = 1.0, float(tb[0] - ta[0])
    if not (out.speed_ratio and 1.0 / params.max_speed <= out.speed_ratio <= params.max_speed):
        out.speed_ratio = 1.0  # a degenerate fit (matches bunched in time): map by the offset alone
        out.offset_s = float(np.median(tb - ta))
    _contradictions(a, b, used_a, used_b, out, params)
    return out


def _contradictions(a, b, used_a, used_b, out: Alignment, p: MatchParams) -> None:
    speed, offset = out.speed_ratio, out.offset_s

    def side(xs, ys, used, to_other, from_other):
        ts = [y.t for y in ys]
        if not ts:
            return 0, 0
        lo, hi = from_other(min(ts)), from_other(max(ts))
        lo, hi = min(lo, hi) - p.jitter_s, max(lo, hi) + p.jitter_s
        inside = contra = 0
        for i, x in enumerate(xs):
            if not x.informative or not lo <= x.t <= hi:
                continue
            inside += 1
            if i in used:
                continue
            t = to_other(x.t)
            near = [y for y in ys if y.informative and abs(y.t - t) <= p.contra_window_s]
            if near and min(item_distance(x, y) for y in near) > p.contra_bits:
                contra += 1
        return inside, contra

    out.overlap_a, out.contradictions_a = side(a, b, used_a, lambda t: speed * t + offset,
                                               lambda t: (t - offset) / speed)
    out.overlap_b, out.contradictions_b = side(b, a, used_b, lambda t: (t - offset) / speed,
                                               lambda t: speed * t + offset)


def judge(al: Alignment, params: MatchParams = MatchParams()) -> bool:
    """A duplicate: enough aligned evidence, covering enough of one of the two media, and
    not contradicted where the two overlap."""
    return (al.evidence >= params.min_evidence and al.coverage >= params.min_coverage
            and al.contradiction <= params.max_contradiction)


__all__ = ["Alignment", "CORNERS", "Item", "MatchParams", "PrintParams", "SCALES", "align", "from_hex", "hamming", "hex64",
           "item_distance", "items_match", "judge", "keyframe_print"]
