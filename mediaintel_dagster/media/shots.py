"""Shots, keyframes and perceptual hashes from ONE decode of a video.

One pass over the decoded frames feeds everything the `scenes` stage writes:

* shot detection on a small YUV 4:4:4 copy of each frame (swscale does the downscale in C): the
  score of a frame is the mean absolute difference of its Y, U and V to the previous small frame (0-255), and
  a frame starts a new shot when its score is both above ``min_score`` and ``ratio`` times the
  mean score of its ``window`` neighbours on each side (an adaptive test: camera motion
  raises the neighbours too, a cut is a lone spike). A fade from black is a hard cut into a
  black frame followed by small, even steps, so it yields one cut where the black begins and
  none during the fade; a fade through black (out, then in) with no spike anywhere yields
  one cut where the picture comes back.
* a representative keyframe per shot, chosen among evenly spaced candidate frames held by
  reference (no copy, no conversion) while the shot runs: the candidate nearest the shot's
  middle among those with at least half the detail of the most detailed one (so not a
  black frame of a fade-in). Only the chosen frame is converted, at full size up to
  ``keyframe_max_side`` on its long side, turned upright by the stream's display matrix.
* the keyframe as a JPEG and its perceptual hash (imagehash pHash, 16 hex digits).

Times are seconds from the start of the video stream, from each frame's timestamp
(pts x time_base minus the stream's start), never frame_index / fps: variable frame rate
video keeps its real times.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
from av.video.reformatter import VideoReformatter
import imagehash
import numpy as np
from PIL import Image, ImageOps

from .errors import MediaError


@dataclass(frozen=True)
class ShotParams:
    """Detection and keyframe settings (the defaults are what the benchmark measured)."""

    width: int = 96  # detection frames are this wide (height follows the aspect ratio)
    min_score: float = 5.0  # a cut's mean absolute YUV difference to the previous frame (0-255)
    ratio: float = 3.0  # ... and this many times the mean score of its neighbours
    window: int = 2  # neighbours on each side for that mean
    min_scene_s: float = 0.5  # no shot shorter than this
    black_luma: float = 18.0  # a frame darker than this (mean luma) with ...
    black_std: float = 10.0  # ... less detail than this is black (fades)
    min_black_frames: int = 3  # a fade through black holds black at least this long
    keyframe_max_side: int = 1280  # keyframe JPEGs keep full size up to this long side
    jpeg_quality: int = 90
    candidates: int = 8  # keyframe candidates held per shot: between this and twice this
    threads: bool = True  # let FFmpeg decode with frame/slice threads

    @property
    def detector(self) -> str:
        return (f"adaptive-yuvdiff(w={self.width},min={self.min_score:g},ratio={self.ratio:g},"
                f"win={self.window},min_s={self.min_scene_s:g})")


@dataclass
class Shot:
    index: int
    start_s: float
    end_s: float
    start_frame: int
    frame_count: int
    cut_score: float  # the score of the frame that started this shot (0 for the first)
    keyframe_s: float
    keyframe_frame: int
    keyframe_jpeg: bytes
    keyframe_width: int
    keyframe_height: int
    phash: str


@dataclass
class ScanStats:
    """What one scan did: the proof of one decode per video lives here."""

    decoder_opens: int = 0
    frames_decoded: int = 0
    rotation: int = 0
    width: int | None = None
    height: int | None = None
    duration_s: float = 0.0


@dataclass
class _Frame:
    index: int
    t: float
    frame: av.VideoFrame
    score: float
    luma: float
    std: float  # -1 until needed
    y: np.ndarray  # the small luma plane
    black: bool = False

    def detail(self) -> float:
        if self.std < 0:
            self.std = float(self.y.std())
        return self.std


@dataclass
class _ShotState:
    start: _Frame
    cut_score: float
    stride: int = 1
    cands: list[_Frame] = field(default_factory=list)
    last: _Frame | None = None
    count: int = 0


def keyframe_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_keyframe(img: Image.Image, quality: int) -> tuple[bytes, str]:
    """JPEG bytes and pHash hex of an RGB image."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), str(imagehash.phash(img))


def scan_video(path: str, params: ShotParams = ShotParams(), stats: ScanStats | None = None) -> Iterator[Shot]:
    """Decode ``path`` once and yield its shots in order, each with its keyframe.

    ``stats`` (filled in as the scan goes) counts decoder opens and decoded frames. Raises
    MediaError when the video cannot be opened or decoding fails part-way.
    """
    stats = stats if stats is not None else ScanStats()
    name = str(path).rsplit("/", 1)[-1]
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError("unreadable", f"{name}: FFmpeg cannot open it for decoding ({exc}).") from None
    stats.decoder_opens += 1
    with container:
        if not container.streams.video:
            raise MediaError("not_media", f"{name} has no video stream to cut into scenes.")
        stream = container.streams.video[0]
        if params.threads:
            stream.thread_type = "AUTO"
        tb = stream.time_base
        t0 = float(stream.start_time * tb) if stream.start_time is not None and tb else None
        det_w = h = None
        scaler = VideoReformatter()  # one swscale context for the whole video
        prev_small = None
        prev_t = None
        step = float(1 / stream.average_rate) if stream.average_rate else 1 / 25
        scores: list[float] = []
        pending: deque[_Frame] = deque()
        shot: _ShotState | None = None
        shots_done = 0
        seen_content = False  # a non-black frame was committed (fades through black need one)
        black_run_start: _Frame | None = None

        def finish(state: _ShotState, end_s: float) -> Shot:
            nonlocal shots_done
            best = _pick_keyframe(state, end_s)
            img = _upright(best.frame, params.keyframe_max_side, stats.rotation)
            jpeg, ph = encode_keyframe(img, params.jpeg_quality)
            out = Shot(index=shots_done, start_s=round(state.start.t, 6), end_s=round(end_s, 6),
                       start_frame=state.start.index, frame_count=state.count,
                       cut_score=round(state.cut_score, 3), keyframe_s=round(best.t, 6),
                       keyframe_frame=best.index, keyframe_jpeg=jpeg, keyframe_width=img.width,
                       keyframe_height=img.height, phash=ph)
            shots_done += 1
            return out

        def commit(f: _Frame, cut: bool) -> Shot | None:
            """Add frame f to the current shot, or start a new one with it."""
            nonlocal shot, seen_content, black_run_start
            done = None
            if shot is not None and not cut and not f.black and black_run_start is not None:
                # The picture comes back after black that began inside this shot, after
                # content, with no spike anywhere: a fade through black.
                # A black run of a frame or two is a flash or a dropout, not a fade.
                if (seen_content and black_run_start.index > shot.start.index
                        and f.index - black_run_start.index >= params.min_black_frames
                        and f.t - shot.start.t >= params.min_scene_s):
                    cut = True
            if shot is None or cut:
                if shot is not None:
                    done = finish(shot, f.t)
                shot = _ShotState(start=f, cut_score=f.score if shot is not None else 0.0)
            if f.black:
                if black_run_start is None:
                    black_run_start = f
            else:
                black_run_start = None
                seen_content = True
            k = f.index - shot.start.index
            if k % shot.stride == 0:
                f.detail()
                shot.cands.append(f)
                if len(shot.cands) >= 2 * params.candidates:
                    shot.stride *= 2
                    shot.cands = [c for c in shot.cands if (c.index - shot.start.index) % shot.stride == 0]
            shot.last = f
            shot.count += 1
            return done

        def decide(j: int) -> bool:
            """Is pending frame j (global index) the first frame of a new shot?"""
            s = scores[j]
            if j == 0 or s < params.min_score or shot is None:
                return False
            if pending[0].t - shot.start.t < params.min_scene_s:
                return False
            lo, hi = max(1, j - params.window), min(len(scores), j + params.window + 1)
            neigh = [scores[i] for i in range(lo, hi) if i != j]
            base = sum(neigh) / len(neigh) if neigh else 0.0
            return s >= params.ratio * max(base, 1.0)

        index = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and tb:
                    t = float(frame.pts * tb)
                    if t0 is None:
                        t0 = t
                    t -= t0
                else:  # no timestamp: one nominal frame after the previous one
                    t = (prev_t + step) if prev_t is not None else 0.0
                if prev_t is not None and t <= prev_t:
                    t = prev_t + 1e-6  # keep times increasing even with broken timestamps
                if det_w is None:
                    stats.rotation = int(frame.rotation or 0)
                    stats.width, stats.height = frame.width, frame.height
                    # swscale's yuv420p needs even sides: an odd height (9:16 phone video at
                    # 96 px wide, PAL, 2.35:1) failed the whole video before.
                    det_w = max(2, min(params.width, frame.width) // 2 * 2)
                    h = max(2, round(frame.height * det_w / frame.width / 2) * 2)
                small = scaler.reformat(frame, width=det_w, height=h, format="yuv420p",
                                        interpolation="AREA").to_ndarray()
                cur = small.astype(np.int16)
                score = float(np.abs(cur - prev_small).mean()) if prev_small is not None else 0.0
                y = small[:h]
                luma = float(y.mean())
                # Detail (std of luma) is needed only for dark frames and keyframe candidates.
                std = float(y.std()) if luma < params.black_luma else -1.0
                f = _Frame(index, t, frame, score, luma, std, y)
                f.black = 0 <= std < params.black_std
                scores.append(score)
                pending.append(f)
                prev_small, prev_t = cur, t
                index += 1
                stats.frames_decoded = index
                if len(pending) > params.window:
                    j = pending[0].index
                    done = commit(pending[0], decide(j))
                    pending.popleft()
                    if done is not None:
                        yield done
        except av.error.FFmpegError as exc:
            raise MediaError(
                "corrupt" if index == 0 else "truncated",
                f"{name}: decoding failed after {index} frame(s) ({exc}): the video is damaged or cut short.",
            ) from None
        if index == 0:
            raise MediaError("corrupt", f"{name}: no video frame could be decoded.")
        while pending:
            j = pending[0].index
            done = commit(pending[0], decide(j))
            pending.popleft()
            if done is not None:
                yield done
        last_dur = step
        if len(scores) > 1 and shot is not None and shot.last is not None:
            last_dur = _last_duration(shot.last.frame, tb, step)
        end = shot.last.t + last_dur
        stats.duration_s = end
        yield finish(shot, end)


def _last_duration(frame: av.VideoFrame, tb, step: float) -> float:
    if frame.duration and tb:
        return float(frame.duration * tb)
    return step


def _pick_keyframe(state: _ShotState, end_s: float) -> _Frame:
    cands = state.cands or [state.start]
    most = max(c.std for c in cands)
    lit = [c for c in cands if c.std >= 0.5 * most and not c.black] or cands
    mid = (state.start.t + end_s) / 2
    return min(lit, key=lambda c: abs(c.t - mid))


def _upright(frame: av.VideoFrame, max_side: int, rotation: int) -> Image.Image:
    w, h = keyframe_size(frame.width, frame.height, max_side)
    arr = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
    turns = round(rotation / 90) % 4  # counter-clockwise quarter turns the display matrix asks for
    if turns:
        arr = np.ascontiguousarray(np.rot90(arr, k=turns))
    return Image.fromarray(arr)


def image_keyframe(path: str, params: ShotParams = ShotParams()) -> Shot:
    """An image is one scene covering 0..0 whose keyframe is the image itself (upright by
    its EXIF orientation, at most ``keyframe_max_side`` on its long side)."""
    name = str(path).rsplit("/", 1)[-1]
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            img = im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError("corrupt", f"{name}: the image cannot be decoded ({exc}).") from None
    if max(img.size) > params.keyframe_max_side:
        img = img.resize(keyframe_size(img.width, img.height, params.keyframe_max_side), Image.Resampling.LANCZOS)
    jpeg, ph = encode_keyframe(img, params.jpeg_quality)
    return Shot(index=0, start_s=0.0, end_s=0.0, start_frame=0, frame_count=1, cut_score=0.0, keyframe_s=0.0,
                keyframe_frame=0, keyframe_jpeg=jpeg, keyframe_width=img.width, keyframe_height=img.height,
                phash=ph)
