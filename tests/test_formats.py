"""Every video FFmpeg decodes goes through every stage: a matrix of sizes, aspect ratios,
rotations, pixel formats, scan types, frame timing, late-starting streams and audio layouts,
each generated with PyAV (media/samples.make_format_video), all ingested in ONE window by
the real ingest_job (media, media_sources, scenes + keyframes, ocr_text, scene embeddings,
transcript_segments, text embeddings) with the real models.

What the bundled FFmpeg (PyAV 18.1) encodes, as found: libx264 takes yuv420p10le (profile
high10), yuv422p and yuv444p, and odd sides only at 4:4:4 (4:2:0 odd sizes fail in
avcodec_open2); mpeg4 and ffv1 take odd sides at 4:2:0/4:2:2; prores_ks writes 4:2:2 10-bit;
mpeg2video writes 4:2:2 and interlace (``flags=+ildct+ilme``); libx264 interlace through
``x264-params=interlaced=1:tff=1``. Rotation is a display matrix set with
``stream.set_display_rotation(deg)`` (read back as ``frame.rotation``); the sample aspect
ratio is ``codec_context.sample_aspect_ratio``.

Every picture carries orientation marks (a blue left / red right band along its top, see
samples._orientation_marks): a keyframe with the marks in place is upright, unmirrored and
at the display aspect.
"""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediaintel_dagster.definitions import build_defs
from mediaintel_dagster.instance import get_instance
from mediaintel_dagster.media.keyframes import keyframe_path
from mediaintel_dagster.media.samples import make_audio, make_format_video
from conftest import pipeline_resources, rows_by_file, set_home, window_of

SPEECH = "Good evening, here is the news."
SPEECH_WORDS = {"good", "evening", "here", "news"}

# name -> make_format_video arguments. Short clips, low frame rates at the large sizes.
VIDEOS = {
    # sizes: odd, tiny, the ones whose 96-px detection frame had an odd height, huge
    "odd_175x97.mp4": dict(size=(175, 97), codec="mpeg4"),  # MPEG-4 part 2 takes odd sides
    "ffv1_422_odd.mkv": dict(size=(175, 97), codec="ffv1", pix_fmt="yuv422p"),
    "tiny_16x16.mp4": dict(size=(16, 16)),
    "tiny_32x18.mp4": dict(size=(32, 18)),
    "phone_720x1280.mp4": dict(size=(720, 1280), fps=10, text="PHONE"),  # 9:16
    "pal_720x576.mp4": dict(size=(720, 576), fps=10, text="PAL"),
    "cif_352x288.mp4": dict(size=(352, 288), text="CIF"),
    "qcif_176x144.mp4": dict(size=(176, 144)),
    "scope_1920x816.mp4": dict(size=(1920, 816), duration_s=0.4, text="SCOPE"),  # 2.35:1
    "scope_1280x544.mp4": dict(size=(1280, 544), fps=10),
    "scope_640x272.mp4": dict(size=(640, 272), text="WIDE"),
    "uhd_3840x2160.mp4": dict(size=(3840, 2160), fps=5, duration_s=0.6, text="UHD"),
    # anamorphic: non-square pixels
    "anamorphic_pal_169.mp4": dict(size=(720, 576), sample_aspect_ratio=(64, 45), fps=10, text="ANAMORPHIC"),
    # rotation: a phone held upright (stored landscape, display matrix -90), and upside down
    "rotated_phone.mp4": dict(size=(640, 360), rotation=-90, text="UPRIGHT"),
    "rotated_180.mov": dict(size=(320, 180), rotation=180, text="TURNED"),
    # pixel formats
    "h264_10bit.mp4": dict(size=(320, 180), pix_fmt="yuv420p10le", codec_options={"profile": "high10"},
                           text="DEEP"),
    "h264_422.mkv": dict(size=(320, 180), pix_fmt="yuv422p", text="CHROMA"),
    "prores_422_10bit.mov": dict(size=(320, 180), codec="prores_ks", pix_fmt="yuv422p10le", text="PRORES"),
    # interlaced (two fields per frame, half a frame apart), PAL 4:3 anamorphic broadcast style
    "mpeg2_pal_interlaced.mkv": dict(size=(720, 576), codec="mpeg2video", pix_fmt="yuv422p", style="solid",
                                     sample_aspect_ratio=(16, 15), interlaced=True, fps=10, text="INTERLACED"),
    "h264_interlaced.mp4": dict(size=(320, 240), interlaced=True, style="solid", text="FIELDS"),
    # variable frame rate: frames 20 ms to 400 ms apart
    "vfr.mkv": dict(size=(320, 180), frame_times_s=[0.0, 0.02, 0.04, 0.12, 0.2, 0.28, 0.33, 0.5, 0.9, 1.0, 1.04, 1.3],
                    text="VFR"),
    # late starts and audio layouts, each with speech
    "audio_late.mp4": dict(size=(320, 180), duration_s=3.0, fps=10, speech=SPEECH, audio_start_s=2.0),
    "video_late.mkv": dict(size=(320, 180), duration_s=2.0, fps=10, speech=SPEECH, video_start_s=1.0),
    "surround_51.mkv": dict(size=(320, 180), duration_s=2.5, fps=10, speech=SPEECH, audio_layout="5.1"),
    "video_8k_mono.mp4": dict(size=(320, 180), duration_s=2.5, fps=10, speech=SPEECH, audio_rate=8000),
    "video_96k_stereo.mkv": dict(size=(320, 180), duration_s=2.5, fps=10, speech=SPEECH, audio_rate=96000,
                                 audio_layout="stereo"),
}
AUDIO = {"phone_8k_mono.wav": 8000, "hires_96k.flac": 96000}  # audio-only files, mono speech
SPEECH_CASES = {n for n, kw in VIDEOS.items() if kw.get("speech")} | set(AUDIO)
CASES = len(VIDEOS) + len(AUDIO)


@pytest.fixture(scope="module")
def formats(tmp_path_factory, models_dir):
    """Every case generated into one inbox and ingested by one ingest_job run."""
    h = tmp_path_factory.mktemp("formats") / "mi"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAINTEL_SHARDS", "1")  # one window for every case: one run sees them all
        inbox = set_home(mp, h, models_dir) / "inbox"
        made = {name: make_format_video(inbox / name, **kw) for name, kw in VIDEOS.items()}
        for name, rate in AUDIO.items():
            make_audio(inbox / name, SPEECH, sample_rate=rate)
        windows = {window_of(p) for p in inbox.iterdir()}
        assert len(windows) == 1, windows
        (partition,) = windows
        resources = pipeline_resources(h, models_dir)
        job = build_defs(resources).resolve_job_def("ingest_job")
        result = job.execute_in_process(partition_key=partition, instance=get_instance(), raise_on_error=False)
        lake = resources["lake"]
        media, rows = rows_by_file(lake)

        yield {"result": result, "made": made, "media": media, "lake": lake, "rows": rows}


def test_every_case_goes_through_every_stage(formats):
    assert formats["result"].success
    lake, media, rows = formats["lake"], formats["media"], formats["rows"]
    print(f"format cases: {CASES} ({len(VIDEOS)} videos, {len(AUDIO)} audio files)")
    assert lake.read("quarantine").to_pylist() == []
    assert set(media) == set(VIDEOS) | set(AUDIO), "a media row per case"
    assert len(lake.read("media_sources").to_pylist()) == CASES

    scenes, ocr, segments, vectors = rows("scenes"), rows("ocr_text"), rows("transcript_segments"), rows("embeddings")
    for name in VIDEOS:
        assert scenes[name], f"{name}: no scene"
        kinds = {(v["item_kind"], v["item_index"]) for v in vectors[name]}
        for s in scenes[name]:
            assert Path(keyframe_path(s["keyframe_uri"])).is_file(), name
            assert ("scene", s["scene_index"]) in kinds, f"{name}: scene {s['scene_index']} has no embedding"
    for name in AUDIO:
        assert not scenes[name], "audio has no scenes"
    for name, kw in VIDEOS.items():
        if kw.get("text"):
            found = " ".join(r["text"] for r in ocr[name]).upper().replace(" ", "")
            assert kw["text"].replace(" ", "") in found, f"{name}: OCR read {found!r}"
    for name in sorted(set(media)):
        if name in SPEECH_CASES:
            text = " ".join(r["text"] for r in segments[name]).lower()
            heard = {w.strip(".,!?") for w in text.split()}
            print(f"{name}: heard {text!r}")
            # 8 kHz keeps nothing above 4 kHz of espeak's voice: whisper base hears some of it.
            assert heard & SPEECH_WORDS, f"{name}: heard {text!r}"
            seg_vectors = {v["item_index"] for v in vectors[name] if v["item_kind"] == "segment"}
            assert seg_vectors == {r["segment_index"] for r in segments[name]}, f"{name}: segments without vectors"
        else:
            assert not segments[name], f"{name}: a transcript of a silent file: {segments[name]}"


def _expected_display(kw: dict) -> tuple[int, int]:
    w, h = kw["size"]
    sar = Fraction(*kw.get("sample_aspect_ratio", (1, 1)))
    w = round(w * sar)
    return (h, w) if round(kw.get("rotation", 0) / 90) % 2 else (w, h)


def test_probe_reports_coded_and_display_geometry(formats):
    media = formats["media"]
    for name, kw in VIDEOS.items():
        m = media[name]
        assert (m["kind"], m["has_video"]) == ("video", True), name
        assert (m["width"], m["height"]) == kw["size"], f"{name}: width/height are the coded size"
        assert (m["display_width"], m["display_height"]) == _expected_display(kw), name
        sar = kw.get("sample_aspect_ratio", (1, 1))
        assert m["sample_aspect_ratio"] == f"{sar[0]}:{sar[1]}", name
        assert m["rotation"] % 360 == kw.get("rotation", 0) % 360, name
        assert m["pixel_format"] == kw.get("pix_fmt", "yuv420p"), name
        assert m["interlaced"] is bool(kw.get("interlaced")), name
        frames = len(kw["frame_times_s"]) if "frame_times_s" in kw else round(kw.get("duration_s", 1.0) * kw.get("fps", 25))
        assert m["video_frames"] == frames, name
        assert m["video_start_s"] == pytest.approx(kw.get("video_start_s", 0.0), abs=0.05), name
        if kw.get("speech"):
            layout = kw.get("audio_layout", "mono")
            assert m["has_audio"] and m["sample_rate"] == kw.get("audio_rate", 48000), name
            assert m["channels"] == {"mono": 1, "stereo": 2, "5.1": 6}[layout], name
            assert m["audio_start_s"] == pytest.approx(kw.get("audio_start_s", 0.0), abs=0.05), name
        else:
            assert not m["has_audio"] and m["audio_start_s"] is None, name
    for name, rate in AUDIO.items():
        m = media[name]
        assert (m["kind"], m["sample_rate"], m["channels"], m["width"]) == ("audio", rate, 1, None), name
    assert media["vfr.mkv"]["duration_s"] == pytest.approx(1.3 + 0.04, abs=0.05)


def test_keyframes_are_upright_at_the_display_aspect(formats):
    scenes = formats["rows"]("scenes")
    for name, kw in VIDEOS.items():
        for s in scenes[name]:
            img = np.asarray(Image.open(keyframe_path(s["keyframe_uri"])).convert("RGB")).astype(np.int32)
            kh, kw_ = img.shape[:2]
            dw, dh = _expected_display(kw)
            # The keyframe is the display picture, scaled down to 1280 on its long side at most.
            assert abs(kw_ / kh - dw / dh) <= (dw / dh) * 1.5 / min(kw_, kh), (name, (kw_, kh), (dw, dh))
            assert max(kw_, kh) == min(1280, max(dw, dh)), (name, kw_, kh)
            band = max(1, int(kh * 0.15 * 0.6))  # inside the marks' band, clear of its edge
            left = img[:band, int(kw_ * 0.1): max(int(kw_ * 0.1) + 1, int(kw_ * 0.4))].reshape(-1, 3).mean(0)
            right = img[:band, int(kw_ * 0.6): max(int(kw_ * 0.6) + 1, int(kw_ * 0.9))].reshape(-1, 3).mean(0)
            assert left[2] > left[0] + 80 and right[0] > right[2] + 80, (name, left, right)
            bottom = img[int(kh * 0.85):].reshape(-1, 3).mean(0)
            assert abs(bottom[0] - bottom[2]) < 60, f"{name}: the marks are not at the top ({bottom})"


def _combing(gray: np.ndarray, threshold: float = 20.0) -> int:
    """Pixels whose row differs from both rows around it the same way (the teeth of woven
    fields), counted between the orientation marks and the caption, where only the moving
    square is: the square's edges comb when its two fields are woven into one frame."""
    h = gray.shape[0]
    band = gray[int(h * 0.2):int(h * 0.55)].astype(np.float32)
    up, down = band[1:-1] - band[:-2], band[1:-1] - band[2:]
    return int((up * down > threshold * threshold).sum())


def test_interlaced_keyframes_show_one_field(formats):
    """The source frame at the keyframe's time combs (its square moved between the fields);
    the keyframe, made from one field, does not."""
    import av

    scenes, media = formats["rows"]("scenes"), formats["media"]
    for name in ("mpeg2_pal_interlaced.mkv", "h264_interlaced.mp4"):
        shot = scenes[name][0]
        with av.open(media[name]["source_uri"]) as c:
            woven = min(c.decode(video=0), key=lambda f: abs(f.time - shot["keyframe_s"]))
            assert woven.interlaced_frame, name
            woven = woven.to_ndarray(format="gray")
        key = np.asarray(Image.open(keyframe_path(shot["keyframe_uri"])).convert("L"))
        assert _combing(woven) >= 100, f"{name}: the test picture does not comb ({_combing(woven)})"
        assert _combing(key) <= _combing(woven) / 10, (name, _combing(key), _combing(woven))


def test_late_streams_keep_media_times(formats):
    """Times are from the media's start: a picture that starts 1 s in has its first scene at
    1 s, and speech that starts 2 s in is transcribed about 2 s later than speech at 0 s."""
    rows = formats["rows"]
    first_scene = min(rows("scenes")["video_late.mkv"], key=lambda s: s["scene_index"])
    assert first_scene["start_s"] == pytest.approx(1.0, abs=0.05)
    assert max(s["end_s"] for s in rows("scenes")["video_late.mkv"]) == pytest.approx(3.0, abs=0.1)
    segments = rows("transcript_segments")
    late = min(s["start_s"] for s in segments["audio_late.mp4"])
    on_time = min(s["start_s"] for s in segments["surround_51.mkv"])
    # Without the media-time shift both would start near 0; whisper base has put the late
    # one's start 0.4 to 0.8 s before its first word here.
    assert 1.0 <= late - on_time <= 2.6 and late <= 2.6, (late, on_time)
    assert json.loads(formats["media"]["audio_late.mp4"]["streams"])[1]["type"] == "audio"
