"""Shots, keyframes and perceptual hashes from ONE decode of a video.

One pass over the decoded frames feeds everything the `scenes` stage writes:

* shot boundaries with their type and extent (media/transitions.py) from a small YUV 4:2:0
  copy of each frame (swscale does the downscale in C; 96 px wide) and, when the network
  runs, a 48x27 RGB copy made from that small frame for TransNetV2: cuts whose threshold
  follows the footage's contrast (dark footage keeps its cuts), flashes that are not cuts,
  dissolves, fades and wipes with the frames they span. A fade from black after a cut into
  black is one fade starting where the black begins; a fade through black (out, then in)
  is one fade whose new shot begins where the picture comes back. Each boundary names the
  detector that decided it (the cheap one, or TransNetV2 on the stretches routed to it).
* a representative keyframe per shot, chosen among evenly spaced candidate frames held by
  reference (no copy, no conversion) while the shot runs: the candidate nearest the shot's
  middle among those outside a transition with at least half the detail of the most
  detailed one (so not a black frame of a fade-in). A shot whose picture changes (a caption
  that comes and goes, a pan to something new) also gets up to ``extra_keyframes`` more,
  each clearly different from the others in coarse 8x8-block luma. Only chosen frames are
  converted, at full size up to ``keyframe_max_side`` on its long side, upright.
* the keyframe as a JPEG and its perceptual hash (imagehash pHash, 16 hex digits).

Times are seconds from the start of the media, from each frame's timestamp (pts x time_base
minus the container's start, so a picture that starts a second after the sound starts at
1.0, in step with the transcript), never frame_index / fps: variable frame rate video keeps
its real times. Keyframes are shown as a player shows them: stretched by the sample aspect
ratio (anamorphic video), turned by the display matrix, and one field of an interlaced frame
(no combing).
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
from .transitions import CHEAP_ID, TN_INPUT, Boundary, DetectParams, Detector, Feat, gpu_available, \
    load_transnet, transnet_id


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
    # 'auto': TransNetV2 on every frame on a GPU, on the ambiguous stretches on a CPU
    # ('routed'); 'cheap': never; 'neural': on every frame.
    mode: str = "auto"
    extra_keyframes: int = 4  # at most this many keyframes beyond the representative one
    extra_keyframe_gap_s: float = 1.0  # ... each this far from the others
    keyframe_change: float = 10.0  # ... and this different (mean |8x8-block luma|, 0-255)

    @property
    def detector(self) -> str:
        """The detector and its settings: the scenes stage's model id (logical, the same on
        every machine; 'auto' is recorded as such, the device it picked beside it)."""
        cheap = (f"{CHEAP_ID}(w={self.width},min={self.min_score:g},ratio={self.ratio:g},"
                 f"win={self.window},min_s={self.min_scene_s:g})")
        return cheap if self.mode == "cheap" else f"{cheap}+{transnet_id()}/{self.mode}"

    def resolved_mode(self) -> str:
        if self.mode == "auto":
            return "neural" if gpu_available() else "routed"
        return self.mode

    def detect_params(self) -> DetectParams:
        return DetectParams(min_score=self.min_score, ratio=self.ratio, window=self.window,
                            black_luma=self.black_luma, black_std=self.black_std, mode=self.resolved_mode())


@dataclass
class ExtraKeyframe:
    t: float
    frame: int
    jpeg: bytes
    width: int
    height: int


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
    transition: str = "start"  # how the shot begins: 'start' (the first), 'cut', 'dissolve', 'fade', 'wipe'
    transition_start_s: float | None = None  # time of the transition's first and last frame
    transition_end_s: float | None = None
    detector: str = CHEAP_ID  # which detector decided the boundary
    extra_keyframes: list[ExtraKeyframe] = field(default_factory=list)


@dataclass
class ScanStats:
    """What one scan did: the proof of one decode per video lives here."""

    decoder_opens: int = 0
    frames_decoded: int = 0
    rotation: int = 0
    width: int | None = None
    height: int | None = None
    duration_s: float = 0.0
    mode: str = ""  # the detector mode that ran ('cheap', 'routed' or 'neural')
    neural_frames: int = 0  # frames TransNetV2 was run on
    neural_windows: int = 0
    routed_stretches: int = 0


@dataclass
class _Frame:
    index: int
    t: float
    frame: av.VideoFrame | None  # held by reference only for every n-th frame
    score: float
    luma: float
    std: float
    y: np.ndarray  # the small luma plane
    black: bool = False
    in_transition: bool = False
    dur: float = 0.0

    def detail(self) -> float:
        if self.std < 0:
            self.std = float(self.y.std())
        return self.std


@dataclass
class _ShotState:
    start: _Frame
    cut_score: float
    boundary: Boundary | None = None
    stride: int = 1
    held: int = 0
    cands: list[_Frame] = field(default_factory=list)
    last: _Frame | None = None
    fallback: _Frame | None = None
    count: int = 0


def keyframe_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_keyframe(img: Image.Image, quality: int) -> tuple[bytes, str]:
    """JPEG bytes and pHash hex of an RGB image."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), str(imagehash.phash(img))


def _loader(params: ShotParams, model_loader):
    if params.mode == "cheap":
        return None
    if model_loader is not None:
        return model_loader
    return lambda: load_transnet("cuda" if gpu_available() else "cpu")


def scan_video(path: str, params: ShotParams = ShotParams(), stats: ScanStats | None = None,
               model_loader=None) -> Iterator[Shot]:
    """Decode ``path`` once and yield its shots in order, each with its keyframe(s).

    ``stats`` (filled in as the scan goes) counts decoder opens and decoded frames.
    ``model_loader`` returns the TransNetV2 model (default: loaded once per process, on the
    GPU when there is one); it is called only when a stretch is routed to the network.
    Raises MediaError when the video cannot be opened or decoding fails part-way.
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
        if container.start_time is not None:  # the media's start, which a late stream is after
            t0 = min(t0, container.start_time / av.time_base) if t0 is not None else container.start_time / av.time_base
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        sar = float(sar) if sar and sar > 0 else 1.0
        det_w = h = None
        scaler = VideoReformatter()  # one swscale context for the whole video
        prev_small = None
        prev_t = None
        step = float(1 / stream.average_rate) if stream.average_rate else 1 / 25
        fps = float(stream.average_rate) if stream.average_rate else 1 / step
        det = Detector(params.detect_params(), fps, _loader(params, model_loader))
        # Undecided frames wait up to BLOCK + lookahead frames: hold every n-th by reference
        # (keyframe candidates), so memory stays at about 24 full frames whatever the size.
        hold_every = max(1, (det.BLOCK + det.look) // 24)
        rgb_scaler = VideoReformatter() if det.needs_rgb else None
        pending: deque[_Frame] = deque()
        extents: list[Boundary] = []  # transitions whose frames are still being committed
        shot: _ShotState | None = None
        shots_done = 0
        last_held: list[_Frame | None] = [None]

        def encode(f: _Frame) -> tuple[Image.Image, bytes, str]:
            img = _upright(f.frame, params.keyframe_max_side, stats.rotation, sar)
            jpeg, ph = encode_keyframe(img, params.jpeg_quality)
            return img, jpeg, ph

        def finish(state: _ShotState, end_s: float) -> Shot:
            nonlocal shots_done
            best = _pick_keyframe(state, end_s)
            img, jpeg, ph = encode(best)
            extras = []
            for c in _extra_keyframes(state, best, params):
                eimg, ejpeg, _ = encode(c)
                extras.append(ExtraKeyframe(round(c.t, 6), c.index, ejpeg, eimg.width, eimg.height))
            b = state.boundary
            out = Shot(index=shots_done, start_s=round(state.start.t, 6), end_s=round(end_s, 6),
                       start_frame=state.start.index, frame_count=state.count,
                       cut_score=round(state.cut_score, 3), keyframe_s=round(best.t, 6),
                       keyframe_frame=best.index, keyframe_jpeg=jpeg, keyframe_width=img.width,
                       keyframe_height=img.height, phash=ph,
                       transition=b.kind if b else "start",
                       transition_start_s=round(b.start_s, 6) if b else None,
                       transition_end_s=round(b.end_s, 6) if b else None,
                       detector=b.detector if b else CHEAP_ID, extra_keyframes=extras)
            shots_done += 1
            return out

        def commit(f: _Frame, b: Boundary | None) -> Shot | None:
            """Add frame f to the current shot, or start a new one with it (b: a boundary
            the detector put at f; dropped when the current shot is shorter than min_scene_s)."""
            nonlocal shot
            done = None
            if b is not None:
                extents.append(b)
            cut = b is not None and shot is not None and f.t - shot.start.t >= params.min_scene_s
            if shot is None or cut:
                if shot is not None:
                    done = finish(shot, f.t)
                shot = _ShotState(start=f, cut_score=b.score if cut else 0.0, boundary=b if cut else None)
            while extents and extents[0].end < f.index:
                extents.pop(0)
            f.in_transition = any(e.start <= f.index <= e.end for e in extents)
            if f.frame is not None:
                f.detail()
                if shot.held % shot.stride == 0:
                    shot.cands.append(f)
                    if len(shot.cands) >= 2 * params.candidates:
                        shot.stride *= 2
                        shot.cands = shot.cands[::2]
                shot.held += 1
                shot.fallback = f
                last_held[0] = f
            elif shot.fallback is None and last_held[0] is not None:
                shot.fallback = last_held[0]  # a shot shorter than the holding stride (min_scene_s ~ 0)
            shot.last = f
            shot.count += 1
            return done

        def settle() -> Iterator[Shot]:
            while pending and pending[0].index < det.decided:
                f = pending.popleft()
                done = commit(f, det.boundaries.pop(f.index, None))
                if done is not None:
                    yield done

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
                small_vf = scaler.reformat(frame, width=det_w, height=h, format="yuv420p", interpolation="AREA")
                small = small_vf.to_ndarray()
                cur = small.astype(np.int16)
                score = float(np.abs(cur - prev_small).mean()) if prev_small is not None else 0.0
                y = small[:h]
                luma, std = float(y.mean()), float(y.std())
                rgb = None
                if rgb_scaler is not None:  # TransNetV2's 48x27 input, from the full frame (bilinear)
                    rgb = rgb_scaler.reformat(frame, width=TN_INPUT[1], height=TN_INPUT[0],
                                              format="rgb24").to_ndarray()
                held = frame if index % hold_every == 0 else None
                f = _Frame(index, t, held, score, luma, std, y)
                f.black = luma < params.black_luma and std < params.black_std
                f.dur = float(frame.duration * tb) if frame.duration and tb else step
                det.push(Feat(index, t, score, luma, std, cur, rgb, y))
                pending.append(f)
                prev_small, prev_t = cur, t
                index += 1
                stats.frames_decoded = index
                yield from settle()
        except av.error.FFmpegError as exc:
            raise MediaError(
                "corrupt" if index == 0 else "truncated",
                f"{name}: decoding failed after {index} frame(s) ({exc}): the video is damaged or cut short.",
            ) from None
        if index == 0:
            raise MediaError("corrupt", f"{name}: no video frame could be decoded.")
        det.finish()
        # No last shot shorter than min_scene_s: a boundary that close to the end is dropped
        # (the end is known only now; every earlier boundary had a longer stretch after it).
        for b in [b for b in det.boundaries.values() if prev_t - det.time_of(b.frame) < params.min_scene_s]:
            del det.boundaries[b.frame]
        yield from settle()
        stats.neural_frames, stats.neural_windows = det.neural_frames, det.neural_windows
        stats.routed_stretches, stats.mode = det.routed_stretches, det.mode
        end = shot.last.t + (shot.last.dur if index > 1 else step)
        stats.duration_s = end
        yield finish(shot, end)


def _pick_keyframe(state: _ShotState, end_s: float) -> _Frame:
    cands = state.cands or [state.fallback or state.start]
    most = max(c.std for c in cands)
    lit = [c for c in cands if c.std >= 0.5 * most and not c.black]
    lit = [c for c in lit if not c.in_transition] or lit or cands
    mid = (state.start.t + end_s) / 2
    return min(lit, key=lambda c: abs(c.t - mid))


def _blocks(y: np.ndarray) -> np.ndarray:
    h, w = y.shape[0] // 8 * 8, y.shape[1] // 8 * 8
    if not h or not w:
        return y.astype(np.float32)
    return y[:h, :w].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))


def _extra_keyframes(state: _ShotState, best: _Frame, params: ShotParams) -> list[_Frame]:
    """Candidates that show something the chosen keyframes do not: lit, outside a
    transition, ``extra_keyframe_gap_s`` from each chosen one and ``keyframe_change``
    different from each in coarse luma (a pan over the same texture stays below it)."""
    if params.extra_keyframes <= 0:
        return []
    chosen = [(best, _blocks(best.y))]
    out = []
    for c in sorted(state.cands, key=lambda c: c.t):
        if len(out) >= params.extra_keyframes:
            break
        if c is best or c.black or c.in_transition or c.frame is None:
            continue
        cb = _blocks(c.y)
        if all(abs(c.t - o.t) >= params.extra_keyframe_gap_s
               and float(np.abs(cb - ob).mean()) >= params.keyframe_change for o, ob in chosen):
            chosen.append((c, cb))
            out.append(c)
    return sorted(out, key=lambda c: c.t)


def _upright(frame: av.VideoFrame, max_side: int, rotation: int, sar: float = 1.0) -> Image.Image:
    w, h = keyframe_size(max(1, round(frame.width * sar)), frame.height, max_side)
    if frame.interlaced_frame and frame.height >= 4:
        # The top field alone, scaled back to full height: a woven frame combs on motion.
        rows = frame.reformat(width=w, height=frame.height, format="rgb24").to_ndarray()[0::2]
        arr = np.asarray(Image.fromarray(np.ascontiguousarray(rows)).resize((w, h), Image.Resampling.BILINEAR))
    else:
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
