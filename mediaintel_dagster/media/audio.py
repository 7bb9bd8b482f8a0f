"""Decode a media file's audio once, to what Whisper reads: 16 kHz mono float32.

Frames are resampled by FFmpeg (through PyAV) to int16 as they are decoded, exactly as
faster-whisper's own ``decode_audio`` does (the same samples, bit for bit), and scaled
into one float32 buffer sized from the container's duration (grown if the duration was
short), so peak memory is the decoded audio itself plus a frame or two: 64 kB per second of media,
77 MB for 20 minutes, whatever the source's rate, channels or codec.
"""

from __future__ import annotations

import os

import av
import numpy as np

from .errors import MediaError

SAMPLE_RATE = 16000


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
                 expected_s: float | None = None) -> np.ndarray:
    """The first audio stream of ``path`` as mono float32 samples at ``sample_rate``.

    Raises MediaError ('unreadable', 'no_audio', 'corrupt') when it cannot be decoded.
    ``expected_s`` (the probed duration) sizes the buffer up front.
    """
    path = str(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    try:
        container = av.open(path, metadata_errors="ignore")
    except FileNotFoundError as exc:
        raise MediaError("unreadable", f"{path}: file not found") from exc
    except (av.FFmpegError, OSError) as exc:
        raise MediaError("corrupt", f"{path}: cannot open for audio decoding: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise MediaError("no_audio", f"{path}: no audio stream")
        stream = container.streams.audio[0]
        if expected_s is None:
            if stream.duration is not None and stream.time_base is not None:
                expected_s = float(stream.duration * stream.time_base)
            elif container.duration:
                expected_s = container.duration / av.time_base
        capacity = int((expected_s or 60.0) * sample_rate) + sample_rate  # +1 s of slack
        buf = np.empty(capacity, dtype=np.float32)
        n = 0
        # int16 out of the resampler, then / 32768, exactly as faster_whisper.decode_audio and
        # OpenAI's `ffmpeg -ac 1 -ar 16000 -f s16le` (what Whisper was trained on) do. Not
        # "flt": for a float output FFmpeg leaves the downmix matrix unnormalised, so stereo
        # comes out 3 dB louder (L and R summed at 0.707 each) than Whisper's features expect,
        # and its float resampling filter is not the int16 one. Both changed words (docs/speech.md).
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)

        def put(frames) -> None:
            nonlocal buf, n
            for f in frames:
                chunk = f if isinstance(f, np.ndarray) else f.to_ndarray().reshape(-1)  # int16 from the resampler
                if n + chunk.size > buf.size:  # the probed duration was short: grow by half
                    grown = np.empty(max(n + chunk.size, int(buf.size * 1.5)), dtype=np.float32)
                    grown[:n] = buf[:n]
                    buf = grown
                buf[n:n + chunk.size] = chunk
                if chunk.dtype == np.int16:
                    buf[n:n + chunk.size] *= np.float32(1 / 32768)  # a power of two: exact, = x / 32768.0
                n += chunk.size

        # Sound that starts after the media does (a track that begins a second after the
        # picture) is preceded by that much silence, so transcript times are media times.
        if container.start_time is not None and stream.start_time is not None and stream.time_base is not None:
            lead = float(stream.start_time * stream.time_base) - container.start_time / av.time_base
            if lead > 0:
                put([np.zeros(int(round(lead * sample_rate)), np.float32)])
        try:
            for frame in container.decode(stream):
                put(resampler.resample(frame))
            put(resampler.resample(None))  # flush the resampler's tail
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError("corrupt", f"{path}: audio decoding failed after {n / sample_rate:.2f}s: {exc}") from exc
    if n == 0:
        raise MediaError("corrupt", f"{path}: the audio stream decoded to no samples")
    # Trim in place when the slack is small; copy out only when the estimate was far off.
    return buf[:n] if buf.size - n <= 2 * sample_rate else buf[:n].copy()


def chunk_bounds(audio: np.ndarray, chunk_s: float, search_s: float = 5.0) -> list[tuple[int, int]]:
    """(start, end) sample ranges that cover ``audio``: one range when it is short, else
    pieces of about ``chunk_s`` seconds, each cut at the quietest 100 ms within ``search_s``
    of the nominal boundary (a pause between words, not the middle of one)."""
    n = audio.size
    step = int(chunk_s * SAMPLE_RATE)
    if chunk_s <= 0 or n <= step * 1.2:
        return [(0, n)]
    win, reach = SAMPLE_RATE // 10, int(search_s * SAMPLE_RATE)
    cuts, start = [], 0
    while n - start > step * 1.2:
        lo, hi = start + step - reach, min(n, start + step + reach)
        span = audio[lo:hi]
        frames = span[: (span.size // win) * win].reshape(-1, win)
        quietest = int(np.argmin(np.sqrt(np.mean(frames.astype(np.float32) ** 2, axis=1))))
        cut = lo + quietest * win + win // 2
        cuts.append(cut)
        start = cut
    edges = [0] + cuts + [n]
    return list(zip(edges[:-1], edges[1:]))
