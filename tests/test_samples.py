"""Tests for mediaintel_dagster.media.samples: every file is reopened with PyAV / Pillow and
its real contents checked (codecs, durations, frames, cuts, audible speech, text pixels)."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mediaintel_dagster.media.samples import (
    Shot,
    make_audio,
    make_demo_set,
    make_image,
    make_video,
    synthesize_speech,
)

SENTENCE = "Hello world, this is a test of the sample generator."


def _rms(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def _decode_audio(path: Path) -> tuple[np.ndarray, int, str]:
    """Mono samples scaled to int16 range, sample rate, decoder name."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        name = stream.codec_context.name
        chunks = [f.to_ndarray() for f in container.decode(stream)]
    x = np.concatenate([c.reshape(c.shape[0], -1)[0] if c.ndim == 2 else c for c in chunks])
    if x.dtype.kind == "f":
        x = x * 32768.0
    return x.astype(np.float64), rate, name


def _decode_video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _stream_seconds(stream) -> float:
    return float(stream.duration * stream.time_base)


# -- speech ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech():
    return synthesize_speech(SENTENCE)


def test_synthesize_speech_returns_audible_int16(speech):
    pcm, rate = speech
    assert rate == 22050
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert 1.5 < pcm.size / rate < 6.0
    assert _rms(pcm) > 500


def test_synthesize_speech_is_thread_safe(speech):
    # espeak-ng is not bit-exact between calls (a few samples of jitter), so compare
    # shape and loudness: interleaved or truncated utterances would be far off.
    expected = speech[0]
    results: list[np.ndarray] = []

    def worker():
        for _ in range(2):
            results.append(synthesize_speech(SENTENCE)[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    for r in results:
        assert abs(r.size - expected.size) < 0.005 * expected.size
        assert _rms(r) == pytest.approx(_rms(expected), rel=0.05)


def test_synthesize_speech_rate_and_voice():
    slow, rate = synthesize_speech("one two three four five six", rate_wpm=100)
    fast, _ = synthesize_speech("one two three four five six", rate_wpm=300)
    assert fast.size < 0.7 * slow.size
    assert synthesize_speech("   ")[0].size == 0
    with pytest.raises(ValueError):
        synthesize_speech("hello", voice="no-such-voice")
    # the engine recovers and keeps the default voice working
    assert _rms(synthesize_speech("hello again")[0]) > 500


# -- images ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_make_image_text_pixels(tmp_path, suffix):
    bg = (30, 60, 120)
    path = make_image(tmp_path / f"poster{suffix}", "GRAND OPENING SATURDAY", size=(800, 400), background=bg)
    assert path.exists()
    with Image.open(path) as img:
        assert img.size == (800, 400)
        assert img.format == {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP"}[suffix]
        arr = np.asarray(img.convert("RGB")).astype(np.int32)
    diff = np.abs(arr - np.array(bg)).sum(axis=2)
    text_mask = diff > 150  # clearly not background (tolerates JPEG/WebP noise)
    assert 0.03 < text_mask.mean() < 0.5
    # corners stay background; the text sits in the middle
    for corner in (arr[:20, :20], arr[-20:, -20:]):
        assert np.abs(corner - np.array(bg)).max() < 20
    ys, xs = np.nonzero(text_mask)
    assert 0.3 < ys.mean() / 400 < 0.7 and 0.3 < xs.mean() / 800 < 0.7
    assert xs.max() - xs.min() > 0.6 * 800  # large letters spanning most of the width


def test_make_image_blank_text_is_plain(tmp_path):
    path = make_image(tmp_path / "blank.png", "", size=(64, 32), background=(1, 2, 3))
    arr = np.asarray(Image.open(path))
    assert arr.shape == (32, 64, 3) and (arr == (1, 2, 3)).all()


# -- audio -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, decoder",
    [(".wav", "pcm_s16le"), (".mp3", "mp3"), (".m4a", "aac"), (".flac", "flac")],
)
def test_make_audio_formats(tmp_path, speech, suffix, decoder):
    path = make_audio(tmp_path / f"speech{suffix}", SENTENCE, sample_rate=16000, silence_s=0.5)
    expected = speech[0].size / speech[1] + 1.0
    x, rate, name = _decode_audio(path)
    assert name.startswith(decoder)  # mp3 decodes as "mp3float"
    assert rate == 16000
    assert abs(x.size / rate - expected) < 0.1
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.channels == 1
        assert abs(container.duration / 1e6 - expected) < 0.1
    lead, tail = x[: int(0.4 * rate)], x[-int(0.4 * rate) :]
    middle = x[int(0.5 * rate) : -int(0.5 * rate)]
    assert _rms(middle) > 500
    assert _rms(lead) < 20 and _rms(tail) < 20
    if suffix in (".wav", ".flac"):  # lossless: the padding is exact digital silence
        assert not lead.any() and not tail.any()


def test_make_audio_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError):
        make_audio(tmp_path / "x.xyz", "hi")


# -- video -------------------------------------------------------------------------------

SHOTS = [
    Shot(1.0, "BREAKING NEWS", style="stripes", color=(200, 30, 30)),
    Shot(0.8, None, style="checker", color=(30, 90, 200), static=True),
    Shot(1.2, "WEATHER TODAY", style="circles", color=(40, 190, 70), fade_in_s=0.4),
]


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "shots.mp4"
    return make_video(path, SHOTS, size=(320, 180), fps=25)


def test_make_video_container_and_stream(silent_video):
    info = silent_video
    assert info["fps"] == 25
    assert info["duration_s"] == pytest.approx(3.0)
    assert info["cut_times_s"] == pytest.approx([1.0, 1.8])
    with av.open(str(info["path"])) as container:
        assert [s.type for s in container.streams] == ["video"]
        v = container.streams.video[0]
        assert v.codec_context.name == "h264"
        assert v.codec_context.pix_fmt == "yuv420p"
        assert (v.codec_context.width, v.codec_context.height) == (320, 180)
        assert v.average_rate == 25
        assert v.frames == 75
        assert abs(_stream_seconds(v) - 3.0) < 0.1
        assert abs(container.duration / 1e6 - 3.0) < 0.1


def test_make_video_hard_cuts_motion_and_fade(silent_video):
    frames = _decode_video_frames(silent_video["path"])
    assert len(frames) == 75
    f = np.stack(frames).astype(np.float32)
    diffs = np.abs(f[1:] - f[:-1]).mean(axis=(1, 2, 3))  # diffs[i]: frame i -> i+1
    cut_frames = [round(t * 25) for t in silent_video["cut_times_s"]]  # [25, 45]
    assert cut_frames == [25, 45]
    cut_diffs = [diffs[c - 1] for c in cut_frames]
    others = np.delete(diffs, [c - 1 for c in cut_frames])
    assert min(cut_diffs) > 40  # hard cuts are big jumps ...
    assert min(cut_diffs) > 3 * others.max()  # ... far above any change inside a shot
    # shot 1 moves, shot 2 (static) does not
    assert diffs[0:24].mean() > 1.0
    assert diffs[25:44].max() < 1.0
    # shot 3 fades in from black
    assert frames[45].mean() < 5
    assert frames[55].mean() > 40


def test_make_video_with_speech_extends_last_shot(tmp_path):
    shots = [Shot(0.6, "ONE", style="noise"), Shot(0.4, "TWO", style="solid", color=(20, 20, 200))]
    speech = "This narration is clearly longer than one second of video."
    n_speech = synthesize_speech(speech)[0].size / 22050
    info = make_video(tmp_path / "talk.mkv", shots, speech=speech, size=(160, 96), fps=10, audio_rate=22050)
    assert info["cut_times_s"] == pytest.approx([0.6])
    assert info["duration_s"] >= n_speech
    assert info["duration_s"] < n_speech + 0.2
    assert info["frame_count"] == round(info["duration_s"] * 10)
    with av.open(str(info["path"])) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "video"]
        assert container.streams.video[0].codec_context.name == "h264"
        a = container.streams.audio[0]
        assert a.codec_context.name == "aac" and a.codec_context.sample_rate == 22050
        assert abs(container.duration / 1e6 - info["duration_s"]) < 0.1
    assert len(_decode_video_frames(info["path"])) == info["frame_count"]
    x, rate, _ = _decode_audio(info["path"])
    assert abs(x.size / rate - info["duration_s"]) < 0.1
    assert _rms(x) > 500


def test_make_video_pads_short_speech_with_silence(tmp_path):
    info = make_video(tmp_path / "pad.mp4", [Shot(3.0, style="gradient")], speech="Hi.", size=(160, 96), fps=10)
    assert info["duration_s"] == pytest.approx(3.0)
    x, rate, _ = _decode_audio(info["path"])
    assert abs(x.size / rate - 3.0) < 0.1
    assert _rms(x[: int(0.5 * rate)]) > 300  # "Hi." at the start
    assert _rms(x[int(2.0 * rate) : int(2.9 * rate)]) < 20  # silent padding


def test_make_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        make_video(tmp_path / "odd.mp4", [Shot(1.0)], size=(161, 90))
    with pytest.raises(ValueError):
        make_video(tmp_path / "none.mp4", [])
    with pytest.raises(ValueError):
        make_video(tmp_path / "x.mp4", [Shot(1.0, style="no-such-style")])


# -- demo set ----------------------------------------------------------------------------


def test_make_demo_set(tmp_path):
    paths = make_demo_set(tmp_path)
    assert [p.name for p in paths] == ["newsroom.mp4", "interview.wav", "poster.png"]
    assert all(p.exists() and p.parent == tmp_path for p in paths)
    video, audio, poster = paths
    with av.open(str(video)) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "video"]
        assert 11.0 < container.duration / 1e6 < 14.0
    x, rate, _ = _decode_audio(video)
    assert _rms(x) > 300
    x, rate, name = _decode_audio(audio)
    assert name == "pcm_s16le" and 5.0 < x.size / rate < 9.0 and _rms(x) > 500
    with Image.open(poster) as img:
        arr = np.asarray(img.convert("RGB")).astype(np.int32)
    assert (np.abs(arr - arr[0, 0]).sum(axis=2) > 150).mean() > 0.03
