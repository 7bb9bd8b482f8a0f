"""The scenes stage on a real Dagster instance: shots found in generated videos with known
cuts (F1), upright keyframe JPEGs, VFR times, images, audio, one decode per video, reruns
that do nothing, and a video that breaks after ingest quarantined while the rest goes on."""

from __future__ import annotations

import io
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from dagster import AssetKey
from PIL import Image

from mediaintel_dagster.bench.scenes import f1
from mediaintel_dagster.definitions import build_defs
from mediaintel_dagster.instance import get_instance
from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource, ObjectStoreResource
from mediaintel_dagster.media.samples import Shot, make_audio, make_image, make_video

SIZE = (320, 180)
RED = (200, 40, 40)

# Several sources: every style, captions, a fade from black, static shots, similar colours.
CUT_VIDEOS = {
    "news.mp4": [Shot(1.6, "BREAKING NEWS", style="stripes", color=RED),
                 Shot(1.2, "CITY CENTER", style="checker", color=(30, 90, 200)),
                 Shot(1.8, "WEATHER", style="gradient", color=(240, 170, 30), fade_in_s=0.8),
                 Shot(1.4, None, style="circles", color=(40, 190, 70)),
                 Shot(1.5, "THANK YOU", style="noise", color=(120, 40, 160))],
    "studio.mkv": [Shot(1.5, None, style="bars", color=(20, 160, 170)),
                   Shot(2.0, "STILL", style="gradient", color=(90, 60, 30), static=True),
                   Shot(1.2, None, style="solid", color=(230, 230, 230)),
                   Shot(1.5, "LIVE", style="gradient", color=(200, 60, 40)),
                   Shot(1.5, "LIVE 2", style="gradient", color=(170, 80, 40)),  # a close colour
                   Shot(1.3, None, style="noise", color=(100, 100, 100), fade_in_s=0.5)],
}


def _reencode(src: Path, dst: Path, *, times_ms=None, rotation: int = 0) -> list[int]:
    """Decode ``src`` and write its frames again, at the given presentation times (ms) and
    with a display-matrix rotation. Returns the pts (ms) written."""
    with av.open(str(src)) as inp:
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    pts = list(times_ms) if times_ms is not None else [i * 40 for i in range(len(frames))]
    tb = Fraction(1, 1000)
    with av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.time_base = tb
        s.codec_context.time_base = tb
        s.options = {"preset": "veryfast", "crf": "23"}
        if rotation:
            s.set_display_rotation(rotation)
        for rgb, p in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = p, tb
            out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return pts


@pytest.fixture(scope="module")
def visual_media(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("visual")
    truth = {}
    for name, shots in CUT_VIDEOS.items():
        truth[name] = make_video(d / name, shots, size=SIZE)["cut_times_s"]
    truth["static.mp4"] = make_video(d / "static.mp4", [Shot(2.5, "NO CUT", style="checker", static=True)],
                                     size=SIZE)["cut_times_s"]
    # Variable frame rate: three 1 s shots (25 frames each) shown for 20, 80 and 40 ms a frame,
    # with the stream starting at 0.5 s. frame_index / fps would put the cuts at 1 s and 2 s.
    base = make_video(d / "vfr_src.mp4", [Shot(1.0, "A", style="checker", color=RED),
                                          Shot(1.0, "B", style="circles", color=(40, 190, 70)),
                                          Shot(1.0, "C", style="stripes", color=(30, 90, 200))], size=SIZE)
    gaps = [20] * 25 + [80] * 25 + [40] * 25
    pts = [500 + sum(gaps[:i]) for i in range(len(gaps))]
    _reencode(base["path"], d / "vfr.mkv", times_ms=pts)
    base["path"].unlink()
    truth["vfr.mkv"] = [(pts[25] - 500) / 1000, (pts[50] - 500) / 1000]  # 0.5 s and 2.5 s
    # A phone-style video: stored landscape, displayed rotated 90 degrees clockwise. The
    # "bars" style has a red band along the bottom of the stored picture.
    rot = make_video(d / "rot_src.mp4", [Shot(1.5, None, style="bars", color=RED)], size=SIZE)
    _reencode(rot["path"], d / "rotated.mp4", rotation=-90)
    rot["path"].unlink()
    truth["rotated.mp4"] = []
    make_image(d / "poster.png", "GRAND OPENING", size=(400, 240))
    make_audio(d / "speech.wav", "testing one two three")
    return {"dir": d, "truth": truth}


def _resources(home: Path) -> dict:
    return {"inbox": LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=0),
            "lake": LakehouseResource(root=str(home / "lake")),
            "objects": ObjectStoreResource(root=str(home / "objects"))}


def _run(home: Path, resources: dict, assets: list[str] | None = None):
    """Run the ingest job (or the named assets) for every window that holds inbox files."""
    instance = get_instance()
    job = build_defs(resources).resolve_job_def("ingest_job")
    windows = sorted({str(f.partition_key()) for f in resources["inbox"].list_files()})
    results = []
    for key in windows:
        res = job.execute_in_process(partition_key=key, instance=instance,
                                     asset_selection=[AssetKey(a) for a in assets] if assets else None)
        assert res.success
        results.append(res)
    return results


def _meta(results, name: str) -> list:
    return [e.materialization.metadata[name].value for r in results for e in r.get_asset_materialization_events()
            if e.asset_key.path == ["scenes"] and name in e.materialization.metadata]


@pytest.fixture
def open_spy(monkeypatch):
    """Every av.open of this process, by file name (probe opens file objects: named '<file>')."""
    opened: list[str] = []
    real = av.open

    def spy(file, *args, **kwargs):
        opened.append(Path(file).name if isinstance(file, (str, Path)) else "<file>")
        return real(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", spy)
    return opened


def _by_media(lake, inbox: Path) -> dict[str, list[dict]]:
    names = {r["media_id"]: Path(r["source_uri"]).name for r in lake.read("media").to_pylist()}
    out: dict[str, list[dict]] = {n: [] for n in names.values()}
    for r in lake.read("scenes").to_pylist():
        out[names[r["media_id"]]].append(r)
    return {n: sorted(rows, key=lambda r: r["scene_index"]) for n, rows in out.items()}


def test_scenes_cuts_keyframes_one_decode_and_noop_rerun(home, visual_media, open_spy):
    src = visual_media["dir"]
    for f in src.iterdir():
        shutil.copy2(f, home / "inbox" / f.name)
    resources = _resources(home)
    lake = resources["lake"]
    _run(home, resources, ["media", "media_sources"])
    open_spy.clear()
    results = _run(home, resources, ["scenes"])
    opened_by_scenes = list(open_spy)
    scenes = _by_media(lake, home / "inbox")
    media = {Path(r["source_uri"]).name: r for r in lake.read("media").to_pylist()}

    # Shots vs known cuts, every video together, +-0.3 s.
    truth = visual_media["truth"]
    tp = pred = true = 0
    for name, cuts in truth.items():
        found = [r["start_s"] for r in scenes[name][1:]]
        r = f1(found, cuts, tol=0.3)
        tp, pred, true = tp + r["tp"], pred + r["predicted"], true + r["truth"]
    precision, recall = tp / pred, tp / true
    assert 2 * precision * recall / (precision + recall) >= 0.95, (tp, pred, true)
    # The fade from black is one cut where the black starts, none during the fade; a static
    # shot is one scene; VFR cuts are at their real times, not frame_index / fps.
    fade_cut = truth["news.mp4"][1]
    assert [r for r in scenes["news.mp4"] if abs(r["start_s"] - fade_cut) < 1.0] \
        and min(abs(r["start_s"] - fade_cut) for r in scenes["news.mp4"]) <= 0.1
    assert len(scenes["news.mp4"]) == 5 and len(scenes["studio.mkv"]) == 6
    assert len(scenes["static.mp4"]) == 1
    vfr = scenes["vfr.mkv"]
    assert [round(r["start_s"], 3) for r in vfr] == [0.0, 0.5, 2.5]
    assert vfr[-1]["end_s"] == pytest.approx(3.5, abs=0.05)

    # Scenes tile each video; keyframes lie inside their scene, are JPEGs on disk at full
    # size (320x180 here), and their pHashes tell different shots apart.
    for name in truth:
        rows = scenes[name]
        assert rows[0]["start_s"] == 0.0
        assert all(a["end_s"] == b["start_s"] for a, b in zip(rows, rows[1:]))
        assert rows[-1]["end_s"] == pytest.approx(media[name]["duration_s"], abs=0.05)
        for r in rows:
            assert r["start_s"] <= r["keyframe_s"] < r["end_s"]
            img = Image.open(io.BytesIO(resources["objects"].get(r["keyframe_uri"])))
            assert img.format == "JPEG" and img.size == (r["keyframe_width"], r["keyframe_height"])
            assert Path(r["keyframe_uri"]) == home / "objects" / "keyframes" / r["media_id"] / f"{r['scene_index']}.jpg"
            assert len(r["phash"]) == 16 and r["code_version"] == "scenes@3"
            if name != "rotated.mp4":
                assert img.size == SIZE
        hashes = [r["phash"] for r in rows]
        assert len(set(hashes)) == len(hashes), name
    # The fade-in shot's keyframe is not a black frame of the fade.
    fade_row = min(scenes["news.mp4"], key=lambda r: abs(r["start_s"] - fade_cut))
    assert np.asarray(Image.open(fade_row["keyframe_uri"]).convert("L")).mean() > 60
    # ... and its row says how it begins: a fade from the black the cut went into.
    assert fade_row["transition"] == "fade" and fade_row["transition_start_s"] == pytest.approx(fade_cut, abs=0.05)
    assert fade_row["transition_end_s"] > fade_row["transition_start_s"] and fade_row["detector"]
    assert all(r["transition"] == "start" and r["transition_start_s"] is None
               for rows in scenes.values() for r in rows if r["scene_index"] == 0 and r["detector"] != "image")

    # Rotated video: the keyframe is upright (portrait), the stored bottom band now on the left.
    (rot,) = scenes["rotated.mp4"]
    img = np.asarray(Image.open(rot["keyframe_uri"]).convert("RGB")).astype(int)
    assert (rot["keyframe_width"], rot["keyframe_height"]) == (SIZE[1], SIZE[0])
    left = img[:, :6].mean(axis=(0, 1))
    assert left[0] > 150 and left[1] < 90 and left[2] < 90, left
    with av.open(str(home / "inbox" / "rotated.mp4")) as c:  # the stored (sideways) picture
        stored = next(f for f in c.decode(video=0) if abs(float(f.time) - rot["keyframe_s"]) < 1e-3)
        stored = stored.to_ndarray(format="rgb24").astype(int)
    clockwise, counter = np.rot90(stored, k=-1), np.rot90(stored, k=1)
    assert np.abs(img - clockwise).mean() < 8 < np.abs(img - counter).mean()

    # The image is one scene 0..0 whose keyframe is the image; audio has no scenes but an
    # audit row (rows=0) so it is not redone, and was never opened.
    (poster,) = scenes["poster.png"]
    assert (poster["start_s"], poster["end_s"], poster["keyframe_s"]) == (0.0, 0.0, 0.0)
    assert Image.open(poster["keyframe_uri"]).size == (400, 240)
    assert scenes["speech.wav"] == []
    audio_audit = [a for a in lake.read("audit_log").to_pylist()
                   if a["asset"] == "scenes" and a["media_id"] == media["speech.wav"]["media_id"]]
    assert [a["rows"] for a in audio_audit] == [0]

    # ONE decode per video: each video file was opened once (images via PIL, audio never),
    # and the stage decoded exactly the frames the media stage counted.
    videos = [n for n, m in media.items() if m["kind"] == "video"]
    assert sorted(opened_by_scenes) == sorted(videos)
    assert max(_meta(results, "decodes_per_video")) == 1
    assert sum(_meta(results, "decoder_opens")) == len(videos)
    assert sum(_meta(results, "frames_decoded")) == sum(media[n]["video_frames"] for n in videos)
    assert sum(_meta(results, "video_frames")) == sum(media[n]["video_frames"] for n in videos)

    # Rerun: nothing opened, nothing written.
    version = lake.version("scenes")
    open_spy.clear()
    again = _run(home, resources)
    assert not [n for n in open_spy if n in videos]
    assert lake.version("scenes") == version
    assert sum(_meta(again, "media_skipped_done")) == len(media)
    assert sum(_meta(again, "rows_written")) == 0


def test_video_broken_after_ingest_is_quarantined_and_the_rest_goes_on(home, visual_media):
    src = visual_media["dir"]
    for name in ("news.mp4", "static.mp4", "poster.png"):
        shutil.copy2(src / name, home / "inbox" / name)
    resources = _resources(home)
    lake = resources["lake"]
    _run(home, resources, ["media", "media_sources"])
    # The file is cut short after the media stage checked it (an overwrite in place).
    broken = home / "inbox" / "news.mp4"
    data = broken.read_bytes()
    stat = broken.stat()
    broken.write_bytes(data[: int(len(data) * 0.6)])
    os.utime(broken, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same window as before
    results = _run(home, resources, ["scenes"])

    q = [r for r in lake.read("quarantine").to_pylist() if r["stage"] == "scenes"]
    assert len(q) == 1 and q[0]["source_uri"] == str(broken)
    assert q[0]["error_type"] == "truncated" and "cut short" in q[0]["message"]
    scenes = _by_media(lake, home / "inbox")
    assert scenes["news.mp4"] == [] and len(scenes["static.mp4"]) == 1 and len(scenes["poster.png"]) == 1
    assert not (home / "objects" / "keyframes" / q[0]["media_id"]).exists()
    assert sum(_meta(results, "media_failed")) == 1
    # Not retried on the next run (the same bytes would fail the same way).
    again = _run(home, resources, ["scenes"])
    assert sum(_meta(again, "still_quarantined")) == 1


def test_fade_out_then_in_through_black_is_one_cut(tmp_path):
    """No spike anywhere (A fades to black, B fades in from black): one cut where B begins."""
    from mediaintel_dagster.media.shots import ScanStats, scan_video

    made = make_video(tmp_path / "src.mp4", [Shot(2.0, "A", style="checker", color=RED),
                                             Shot(2.0, "B", style="circles", color=(40, 190, 70), fade_in_s=0.8),
                                             Shot(1.5, "C", style="stripes")], size=SIZE)
    with av.open(str(made["path"])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for i in range(30, 50):  # the last 0.8 s of A fade out to black
        frames[i] = (frames[i].astype(float) * (49 - i) / 20).astype(np.uint8)
    out = tmp_path / "through_black.mp4"
    with av.open(str(out), "w") as o:
        s = o.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            o.mux(s.encode(frame))
        o.mux(s.encode(None))
    stats = ScanStats()
    shots = list(scan_video(str(out), stats=stats))
    assert f1([s.start_s for s in shots[1:]], made["cut_times_s"], tol=0.3)["f1"] == 1.0
    assert stats.decoder_opens == 1 and stats.frames_decoded == len(frames)
    for shot in shots:  # keyframes are lit frames, not the black of a fade
        img = Image.open(io.BytesIO(shot.keyframe_jpeg)).convert("L")
        assert np.asarray(img).mean() > 60


def test_object_store_local(tmp_path):
    store = ObjectStoreResource(root=str(tmp_path / "objects"))
    uri = store.put("keyframes/abc/0.jpg", b"jpeg bytes")
    assert uri == str(tmp_path / "objects" / "keyframes" / "abc" / "0.jpg") == store.uri("keyframes/abc/0.jpg")
    assert store.get(uri) == store.get("keyframes/abc/0.jpg") == b"jpeg bytes"
    assert store.exists("keyframes/abc/0.jpg") and not list((tmp_path / "objects" / "keyframes" / "abc").glob(".tmp-*"))
    with pytest.raises(ValueError):
        store.put("../outside.jpg", b"x")
    with pytest.raises(ValueError):
        store.get("/etc/passwd")
    store.delete_prefix("keyframes/abc")
    assert not store.exists("keyframes/abc/0.jpg")
    # s3:// roots: tests/test_s3.py (a local S3 server, over the real protocol)
