"""Generated videos with known transitions: cuts, dissolves, fades (through black) and wipes
between shots, plus flashes, fast camera motion and dark footage (tests/test_transitions.py
and bench/transitions.py). Shots are drawn by media/samples.py's renderer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .samples import Shot, _AudioFeeder, _ShotRenderer, _add_audio_stream, _pingpong, _style_canvas, speech_track


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
                          fast: Sequence[int] = (), speed: int = 12, crf: int = 20,
                          speech: str | None = None, voice: str = "en-us", rate_wpm: int = 150,
                          audio_rate: int = 44100) -> dict:
    """Write an H.264 video of ``shots`` joined by ``joins`` (one fewer than the shots).

    ``flashes``: (first frame, frames) of bright flashes (not cuts); ``fast``: indexes of shots
    filmed with a fast pan; ``brightness`` scales every frame (0.12: dark footage); ``speech``:
    a mono AAC track speaking it (padded with silence; the last shot is extended if the speech
    is longer). Frames are drawn and encoded one at a time, so a long video costs no more
    memory than a short one. Returns ``{"path", "fps", "frame_count", "duration_s",
    "has_audio", "transitions"}``; each transition is a dict with kind, ``frame`` (first frame
    of the new shot), ``start``/``end`` (first/last frame that is neither shot alone; both
    ``frame`` for a cut) and the same as times (``*_s``)."""
    if len(joins) != len(shots) - 1:
        raise ValueError("one join between each pair of shots")
    width, height = size
    lens = [max(1, int(round(s.duration_s * fps))) for s in shots]
    tlen = [int(round(j.duration_s * fps)) if j.kind != "cut" else 0 for j in joins]
    audio = speech_track(speech, voice=voice, rate_wpm=rate_wpm, audio_rate=audio_rate) if speech else None
    if audio is not None:
        # Shot i contributes lens[i] - tlen[i-1] frames of its own plus the transition after it.
        total = sum(lens[i] - (tlen[i - 1] if i else 0) + (tlen[i] if i < len(joins) else 0) for i in range(len(shots)))
        needed = math.ceil(audio.size * fps / audio_rate)
        lens[-1] += max(0, needed - total)
    truth = []
    pos = 0
    for i in range(len(shots) - 1):
        pos += lens[i] - (tlen[i - 1] if i else 0)
        j, d = joins[i], tlen[i]
        if j.kind == "cut" or d == 0:
            truth.append({"kind": "cut", "frame": pos, "start": pos, "end": pos})
            continue
        half = max(1, d // 2)
        truth.append({"kind": j.kind, "frame": pos + (half if j.kind == "fade" else d // 2),
                      "start": pos, "end": pos + d - 1})
        pos += d
    frame_count = pos + lens[-1] - (tlen[-1] if tlen else 0)
    flash_frames = {i for f0, n in flashes for i in range(f0, f0 + n)}

    def frames():
        rend = [None] * len(shots)

        def renderer(i):
            if rend[i] is None:
                rend[i] = (_FastPan(shots[i], size, 2000 + i, speed) if i in fast
                           else _ShotRenderer(shots[i], size, fps, seed=1000 + i))
            return rend[i]

        for i in range(len(shots)):
            for k in range(tlen[i - 1] if i else 0, lens[i]):  # shot i's own frames
                yield renderer(i).frame(k)
            if i == len(shots) - 1:
                break
            j, d = joins[i], tlen[i]
            half = max(1, d // 2)
            for m in range(0 if j.kind == "cut" else d):
                a = renderer(i).frame(lens[i] + m).astype(np.float32)
                b = renderer(i + 1).frame(m).astype(np.float32)
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
                yield np.clip(img, 0, 255).astype(np.uint8)
            rend[i] = None  # done with shot i: free its canvas

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tb = Fraction(1, fps)
    if audio is not None:
        n_audio = frame_count * audio_rate // fps
        audio = np.concatenate([audio, np.zeros(max(0, n_audio - audio.size), dtype=np.int16)])[:n_audio]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.time_base = tb
        s.codec_context.time_base = tb
        s.options = {"preset": "veryfast", "crf": str(crf)}
        feeder = None
        if audio is not None:
            astream = _add_audio_stream(out, "aac", "fltp", audio_rate, 96000)
            astream.codec_context.open()
            feeder = _AudioFeeder(out, astream, audio, "fltp", audio_rate)
        n = 0
        for i, rgb in enumerate(frames()):
            if i in flash_frames:
                rgb = (rgb.astype(np.float32) * 0.3 + 0.7 * 255).astype(np.uint8)
            if brightness != 1.0:
                rgb = (rgb.astype(np.float32) * brightness).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = tb
            out.mux(s.encode(frame))
            if feeder is not None:
                feeder.feed_until((i + 1) * audio_rate // fps)
            n += 1
        out.mux(s.encode(None))
        if feeder is not None:
            feeder.finish()
    assert n == frame_count, (n, frame_count)
    for t in truth:
        t.update(frame_s=t["frame"] / fps, start_s=t["start"] / fps, end_s=t["end"] / fps)
    return {"path": path, "fps": fps, "frame_count": frame_count, "duration_s": frame_count / fps,
            "has_audio": audio is not None, "transitions": truth}
