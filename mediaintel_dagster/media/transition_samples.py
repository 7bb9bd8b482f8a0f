"""Generated videos with known transitions: cuts, dissolves, fades (through black) and wipes
between shots, plus flashes, fast camera motion and dark footage (tests/test_transitions.py
and bench/transitions.py). Shots are drawn by media/samples.py's renderer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .samples import Shot, _ShotRenderer, _pingpong, _style_canvas


@dataclass(frozen=True)
class Join:
    """How the next shot begins: 'cut', 'dissolve', 'fade' (out to black, then in) or 'wipe'
    (left to right), over ``duration_s`` (0 for a cut)."""

    kind: str = "cut"
    duration_s: float = 0.0


class _FastPan:
    """A shot whose camera sweeps fast (``speed`` px/frame) across a wide texture."""

    def __init__(self, shot: Shot, size, seed: int, speed: int):
        self.width, self.height = size
        self.span = 6 * self.width
        self.canvas = _style_canvas(shot.style, shot.color, self.width + self.span, self.height, seed)
        self.speed = speed

    def frame(self, k: int) -> np.ndarray:
        dx = _pingpong(k * self.speed, self.span)
        dy = _pingpong(k * 3, 60)
        return np.array(self.canvas[dy:dy + self.height, dx:dx + self.width])


def make_transition_video(path, shots: Sequence[Shot], joins: Sequence[Join], *, size=(192, 108), fps: int = 25,
                          brightness: float = 1.0, flashes: Sequence[tuple[int, int]] = (),
                          fast: Sequence[int] = (), speed: int = 12, crf: int = 20) -> dict:
    """Write an H.264 video of ``shots`` joined by ``joins`` (one fewer than the shots).

    ``flashes``: (first frame, frames) of bright flashes (not cuts); ``fast``: indexes of shots
    filmed with a fast pan; ``brightness`` scales every frame (0.12: dark footage). Returns
    ``{"path", "fps", "frame_count", "transitions"}``; each transition is a dict with kind,
    ``frame`` (first frame of the new shot), ``start``/``end`` (first/last frame that is
    neither shot alone; both ``frame`` for a cut) and the same as times (``*_s``)."""
    if len(joins) != len(shots) - 1:
        raise ValueError("one join between each pair of shots")
    width, height = size
    lens = [max(1, int(round(s.duration_s * fps))) for s in shots]
    tlen = [int(round(j.duration_s * fps)) if j.kind != "cut" else 0 for j in joins]
    rend = [(_FastPan(s, size, 2000 + i, speed) if i in fast else _ShotRenderer(s, size, fps, seed=1000 + i))
            for i, s in enumerate(shots)]
    frames: list[np.ndarray] = []
    truth = []
    for i in range(len(shots)):
        # Shot i's own frames (the frames after the previous transition).
        k0 = tlen[i - 1] if i else 0
        for k in range(k0, lens[i]):
            frames.append(rend[i].frame(k))
        if i == len(shots) - 1:
            break
        j, d = joins[i], tlen[i]
        start = len(frames)
        if j.kind == "cut" or d == 0:
            truth.append({"kind": "cut", "frame": start, "start": start, "end": start})
            continue
        half = max(1, d // 2)
        for m in range(d):
            a = rend[i].frame(lens[i] + m).astype(np.float32)
            b = rend[i + 1].frame(m).astype(np.float32)
            if j.kind == "dissolve":
                al = (m + 1) / (d + 1)
                img = a * (1 - al) + b * al
            elif j.kind == "fade":
                img = a * (1 - (m + 1) / half) if m < half else b * ((m - half + 1) / (d - half))
                img = np.clip(img, 0, None)
            elif j.kind == "wipe":
                x = int(round(width * (m + 1) / (d + 1)))
                img = a.copy()
                img[:, :x] = b[:, :x]
            else:
                raise ValueError(f"unknown join {j.kind!r}")
            frames.append(np.clip(img, 0, 255).astype(np.uint8))
        boundary = start + (half if j.kind == "fade" else d // 2)
        truth.append({"kind": j.kind, "frame": boundary, "start": start, "end": start + d - 1})
    for f0, n in flashes:
        for i in range(f0, min(len(frames), f0 + n)):
            frames[i] = (frames[i].astype(np.float32) * 0.3 + 0.7 * 255).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tb = Fraction(1, fps)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.time_base = tb
        s.codec_context.time_base = tb
        s.options = {"preset": "veryfast", "crf": str(crf)}
        for i, rgb in enumerate(frames):
            if brightness != 1.0:
                rgb = (rgb.astype(np.float32) * brightness).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = tb
            out.mux(s.encode(frame))
        out.mux(s.encode(None))
    for t in truth:
        t.update(frame_s=t["frame"] / fps, start_s=t["start"] / fps, end_s=t["end"] / fps)
    return {"path": path, "fps": fps, "frame_count": len(frames), "transitions": truth}
