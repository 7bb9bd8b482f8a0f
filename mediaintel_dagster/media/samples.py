"""Real sample media, generated with pip-installed tools only.

Everything here runs on what the wheels bring: PyAV (bundled FFmpeg with libx264,
aac, libmp3lame), Pillow (FreeType font via ``ImageFont.load_default(size=...)``),
numpy, and ``espeakng-loader`` (libespeak-ng plus its data, driven through ctypes).
No system ffmpeg or espeak is needed.

Public API:

* :func:`synthesize_speech` - text to mono int16 PCM with espeak-ng.
* :func:`make_image` - an image with large, OCR-friendly text.
* :func:`make_audio` - a speech file (.wav / .mp3 / .m4a / .flac).
* :class:`Shot` and :func:`make_video` - an H.264 video of visually distinct shots
  joined by hard cuts, optionally with an AAC narration track.
* :func:`make_demo_set` - the demo's sample media.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "Shot",
    "make_audio",
    "make_demo_set",
    "make_image",
    "make_video",
    "synthesize_speech",
]

# --------------------------------------------------------------------------------------
# Speech: espeak-ng through ctypes
# --------------------------------------------------------------------------------------

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_espeakINITIALIZE_DONT_EXIT = 0x8000  # return errors instead of calling exit()
_espeakCHARS_UTF8 = 1
_espeakENDPAUSE = 0x1000
_POS_CHARACTER = 1
_espeakRATE = 1
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """One initialised libespeak-ng in synchronous mode (no background threads).

    The library keeps global state, so every call goes through ``_ESPEAK_LOCK``.
    """

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text
            ctypes.c_size_t,  # size
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position
            ctypes.c_uint,  # flags
            ctypes.POINTER(ctypes.c_uint),  # unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int

        data_path = espeakng_loader.get_data_path()  # .../espeak-ng-data
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 500, data_path.encode(), _espeakINITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}) with data at {data_path}")
        self.lib = lib
        self.sample_rate = int(rate)
        self._chunks: list[bytes] = []
        # Keep a reference: ctypes callbacks must outlive their use by C code.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None
        self._rate: int | None = None

    def _on_audio(self, wav, numsamples, events) -> int:  # called from espeak_Synth
        if wav and numsamples > 0:
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0  # 0 = continue synthesis

    def synth(self, text: str, voice: str, rate_wpm: int) -> np.ndarray:
        if voice != self._voice:
            err = self.lib.espeak_SetVoiceByName(voice.encode())
            if err != _EE_OK:
                raise ValueError(f"espeak-ng has no voice {voice!r} (error {err})")
            self._voice = voice
            self._rate = None  # a voice change resets parameters
        if rate_wpm != self._rate:
            self.lib.espeak_SetParameter(_espeakRATE, int(rate_wpm), 0)
            self._rate = rate_wpm
        data = text.encode("utf-8")
        self._chunks = []
        err = self.lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _espeakCHARS_UTF8 | _espeakENDPAUSE, None, None
        )
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with error {err}")
        self.lib.espeak_Synchronize()
        pcm = np.frombuffer(b"".join(self._chunks), dtype=np.int16).copy()
        self._chunks = []
        return pcm


_ESPEAK: _Espeak | None = None
_ESPEAK_LOCK = threading.Lock()


def _reset_after_fork() -> None:
    # A lock held by another thread at fork time would stay locked forever in the
    # child; the copied engine state itself is usable (synchronous mode has no threads).
    global _ESPEAK_LOCK
    _ESPEAK_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def synthesize_speech(text: str, voice: str = "en-us", rate_wpm: int = 150) -> tuple[np.ndarray, int]:
    """Speak ``text`` with espeak-ng; return (mono int16 samples, sample rate).

    The engine is initialised once per process and serialised with a module lock,
    so repeated and concurrent calls are safe. espeak-ng's native rate is 22050 Hz.
    """
    global _ESPEAK
    with _ESPEAK_LOCK:
        if _ESPEAK is None:
            _ESPEAK = _Espeak()
        if not text.strip():
            return np.zeros(0, dtype=np.int16), _ESPEAK.sample_rate
        return _ESPEAK.synth(text, voice, rate_wpm), _ESPEAK.sample_rate


def _resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited (FFT) resampling of mono int16 PCM; returns int16."""
    if src_rate == dst_rate or pcm.size == 0:
        return pcm.astype(np.int16, copy=True)
    n_in = pcm.size
    n_out = int(round(n_in * dst_rate / src_rate))
    spectrum = np.fft.rfft(pcm.astype(np.float64))
    n_bins = n_out // 2 + 1
    if n_bins <= spectrum.size:
        spectrum = spectrum[:n_bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(n_bins - spectrum.size, dtype=spectrum.dtype)])
    out = np.fft.irfft(spectrum, n_out) * (n_out / n_in)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def speech_track(speech: str | None, *, voice: str = "en-us", rate_wpm: int = 150,
                 audio_rate: int = 44100) -> np.ndarray | None:
    """``speech`` spoken by espeak-ng as mono int16 at ``audio_rate``; None for no text."""
    if not speech or not speech.strip():
        return None
    pcm, rate = synthesize_speech(speech, voice=voice, rate_wpm=rate_wpm)
    return _resample(pcm, rate, audio_rate)


# --------------------------------------------------------------------------------------
# Text rendering helpers
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit_font(text: str, max_w: int, max_h: int, start: int, stroke_ratio: float):
    """Largest font (<= start) whose rendering of ``text`` fits in max_w x max_h."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    size = max(8, int(start))
    while True:
        font = _font(size)
        stroke = max(1, round(size * stroke_ratio))
        box = probe.multiline_textbbox((0, 0), text, font=font, stroke_width=stroke, align="center")
        w, h = box[2] - box[0], box[3] - box[1]
        if (w <= max_w and h <= max_h) or size <= 8:
            return font, stroke, box
        size = max(8, int(size * min(0.92, max_w / max(w, 1), max_h / max(h, 1))))


def _contrast_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    return (20, 20, 20) if (0.299 * r + 0.587 * g + 0.114 * b) > 140 else (255, 255, 255)


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def make_image(
    path,
    text: str,
    size=(640, 360),
    background=(30, 60, 120),
    *,
    color: tuple[int, int, int] | None = None,
    font_size: int | None = None,
    quality: int = 92,
) -> Path:
    """Write an image (format by suffix: .png, .jpg/.jpeg, .webp) with ``text`` drawn
    large, centred and bold-ish on a plain background so OCR reads it easily.
    ``text`` may contain newlines. Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".png", ".jpg", ".jpeg", ".webp"}:
        raise ValueError(f"unsupported image suffix {suffix!r} (use .png, .jpg or .webp)")
    width, height = int(size[0]), int(size[1])
    background = tuple(int(c) for c in background)
    fill = tuple(color) if color is not None else _contrast_color(background)

    img = Image.new("RGB", (width, height), background)
    if text.strip():
        draw = ImageDraw.Draw(img)
        lines = max(1, text.count("\n") + 1)
        start = font_size or min(int(height * 0.6 / lines), int(height * 0.3))
        # Stroke in the fill colour thickens the regular default face into a bold one.
        font, stroke, box = _fit_font(text, int(width * 0.9), int(height * 0.85), start, 1 / 30)
        w, h = box[2] - box[0], box[3] - box[1]
        origin = ((width - w) / 2 - box[0], (height - h) / 2 - box[1])
        draw.multiline_text(
            origin, text, font=font, fill=fill, align="center", stroke_width=stroke, stroke_fill=fill
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_kwargs = {"quality": quality} if suffix in {".jpg", ".jpeg", ".webp"} else {}
    img.save(path, **save_kwargs)
    return path


# --------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------


def _mp3_encoder() -> str:
    for name in ("libmp3lame", "mp3"):
        try:
            return av.codec.Codec(name, "w").name
        except Exception:  # noqa: BLE001 - codec missing from this FFmpeg build
            continue
    raise RuntimeError("this PyAV build has no MP3 encoder")


# suffix -> (encoder, sample format, bit rate or None)
def _audio_codec_for(suffix: str) -> tuple[str, str, int | None]:
    if suffix == ".wav":
        return "pcm_s16le", "s16", None
    if suffix == ".flac":
        return "flac", "s16", None
    if suffix == ".mp3":
        return _mp3_encoder(), "s16p", 64000
    if suffix in {".m4a", ".aac", ".mp4"}:
        return "aac", "fltp", 96000
    raise ValueError(f"unsupported audio suffix {suffix!r} (use .wav, .mp3, .m4a or .flac)")


def _audio_frame(pcm: np.ndarray, fmt: str, rate: int, pts: int) -> av.AudioFrame:
    if fmt in ("s16", "s16p"):
        arr = pcm.astype(np.int16, copy=False).reshape(1, -1)
    elif fmt in ("flt", "fltp"):
        arr = (pcm.astype(np.float32) / 32768.0).reshape(1, -1)
    else:  # pragma: no cover - we only ask for the formats above
        raise ValueError(fmt)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout="mono")
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = Fraction(1, rate)
    return frame


def _add_audio_stream(container, codec: str, fmt: str, rate: int, bit_rate: int | None):
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono"
    stream.format = fmt
    stream.time_base = Fraction(1, rate)
    if bit_rate:
        stream.bit_rate = bit_rate
    return stream


class _AudioFeeder:
    """Encodes a mono int16 signal in chunks of the encoder's frame size, with exact pts."""

    def __init__(self, container, stream, pcm: np.ndarray, fmt: str, rate: int) -> None:
        self.container, self.stream, self.pcm, self.fmt, self.rate = container, stream, pcm, fmt, rate
        self.pos = 0
        frame_size = stream.codec_context.frame_size
        self.chunk = frame_size if frame_size and frame_size > 0 else 1024

    def feed_until(self, sample_index: int) -> None:
        end = min(sample_index, self.pcm.size)
        while self.pos < end:
            n = min(self.chunk, self.pcm.size - self.pos)
            frame = _audio_frame(self.pcm[self.pos : self.pos + n], self.fmt, self.rate, self.pos)
            self.container.mux(self.stream.encode(frame))
            self.pos += n
            if self.pos == self.pcm.size:
                break

    def finish(self) -> None:
        self.feed_until(self.pcm.size)
        self.container.mux(self.stream.encode(None))


def make_audio(
    path,
    text: str,
    *,
    sample_rate: int = 16000,
    silence_s: float = 0.5,
    voice: str = "en-us",
    rate_wpm: int = 150,
) -> Path:
    """Write ``text`` spoken by espeak-ng, with ``silence_s`` of digital silence before
    and after. Container/codec by suffix: .wav (pcm_s16le), .mp3 (libmp3lame),
    .m4a (aac), .flac (flac). Mono at ``sample_rate``. Returns the path."""
    path = Path(path)
    codec, fmt, bit_rate = _audio_codec_for(path.suffix.lower())
    pcm, rate = synthesize_speech(text, voice=voice, rate_wpm=rate_wpm)
    speech = _resample(pcm, rate, sample_rate)
    pad = np.zeros(int(round(silence_s * sample_rate)), dtype=np.int16)
    signal = np.concatenate([pad, speech, pad])
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = _add_audio_stream(container, codec, fmt, sample_rate, bit_rate)
        stream.codec_context.open()  # so frame_size is known before the first frame
        feeder = _AudioFeeder(container, stream, signal, fmt, sample_rate)
        feeder.finish()
    return path


# --------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------


@dataclass
class Shot:
    """One shot of a generated video."""

    duration_s: float
    text: str | None = None  # burned-in caption, big legible letters
    # "gradient", "checker", "noise", "circles", "stripes", "bars", "solid"
    style: str = "gradient"
    color: tuple[int, int, int] = (200, 40, 40)
    fade_in_s: float = 0.0  # fade from black at the start of the shot
    static: bool = False  # True: no motion at all within the shot


STYLES = ("gradient", "checker", "noise", "circles", "stripes", "bars", "solid")
_MARGIN = 64  # patterns are drawn on a canvas this much larger and panned across


def _pingpong(t: int, span: int) -> int:
    if span <= 0:
        return 0
    period = 2 * span
    t %= period
    return t if t <= span else period - t


def _mix(a: np.ndarray, c1, c2) -> np.ndarray:
    """a in [0, 1] (HxW) -> HxWx3 float blend between colours c1 (a=0) and c2 (a=1)."""
    c1 = np.asarray(c1, dtype=np.float32)
    c2 = np.asarray(c2, dtype=np.float32)
    return c1 + a[..., None].astype(np.float32) * (c2 - c1)


def _style_canvas(style: str, color, width: int, height: int, seed: int) -> np.ndarray:
    """A (height+M) x (width+M) x 3 uint8 canvas for a style; frames are windows of it."""
    h, w = height + _MARGIN, width + _MARGIN
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    color = np.asarray(color, dtype=np.float32)
    if style == "gradient":
        a = np.clip(0.75 * xx / w + 0.25 * yy / h, 0.0, 1.0)
        img = _mix(a, color, np.roll(color, 1))  # e.g. orange -> teal
    elif style == "checker":
        a = ((yy // 40 + xx // 40) % 2).astype(np.float32)
        img = _mix(a, color, (235, 235, 235))
    elif style == "noise":
        rng = np.random.default_rng(seed)
        block = 16
        coarse = rng.integers(0, 256, size=(h // block + 1, w // block + 1, 3)).astype(np.float32)
        noise = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:h, :w]
        img = 0.55 * noise + 0.45 * color
    elif style == "circles":
        r = np.hypot(xx - w / 2, yy - h / 2)
        a = ((r // 22) % 2).astype(np.float32)
        img = _mix(a, (15, 15, 25), color)
    elif style == "stripes":
        a = (((xx + yy) // 28) % 2).astype(np.float32)
        img = _mix(a, (250, 250, 250), color * 0.8)
    elif style == "bars":
        palette = np.array(
            [(235, 235, 235), (235, 235, 16), (16, 235, 235), (16, 235, 16),
             (235, 16, 235), (235, 16, 16), (16, 16, 235), (16, 16, 16)],
            dtype=np.float32,
        )
        idx = np.minimum((xx * len(palette) / w).astype(np.int64), len(palette) - 1)
        img = palette[idx]
        img[int(h * 0.75) :] = color  # colour band at the bottom
    elif style == "solid":
        img = np.broadcast_to(color, (h, w, 3)).astype(np.float32)
    else:
        raise ValueError(f"unknown shot style {style!r}; choose from {STYLES}")
    return np.clip(img, 0, 255).astype(np.uint8)


class _ShotRenderer:
    """Draws the frames of one shot: panned pattern, optional moving square, caption, fade."""

    def __init__(self, shot: Shot, size: tuple[int, int], fps: int, seed: int) -> None:
        self.shot = shot
        self.width, self.height = size
        self.canvas = _style_canvas(shot.style, shot.color, self.width, self.height, seed)
        self.fade_frames = int(round(max(0.0, shot.fade_in_s) * fps))
        self.caption = self._render_caption(shot.text) if shot.text else None
        # A moving square gives flat shots motion (and keeps every non-static shot "alive").
        self.square = max(16, self.height // 6)
        c = np.asarray(shot.color, dtype=np.int32)
        self.square_color = np.clip(255 - c, 40, 255).astype(np.uint8) if shot.style == "solid" else None

    def _render_caption(self, text: str):
        w, h = self.width, self.height
        overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        lines = text.count("\n") + 1
        font, stroke, box = _fit_font(
            text, int(w * 0.86), int(h * 0.34), min(int(h * 0.15), int(h * 0.3 / lines)), 1 / 16
        )
        tw, th = box[2] - box[0], box[3] - box[1]
        pad = max(6, th // 4)
        cx, cy = w / 2, h * 0.72
        x0, y0 = cx - tw / 2, cy - th / 2
        draw.rounded_rectangle(
            (x0 - pad * 1.5, y0 - pad, x0 + tw + pad * 1.5, y0 + th + pad), radius=pad, fill=(0, 0, 0, 185)
        )
        draw.multiline_text(
            (x0 - box[0], y0 - box[1]), text, font=font, fill=(255, 255, 255, 255),
            align="center", stroke_width=stroke, stroke_fill=(0, 0, 0, 255),
        )
        rgba = np.asarray(overlay)
        bbox = overlay.getbbox()
        if bbox is None:
            return None
        bx0, by0, bx1, by1 = bbox
        region = rgba[by0:by1, bx0:bx1].astype(np.float32)
        alpha = region[..., 3:4] / 255.0
        return (by0, by1, bx0, bx1, region[..., :3] * alpha, 1.0 - alpha)

    def frame(self, k: int) -> np.ndarray:
        t = 0 if self.shot.static else k
        dx = _pingpong(t, _MARGIN)  # slow pan: 1 px/frame across, 0.5 px/frame down
        dy = _pingpong(t // 2, _MARGIN)
        img = np.array(self.canvas[dy : dy + self.height, dx : dx + self.width])  # copy
        if self.square_color is not None and not self.shot.static:
            s = self.square
            x = _pingpong(t * 4, self.width - s)
            y = (self.height - s) // 3
            img[y : y + s, x : x + s] = self.square_color
        if self.caption is not None:
            y0, y1, x0, x1, premult, inv = self.caption
            region = img[y0:y1, x0:x1].astype(np.float32)
            img[y0:y1, x0:x1] = (region * inv + premult + 0.5).astype(np.uint8)
        if self.fade_frames and k < self.fade_frames:
            img = (img.astype(np.float32) * (k / self.fade_frames)).astype(np.uint8)
        return img


_VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv"}


def make_video(
    path,
    shots: Sequence[Shot],
    *,
    speech: str | None = None,
    size=(640, 360),
    fps: int = 25,
    audio_rate: int = 44100,
    voice: str = "en-us",
    rate_wpm: int = 150,
    crf: int = 23,
    preset: str = "veryfast",
) -> dict:
    """Write an H.264 (libx264, yuv420p) video (.mp4/.m4v/.mov/.mkv) of ``shots`` in
    order with hard cuts, plus a mono AAC track speaking ``speech`` when given (padded
    with silence to the video length; the last shot is extended if the speech is longer).

    Shot lengths are rounded to whole frames. Returns ``{"path", "cut_times_s",
    "duration_s", "fps", "frame_count", "shot_frames", "has_audio"}`` where
    ``cut_times_s`` holds the start time of each shot after the first."""
    path = Path(path)
    if path.suffix.lower() not in _VIDEO_SUFFIXES:
        raise ValueError(f"unsupported video suffix {path.suffix!r} (use {sorted(_VIDEO_SUFFIXES)})")
    if not shots:
        raise ValueError("make_video needs at least one shot")
    width, height = int(size[0]), int(size[1])
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
    fps = int(fps)

    shot_frames = [max(1, int(round(s.duration_s * fps))) for s in shots]
    audio = speech_track(speech, voice=voice, rate_wpm=rate_wpm, audio_rate=audio_rate)
    if audio is not None:
        needed = math.ceil(audio.size * fps / audio_rate)
        if needed > sum(shot_frames):
            shot_frames[-1] += needed - sum(shot_frames)
    total_frames = sum(shot_frames)
    if audio is not None:
        n_audio = total_frames * audio_rate // fps
        audio = np.concatenate([audio, np.zeros(max(0, n_audio - audio.size), dtype=np.int16)])[:n_audio]

    starts = np.cumsum([0] + shot_frames)
    cut_times = [float(starts[i]) / fps for i in range(1, len(shots))]

    def frames() -> Iterator[np.ndarray]:
        for index, (shot, n) in enumerate(zip(shots, shot_frames)):
            renderer = _ShotRenderer(shot, (width, height), fps, seed=1000 + index)
            for k in range(n):
                yield renderer.frame(k)
            del renderer

    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "+faststart"} if path.suffix.lower() in {".mp4", ".m4v", ".mov"} else {}
    video_tb = Fraction(1, fps)
    with av.open(str(path), "w", options=options) as container:
        vstream = container.add_stream("libx264", rate=fps)
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"
        vstream.time_base = video_tb
        vstream.codec_context.time_base = video_tb
        vstream.options = {"preset": preset, "crf": str(crf)}
        feeder = None
        if audio is not None:
            astream = _add_audio_stream(container, "aac", "fltp", audio_rate, 96000)
            astream.codec_context.open()
            feeder = _AudioFeeder(container, astream, audio, "fltp", audio_rate)

        for i, rgb in enumerate(frames()):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = video_tb
            container.mux(vstream.encode(frame))
            if feeder is not None:  # keep audio roughly in step; the muxer interleaves exactly
                feeder.feed_until((i + 1) * audio_rate // fps)
        container.mux(vstream.encode(None))
        if feeder is not None:
            feeder.finish()

    return {
        "path": path,
        "cut_times_s": cut_times,
        "duration_s": total_frames / fps,
        "fps": fps,
        "frame_count": total_frames,
        "shot_frames": list(shot_frames),
        "has_audio": audio is not None,
    }


# --------------------------------------------------------------------------------------
# Format variants: every kind of video FFmpeg decodes (tests/test_formats.py)
# --------------------------------------------------------------------------------------

_ORIENT_BLUE, _ORIENT_RED = (30, 30, 230), (230, 30, 30)


def _orientation_marks(img: np.ndarray) -> None:
    """Paint the top band of an upright picture blue on the left half, red on the right:
    a keyframe shows it in place only when it was turned and un-squeezed correctly."""
    h, w = img.shape[:2]
    band = max(3, int(round(h * 0.15)))
    img[:band, : w // 2] = _ORIENT_BLUE
    img[:band, w // 2 :] = _ORIENT_RED


def make_format_video(
    path,
    *,
    size: tuple[int, int],
    text: str | None = None,
    duration_s: float = 1.0,
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    codec_options: dict | None = None,
    sample_aspect_ratio: tuple[int, int] | None = None,
    rotation: int = 0,
    interlaced: bool = False,
    frame_times_s: Sequence[float] | None = None,
    video_start_s: float = 0.0,
    speech: str | None = None,
    audio_rate: int = 48000,
    audio_layout: str = "mono",
    audio_start_s: float = 0.0,
    style: str = "checker",
    color: tuple[int, int, int] = (40, 160, 60),
) -> dict:
    """One shot of ``style`` (with an optional caption and the orientation marks of
    :func:`_orientation_marks`) written the way cameras, phones and broadcasters store video:

    * ``size``: the coded (stored) width x height; any size the codec accepts (libx264
      4:2:0 needs even sides, ``mpeg4``/``ffv1`` take odd ones).
    * ``sample_aspect_ratio`` (SAR, e.g. (64, 45) for 16:9 PAL): the picture is drawn at its
      display size (width x SAR) and squeezed into ``size``, as anamorphic video is.
    * ``rotation``: a display matrix (degrees counter-clockwise, as ``frame.rotation``
      reports it; a phone held upright writes -90). The picture is drawn upright and stored
      turned the other way, so only a player that applies the matrix shows it upright.
    * ``interlaced``: two fields per frame from instants 1/(2 fps) apart (real combing), and
      the codec told so (libx264 ``interlaced=1:tff=1``, mpeg2video ``+ildct+ilme``).
    * ``frame_times_s``: variable frame rate, one presentation time per frame (ms time base).
    * ``video_start_s`` / ``audio_start_s``: the first timestamp of each stream (late starts).
    * ``speech``: espeak-ng narration on an AAC track at ``audio_rate`` Hz with
      ``audio_layout`` channels; in 5.1 it is in the centre channel only, as film dialogue is.

    Returns ``{"path", "frame_count", "duration_s", "display_size", "has_audio"}``;
    ``display_size`` is the upright picture a player shows (width, height).
    """
    path = Path(path)
    width, height = int(size[0]), int(size[1])
    sar = Fraction(*sample_aspect_ratio) if sample_aspect_ratio else Fraction(1)
    turns = round(rotation / 90) % 4
    disp_w, disp_h = max(1, round(width * sar)), height  # as stored, before turning upright
    up_w, up_h = (disp_h, disp_w) if turns % 2 else (disp_w, disp_h)
    if frame_times_s is not None:
        n_frames = len(frame_times_s)
        tb = Fraction(1, 1000)
        pts = [int(round((video_start_s + t) * 1000)) for t in frame_times_s]
    else:
        n_frames = max(1, int(round(duration_s * fps)))
        tb = Fraction(1, fps)
        start = int(round(video_start_s * fps))
        pts = [start + i for i in range(n_frames)]
    # Interlaced: render at twice the rate and weave fields (top field first).
    renderer = _ShotRenderer(Shot(duration_s, text, style=style, color=color), (up_w, up_h), fps * 2, seed=7)

    def picture(k: int) -> np.ndarray:
        img = renderer.frame(k)
        _orientation_marks(img)
        if turns:  # store it turned so that the display matrix turns it back
            img = np.rot90(img, k=-turns)
        if img.shape[1] != width or img.shape[0] != height:  # anamorphic squeeze
            img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((width, height), Image.Resampling.BILINEAR))
        return np.ascontiguousarray(img)

    audio = None
    if speech:
        pcm, rate = synthesize_speech(speech)
        mono = _resample(pcm, rate, audio_rate).astype(np.float32) / 32768.0
        layout = av.AudioLayout(audio_layout)
        names = [c.name for c in layout.channels]
        audio = np.zeros((len(names), mono.size), np.float32)
        for i, name in enumerate(names):
            if name == "FC" or "FC" not in names:
                audio[i] = mono * (1.0 if name == "FC" or len(names) == 1 else 0.7)

    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "+faststart"} if path.suffix.lower() in {".mp4", ".m4v", ".mov"} else {}
    with av.open(str(path), "w", options=options) as container:
        vstream = container.add_stream(codec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, pix_fmt
        vstream.time_base = tb
        vstream.codec_context.time_base = Fraction(1, fps) if frame_times_s is None else tb
        opts = dict(codec_options or {})
        if codec == "libx264":
            opts.setdefault("preset", "veryfast")
            if interlaced:
                opts["x264-params"] = ":".join(filter(None, [opts.get("x264-params"), "interlaced=1:tff=1"]))
        elif interlaced:
            opts.setdefault("flags", "+ildct+ilme")
        vstream.options = opts
        if sample_aspect_ratio:
            vstream.codec_context.sample_aspect_ratio = sar
        if rotation:
            vstream.set_display_rotation(rotation)
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=audio_rate)
            astream.layout = audio_layout
            astream.format = "fltp"
            astream.time_base = Fraction(1, audio_rate)
            astream.codec_context.open()
        for i in range(n_frames):
            if interlaced:
                img = picture(2 * i).copy()
                img[1::2] = picture(2 * i + 1)[1::2]  # bottom field: half a frame later
            else:
                img = picture(2 * i)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = pts[i], tb
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        if astream is not None:
            chunk = astream.codec_context.frame_size or 1024
            first = int(round(audio_start_s * audio_rate))
            for pos in range(0, audio.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, pos : pos + chunk]),
                                                   format="fltp", layout=audio_layout)
                frame.sample_rate, frame.pts, frame.time_base = audio_rate, first + pos, Fraction(1, audio_rate)
                container.mux(astream.encode(frame))
            container.mux(astream.encode(None))
    duration = (frame_times_s[-1] + 1 / fps) if frame_times_s is not None else n_frames / fps
    return {"path": path, "frame_count": n_frames, "duration_s": duration, "display_size": (up_w, up_h),
            "has_audio": audio is not None}


# --------------------------------------------------------------------------------------
# Demo set
# --------------------------------------------------------------------------------------

NEWSROOM_SHOTS = (
    Shot(2.4, "BREAKING NEWS", style="stripes", color=(200, 30, 30)),
    Shot(2.4, "CITY CENTER", style="checker", color=(30, 90, 200)),
    Shot(2.4, "WEATHER TODAY", style="gradient", color=(240, 170, 30)),
    Shot(2.4, "SPORTS RESULTS", style="circles", color=(40, 190, 70)),
    Shot(2.4, "THANK YOU", style="noise", color=(120, 40, 160)),
)
NEWSROOM_NARRATION = (
    "Good evening. Here is the breaking news from the city center. "
    "The weather today is sunny and warm. "
    "In the sports results, the home team won again. Thank you for watching."
)
INTERVIEW_TEXT = (
    "Thank you for having me. Our company opens a new store this Saturday, "
    "and we hope to see everyone there."
)
POSTER_TEXT = "GRAND OPENING\nSATURDAY"


def make_demo_set(folder) -> list[Path]:
    """Write the demo's sample media into ``folder`` and return their paths:
    ``newsroom.mp4`` (~12 s, five captioned shots with hard cuts, English narration),
    ``interview.wav`` (~6 s of speech, 16 kHz) and ``poster.png`` ("GRAND OPENING SATURDAY")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    video = make_video(folder / "newsroom.mp4", list(NEWSROOM_SHOTS), speech=NEWSROOM_NARRATION, rate_wpm=165)
    audio = make_audio(folder / "interview.wav", INTERVIEW_TEXT, sample_rate=16000, silence_s=0.5)
    poster = make_image(folder / "poster.png", POSTER_TEXT, size=(960, 540), background=(250, 240, 220))
    return [video["path"], audio, poster]
