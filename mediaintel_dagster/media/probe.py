"""Content hashing and media probing with PyAV.

Media are recognised by their bytes, never by their file extension: the file is handed to
FFmpeg as a stream without its name, so a WAV named ``.png`` is audio and a text file named
``.mp4`` is bad input. Every failure is a :class:`MediaError` with a type and a message a
person understands; the caller quarantines the file and carries on.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction

import av

from .errors import MediaError  # noqa: F401 - raised here; stages import it from here
from .files import Hashed, hash_file  # noqa: F401 - hashing lives with the safe file reading

# Formats FFmpeg reports for single still images (content-probed "*_pipe" demuxers).
_IMAGE_FORMAT_SUFFIX = "_pipe"
_IMAGE_CODECS = {"png", "mjpeg", "webp", "bmp", "tiff", "gif", "jpeg2000", "ppm", "pgm", "qoi"}

# Leading bytes of containers we know: when FFmpeg cannot read such a file it is damaged
# (typically cut short), not "not media".
_SIGNATURES = (
    (4, b"ftyp", "MP4/QuickTime"),
    (0, b"RIFF", "RIFF (WAV/AVI/WebP)"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
    (0, b"OggS", "Ogg"),
    (0, b"fLaC", "FLAC"),
    (0, b"ID3", "MP3"),
    (0, b"\x89PNG", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"GIF8", "GIF"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"G", None),  # MPEG-TS sync byte is too weak a signature on its own
)


def _signature(head: bytes) -> str | None:
    for offset, magic, name in _SIGNATURES:
        if name and head[offset : offset + len(magic)] == magic:
            return name
    return None


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * Fraction(time_base))


def probe(path: str) -> dict:
    """Streams, codecs and durations of a media file, checked by demuxing every packet.

    Demuxing (no decoding) reads the whole file once, which is what tells a truncated file
    from a whole one: the packets must reach the duration the header promises. The first
    frame of each stream is decoded to prove the codec can be read.
    """
    try:
        fh = open(path, "rb")
        head = fh.read(64)
    except OSError as exc:
        raise MediaError("unreadable", f"Cannot read {path}: {exc.strerror or exc}.") from None
    with fh:
        if not head:
            raise MediaError("empty_file", f"{path} is empty (0 bytes).")
        fh.seek(0)
        try:
            # A file object, not a name: FFmpeg then probes the content, not the extension.
            container = av.open(fh, mode="r")
        except av.error.FFmpegError as exc:
            sig = _signature(head)
            if sig:
                raise MediaError(
                    "truncated",
                    f"{os.path.basename(path)} starts like {sig} but FFmpeg cannot read it "
                    f"({_ffmpeg_reason(exc)}): the file is probably truncated or damaged.",
                ) from None
            raise MediaError(
                "not_media",
                f"{os.path.basename(path)} is not a recognised video, audio or image file "
                f"(FFmpeg could not identify its content: {_ffmpeg_reason(exc)}).",
            ) from None
        with container:
            return _probe_container(path, container, head)


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _stream_facts(stream) -> dict:
    """Every stream, not just the first video/audio one: extra audio tracks, subtitles, data."""
    cc = stream.codec_context if stream.type in ("video", "audio", "subtitle") else None
    facts = {"index": stream.index, "type": stream.type,
             "codec": cc.name if cc is not None else getattr(stream, "codec_tag", None),
             "language": (stream.metadata or {}).get("language")}
    if stream.type == "audio" and cc is not None:
        facts.update(sample_rate=cc.sample_rate, channels=cc.channels)
    if stream.type == "video" and cc is not None:
        facts.update(width=cc.width, height=cc.height)
    return facts


def _display_geometry(video, rotation) -> dict:
    """``width``/``height`` are the coded picture as stored; a player shows it stretched by
    the sample aspect ratio (anamorphic PAL/NTSC/HDV: 720x576 at 64:45 shows 1024x576) and
    turned by the display matrix (a phone's 1920x1080 at rotation -90 shows 1080x1920).
    ``display_width``/``display_height`` are that upright, square-pixel picture."""
    w, h = video.codec_context.width, video.codec_context.height
    sar = video.sample_aspect_ratio or video.codec_context.sample_aspect_ratio
    sar = Fraction(sar) if sar and sar > 0 else Fraction(1)
    disp_w, disp_h = max(1, round(w * sar)) if w else w, h
    if rotation and round(rotation / 90) % 2:
        disp_w, disp_h = disp_h, disp_w
    return {"sample_aspect_ratio": f"{sar.numerator}:{sar.denominator}", "display_width": disp_w,
            "display_height": disp_h}


def _field_order(video) -> str | None:
    """'progressive', 'tt', 'bb', 'tb', 'bt' (FFmpeg's AVFieldOrder), or None when unknown."""
    order = getattr(video.codec_context, "field_order", None)
    names = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}
    if isinstance(order, int):
        return names.get(order)
    return str(order).lower() if order else None


def _start_offset(stream, container_start: float) -> float | None:
    """Where a stream's first timestamp lies after the media's start (audio that starts a
    second after the picture: 1.0); every time the stages write is from the media's start."""
    if stream is None:
        return None
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return round(max(0.0, float(stream.start_time * stream.time_base) - container_start), 6)


def _declared_size(head: bytes) -> int | None:
    """The file size a RIFF (WAV/AVI/WebP) header promises; FFmpeg reads a cut WAV silently."""
    if head[:4] == b"RIFF" and len(head) >= 8:
        return int.from_bytes(head[4:8], "little") + 8
    return None


def _probe_container(path: str, container, head: bytes) -> dict:
    name = os.path.basename(path)
    promised = _declared_size(head)
    actual = os.path.getsize(path)
    # 0xFFFFFFFF-ish sizes are written by streaming encoders that never went back to patch them.
    if promised is not None and promised < 0xFFFFFF00 and actual < promised:
        raise MediaError(
            "truncated",
            f"{name}: its RIFF header promises {promised} bytes but the file holds {actual}: "
            "the file is truncated (incomplete upload or copy).",
        )
    video = next((s for s in container.streams.video), None)
    audio = next((s for s in container.streams.audio), None)
    if video is None and audio is None:
        raise MediaError("not_media", f"{name} holds no video or audio stream (format {container.format.name}).")
    fmt = container.format.name
    is_image = video is not None and audio is None and (
        fmt.endswith(_IMAGE_FORMAT_SUFFIX) or fmt == "image2"
    ) and video.codec_context.name in _IMAGE_CODECS

    # Demux every packet: measured end time per stream, and errors where the data stops.
    streams = [s for s in (video, audio) if s is not None]
    end = {s.index: None for s in streams}
    packets = {s.index: 0 for s in streams}
    first_frame = {s.index: False for s in streams}
    rotation = None
    interlaced = False
    try:
        for packet in container.demux(streams):
            if packet.size == 0:
                continue
            idx = packet.stream.index
            packets[idx] += 1
            if packet.pts is not None:
                t = _seconds(packet.pts + (packet.duration or 0), packet.time_base)
                if t is not None and (end[idx] is None or t > end[idx]):
                    end[idx] = t
            if not first_frame[idx]:
                for frame in packet.decode():
                    first_frame[idx] = True
                    if packet.stream.type == "video":
                        rotation = getattr(frame, "rotation", None)
                        interlaced = bool(getattr(frame, "interlaced_frame", False))
                    break
    except av.error.FFmpegError as exc:
        raise MediaError(
            "truncated" if any(packets.values()) else "corrupt",
            f"{name}: reading stopped with an FFmpeg error after {sum(packets.values())} packets "
            f"({_ffmpeg_reason(exc)}): the file is truncated or damaged.",
        ) from None

    for s in streams:
        if packets[s.index] == 0:
            raise MediaError("truncated", f"{name}: its {s.type} stream has no data (the file is cut short).")
        if not first_frame[s.index]:
            raise MediaError("corrupt", f"{name}: no {s.type} frame could be decoded ({s.codec_context.name}).")

    declared = None
    if container.duration is not None:
        declared = container.duration / av.time_base
    measured = max((v for v in end.values() if v is not None), default=None)
    start = container.start_time / av.time_base if container.start_time is not None else 0.0
    if measured is not None:
        measured = max(0.0, measured - start)
    if not is_image and declared and measured is not None and measured < declared * 0.9 - 0.25:
        raise MediaError(
            "truncated",
            f"{name}: the header promises {declared:.2f} s but the data ends at {measured:.2f} s: "
            "the file is truncated (incomplete upload or copy).",
        )

    duration = 0.0 if is_image else (measured if measured is not None else (declared or 0.0))
    fps = None
    if video is not None and not is_image:
        rate = video.average_rate or video.guessed_rate or video.base_rate
        fps = float(rate) if rate else None
    geometry = _display_geometry(video, rotation) if video is not None else {}
    return {
        "streams": json.dumps([_stream_facts(st) for st in container.streams], sort_keys=True),
        "kind": "image" if is_image else ("video" if video is not None else "audio"),
        "container": fmt,
        "duration_s": round(duration, 6),
        "has_video": video is not None and not is_image,
        "has_audio": audio is not None,
        "video_codec": video.codec_context.name if video is not None else None,
        "width": video.codec_context.width if video is not None else None,
        "height": video.codec_context.height if video is not None else None,
        "fps": fps,
        "rotation": int(rotation) if rotation else 0 if video is not None else None,
        **geometry,
        "pixel_format": video.codec_context.pix_fmt if video is not None else None,
        "interlaced": (interlaced or _field_order(video) not in (None, "progressive")) if video is not None and not is_image else None,
        "video_start_s": _start_offset(video, start),
        # where the picture ends (media time): before duration_s when the sound outlasts it
        "video_end_s": (round(max(0.0, end[video.index] - start), 6)
                        if video is not None and not is_image and end[video.index] is not None else None),
        "audio_start_s": _start_offset(audio, start),
        "video_frames": packets[video.index] if video is not None else None,
        "audio_codec": audio.codec_context.name if audio is not None else None,
        "sample_rate": audio.codec_context.sample_rate if audio is not None else None,
        "channels": audio.codec_context.channels if audio is not None else None,
        "bit_rate": container.bit_rate or None,
    }
