"""OCR of keyframes: RapidOCR reads generated captions, word spaces come back, the stage
writes `ocr_text` through a real Dagster run, skips done media and quarantines bad keyframes."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pyarrow.dataset as pads
import pytest
from dagster import DagsterInstance, materialize
from PIL import Image

from mediaintel_dagster.assets import media_assets, ocr_text
from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource, OcrResource
from mediaintel_dagster.resources.ocr import restore_spaces
from mediaintel_dagster.media.samples import Shot, make_audio, make_image, make_video
from conftest import window_of

from mediaintel_dagster.assets import scenes
from mediaintel_dagster.resources import ObjectStoreResource


@pytest.fixture(scope="module")
def ocr():
    return OcrResource()


def _bgr(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1].copy()


def _video_frames(path, every: int = 10, offset: int = 5) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for i, f in enumerate(c.decode(video=0)) if i % every == offset]


def test_words_come_back_with_spaces(ocr, tmp_path):
    # Stills: the recogniser reads "GRANDOPENINGSATURDAY"; the restored line has the words.
    line, = ocr.read(_bgr(make_image(tmp_path / "a.jpg", "GRAND OPENING SATURDAY", size=(640, 360))))
    assert line.raw_text.replace(" ", "") == "GRANDOPENINGSATURDAY"
    assert line.text == "GRAND OPENING SATURDAY"
    assert line.spaces_added >= 1 and 0.6 <= line.confidence <= 1.0
    assert len(line.box) == 8 and max(line.box[0::2]) <= 640 and max(line.box[1::2]) <= 360

    two = ocr.read(_bgr(make_image(tmp_path / "b.jpg", "GRAND OPENING\nSATURDAY", size=(960, 540),
                                   background=(250, 240, 220))))
    assert [x.text for x in two] == ["GRAND OPENING", "SATURDAY"], "two lines, top to bottom"

    # Burned-in video captions at two sizes, on patterned backgrounds.
    shots = [Shot(1.0, "BREAKING NEWS", style="stripes", color=(200, 30, 30)),
             Shot(1.0, "WEATHER TODAY", style="gradient", color=(240, 170, 30)),
             Shot(1.0, "INTERNATIONAL", style="circles", color=(40, 190, 70))]
    for size in [(640, 360), (1280, 720)]:
        make_video(tmp_path / "v.mp4", shots, size=size, fps=10)
        frames = _video_frames(tmp_path / "v.mp4")
        got = [[x for x in ocr.read(f)] for f in frames]
        assert [[x.text for x in lines] for lines in got] == [["BREAKING NEWS"], ["WEATHER TODAY"], ["INTERNATIONAL"]], size
    # (With the default box margin the recogniser reads these captions' spaces itself; the
    # still above is the one whose spaces only the gap rule puts back.)


def test_restore_spaces_leaves_other_lines_alone():
    gray = np.full((60, 300), 255, np.uint8)
    box = [[0, 0], [300, 0], [300, 60], [0, 60]]
    chars = list("AB")  # too short to judge
    assert restore_spaces(gray, box, chars, [box, box]) == ("AB", 0)
    chars = list("ABCD")  # boxes that do not match the characters: as recognised
    assert restore_spaces(gray, box, chars, [box] * 3) == ("ABCD", 0)
    tall = [[0, 0], [40, 0], [40, 300], [0, 300]]  # vertical text
    assert restore_spaces(np.full((300, 40), 255, np.uint8), tall, chars, [tall] * 4) == ("ABCD", 0)


def _run(home, files, resources, force=False):
    results = []
    for window in sorted({window_of(f) for f in files}):
        run_config = {"ops": {"ocr_text": {"config": {"force": True}}}} if force else None
        res = materialize([media_assets, scenes, ocr_text], partition_key=window, resources=resources,
                          instance=DagsterInstance.ephemeral(), run_config=run_config)
        assert res.success
        results.append(res.asset_materializations_for_node("ocr_text")[0].metadata)
    return results


def _sum(metas, key):
    return sum(m[key].value for m in metas if key in m)


def test_ocr_text_stage(home, tmp_path):
    inbox = home / "inbox"
    make_video(inbox / "news.mp4", [Shot(1.0, "BREAKING NEWS", style="stripes", color=(200, 30, 30)),
                                    Shot(1.0, "WEATHER TODAY", style="checker", color=(30, 90, 200))],
               size=(640, 360))
    make_image(inbox / "poster.jpg", "GRAND OPENING SATURDAY", size=(640, 360))
    make_audio(inbox / "speech.wav", "no pictures here")
    files = sorted(inbox.iterdir())
    lake = LakehouseResource(root=str(home / "lake"))
    ocr = OcrResource()
    resources = {"lake": lake, "inbox": LocalInboxResource(roots=[str(inbox)], settle_seconds=0),
                 "objects": ObjectStoreResource(), "ocr": ocr}

    metas = _run(home, files, resources)
    rows = lake.read("ocr_text").to_pylist()
    media = {r["source_uri"].rsplit("/", 1)[1]: r["media_id"] for r in lake.read("media").to_pylist()}
    by_media = {name: sorted((r["scene_index"], r["line_index"], r["text"]) for r in rows if r["media_id"] == mid)
                for name, mid in media.items()}
    assert by_media["news.mp4"] == [(0, 0, "BREAKING NEWS"), (1, 0, "WEATHER TODAY")]
    assert by_media["poster.jpg"] == [(0, 0, "GRAND OPENING SATURDAY")]
    assert by_media["speech.wav"] == []
    assert all(r["model_id"] == ocr.model_id and r["model_id"].startswith("rapidocr-onnxruntime/") for r in rows)
    assert all(0.6 <= r["confidence"] <= 1.0 and len(r["box"]) == 8 for r in rows)
    scene_t = {(r["media_id"], r["scene_index"]): r["keyframe_s"] for r in lake.read("scenes").to_pylist()}
    assert all(r["keyframe_s"] == scene_t[(r["media_id"], r["scene_index"])] for r in rows)
    assert _sum(metas, "lines_found") == 3 and _sum(metas, "keyframes") == 3
    assert _sum(metas, "media_processed") == 3, "the audio media is done too, with zero rows"
    assert all(0.6 <= m["mean_confidence"].value <= 1 for m in metas if "mean_confidence" in m)
    audit = lake.read("audit_log", filter=pads.field("asset") == "ocr_text").to_pylist()
    assert sorted((r["media_id"], r["rows"], r["status"]) for r in audit) == sorted(
        [(media["news.mp4"], 2, "written"), (media["poster.jpg"], 1, "written"), (media["speech.wav"], 0, "written")])
    assert {r["model_id"] for r in audit} == {ocr.model_id}

    # A rerun reads nothing again and leaves the table as it was.
    version = lake.version("ocr_text")
    metas = _run(home, files, resources)
    assert _sum(metas, "media_skipped_done") == 3 and _sum(metas, "media_processed") == 0
    assert lake.version("ocr_text") == version

    # A broken keyframe: quarantined, the media's other keyframe and the other media stay.
    news_frames = sorted((home / "objects" / "keyframes" / media["news.mp4"]).glob("*.jpg"))
    assert len(news_frames) == 2
    scenes_before = lake.read("scenes").to_pylist()

    data = news_frames[1].read_bytes()
    news_frames[1].write_bytes(data[: len(data) // 3])  # a truncated JPEG
    # OCR alone, on the recorded scenes (a forced scenes run would rewrite the keyframe).
    window = window_of(inbox / "news.mp4")
    res = materialize([ocr_text], partition_key=window, resources=resources, instance=DagsterInstance.ephemeral(),
                      run_config={"ops": {"ocr_text": {"config": {"force": True}}}})
    assert res.success, "one bad keyframe does not fail the run"
    meta = res.asset_materializations_for_node("ocr_text")[0].metadata
    assert meta["keyframes_quarantined"].value == 1 and meta["media_failed"].value == 1
    q = lake.read("quarantine", filter=pads.field("stage") == "ocr_text").to_pylist()
    assert [(r["source_uri"], r["error_type"], r["media_id"]) for r in q] == [
        (str(news_frames[1]), "unreadable_keyframe", media["news.mp4"])]
    texts = {r["text"] for r in lake.read("ocr_text").to_pylist()}
    assert "BREAKING NEWS" in texts and "GRAND OPENING SATURDAY" in texts and "WEATHER TODAY" not in texts
    assert lake.read("scenes").to_pylist() == scenes_before

    # The media is not done: the next plain run retries it, and with the keyframe back it
    # is read whole and leaves quarantine.
    shutil.copy2(news_frames[0], news_frames[1])
    res = materialize([ocr_text], partition_key=window, resources=resources, instance=DagsterInstance.ephemeral())
    meta = res.asset_materializations_for_node("ocr_text")[0].metadata
    assert meta["media_processed"].value == 1 and meta["keyframes_quarantined"].value == 0
    assert lake.read("quarantine", filter=pads.field("stage") == "ocr_text").num_rows == 0
    news_rows = [r for r in lake.read("ocr_text").to_pylist() if r["media_id"] == media["news.mp4"]]
    assert sorted(r["text"] for r in news_rows) == ["BREAKING NEWS", "BREAKING NEWS"]


def test_missing_keyframe_is_quarantined(home):
    inbox = home / "inbox"
    make_image(inbox / "a.png", "CITY CENTER", size=(320, 180))
    lake = LakehouseResource(root=str(home / "lake"))
    resources = {"lake": lake, "inbox": LocalInboxResource(roots=[str(inbox)], settle_seconds=0),
                 "objects": ObjectStoreResource(),
                 "ocr": OcrResource()}
    window = window_of(inbox / "a.png")
    materialize([media_assets, scenes], partition_key=window, resources=resources,
                instance=DagsterInstance.ephemeral())
    (kf,) = lake.read("scenes").column("keyframe_uri").to_pylist()
    shutil.rmtree(home / "objects")
    res = materialize([ocr_text], partition_key=window, resources=resources, instance=DagsterInstance.ephemeral())
    assert res.success
    (q,) = lake.read("quarantine", filter=pads.field("stage") == "ocr_text").to_pylist()
    assert (q["source_uri"], q["error_type"]) == (kf, "missing_keyframe")
    assert lake.read("ocr_text").num_rows == 0


def test_rows_follow_scenes_into_quarantine(home):
    """A forced scenes rescan that finds the video cut short removes its shots; the OCR rows
    read from those shots go too (not left describing keyframes that no longer exist)."""
    inbox = home / "inbox"
    make_video(inbox / "news.mp4", [Shot(1.0, "BREAKING NEWS", style="stripes", color=(200, 30, 30)),
                                    Shot(1.0, "WEATHER TODAY", style="checker", color=(30, 90, 200))],
               size=(320, 180))
    lake = LakehouseResource(root=str(home / "lake"))
    resources = {"lake": lake, "inbox": LocalInboxResource(roots=[str(inbox)], settle_seconds=0),
                 "objects": ObjectStoreResource(), "ocr": OcrResource()}
    window = window_of(inbox / "news.mp4")
    res = materialize([media_assets, scenes, ocr_text], partition_key=window, resources=resources,
                      instance=DagsterInstance.ephemeral())
    assert res.success and lake.read("ocr_text").num_rows == 2
    (mid,) = lake.read("media").column("media_id").to_pylist()

    data = (inbox / "news.mp4").read_bytes()
    (inbox / "news.mp4").write_bytes(data[: int(len(data) * 0.6)])  # damaged after ingest
    res = materialize([scenes, ocr_text], partition_key=window, resources=resources,
                      instance=DagsterInstance.ephemeral(), run_config={"ops": {"scenes": {"config": {"force": True}}}})
    assert res.success
    assert lake.read("scenes").num_rows == 0
    assert [(r["stage"], r["media_id"]) for r in lake.read("quarantine").to_pylist()] == [("scenes", mid)]
    assert lake.read("ocr_text").num_rows == 0, "rows of the withdrawn shots are removed"
    last = max(lake.read("audit_log", filter=pads.field("asset") == "ocr_text").to_pylist(), key=lambda r: r["at"])
    assert (last["media_id"], last["rows"], last["status"]) == (mid, 0, "written")
    # Nothing left to do until scenes writes the media again.
    res = materialize([ocr_text], partition_key=window, resources=resources, instance=DagsterInstance.ephemeral())
    assert res.asset_materializations_for_node("ocr_text")[0].metadata["media_skipped_done"].value == 1


def test_recognition_runs_only_where_text_is_detected(ocr, tmp_path):
    """A keyframe without text costs one detector pass: no classifier, no recogniser."""
    blank = np.full((216, 384, 3), 90, np.uint8)
    assert ocr.read_counted(blank) == ([], False)
    lines, recognised = ocr.read_counted(_bgr(make_image(tmp_path / "c.jpg", "CITY CENTER", size=(384, 216))))
    assert recognised and [x.text for x in lines] == ["CITY CENTER"]
