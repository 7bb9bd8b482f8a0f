"""Probing recognises media by content and names every kind of bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from mediaintel_dagster.media.probe import MediaError, hash_file, probe
from conftest import make_bad_files


def test_video_with_audio(media_dir):
    facts = probe(str(media_dir / "clip.mp4"))
    assert facts["kind"] == "video" and facts["has_video"] and facts["has_audio"]
    assert facts["video_codec"] == "h264" and facts["audio_codec"] == "aac"
    assert (facts["width"], facts["height"]) == (320, 180)
    assert facts["fps"] == pytest.approx(25.0)
    assert facts["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert facts["video_frames"] == 50
    assert facts["sample_rate"] > 0 and facts["channels"] >= 1
    streams = json.loads(facts["streams"])
    assert [(st["type"], st["codec"]) for st in streams] == [("video", "h264"), ("audio", "aac")]


def test_silent_video_in_matroska(media_dir):
    facts = probe(str(media_dir / "silent.mkv"))
    assert facts["kind"] == "video" and not facts["has_audio"]
    assert facts["container"] == "matroska,webm"
    assert facts["duration_s"] == pytest.approx(1.5, abs=0.1)


def test_audio_and_images(media_dir):
    audio = probe(str(media_dir / "speech.wav"))
    assert audio["kind"] == "audio" and not audio["has_video"] and audio["audio_codec"] == "pcm_s16le"
    assert audio["duration_s"] > 1.0
    png = probe(str(media_dir / "poster.png"))
    assert png["kind"] == "image" and (png["width"], png["height"]) == (320, 180) and png["duration_s"] == 0
    assert probe(str(media_dir / "photo.jpg"))["kind"] == "image"


def test_content_not_extension_decides(media_dir, tmp_path):
    wav_as_png = tmp_path / "actually_audio.png"
    shutil.copy(media_dir / "speech.wav", wav_as_png)
    assert probe(str(wav_as_png))["kind"] == "audio"
    png_as_mp4 = tmp_path / "actually_image.mp4"
    shutil.copy(media_dir / "poster.png", png_as_mp4)
    assert probe(str(png_as_mp4))["kind"] == "image"
    no_suffix = tmp_path / "upload_0001"
    shutil.copy(media_dir / "clip.mp4", no_suffix)
    assert probe(str(no_suffix))["kind"] == "video"


def test_every_kind_of_bad_input_has_a_type_and_a_message(media_dir, tmp_path):
    expected = make_bad_files(tmp_path / "bad", media_dir / "clip.mp4")
    for name, error_type in expected.items():
        path = str(tmp_path / "bad" / name)
        with pytest.raises(MediaError) as info:
            hash_file(path)
            probe(path)
        assert info.value.error_type == error_type, (name, info.value.message)
        assert name.split(".")[0] in info.value.message or "empty" in info.value.message
        assert len(info.value.message) > 30


def test_truncated_wav_is_caught(media_dir, tmp_path):
    # A WAV header promises more samples than the file holds.
    data = (media_dir / "speech.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError) as info:
        probe(str(cut))
    assert info.value.error_type == "truncated"


def test_hash_is_of_content(media_dir, tmp_path):
    copy = tmp_path / "renamed.bin"
    shutil.copy(media_dir / "clip.mp4", copy)
    a, b = hash_file(str(media_dir / "clip.mp4")), hash_file(str(copy))
    assert a == b and a.media_id == a.sha256[:16] and len(a.sha256) == 64
