"""Shot boundaries with their type and extent (media/transitions.py through media/shots.py):
dissolves, fades and wipes found with their frames, dark footage keeps its cuts, a flash is
not a cut, the network decides the stretches routed to it, a long changing shot gets more
than one keyframe, a caption shown only before a dissolve is read by the real scenes + OCR
stages, and every video is decoded once. Short generated clips at 192x108 (OCR: 384x216);
TransNetV2 is loaded once for the session."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from mediaintel_dagster.assets import media_assets, ocr_text, scenes
from mediaintel_dagster.media.samples import Shot
from mediaintel_dagster.media.shots import ScanStats, ShotParams, scan_video
from mediaintel_dagster.media.transition_samples import Join, make_transition_video
from mediaintel_dagster.media.transitions import CHEAP_ID, load_transnet, transnet_id
from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource, ObjectStoreResource, OcrResource
from conftest import window_of

FPS = 25


def _static(n: int, secs: float = 2.0) -> list[Shot]:
    looks = [("gradient", (200, 40, 40)), ("circles", (30, 90, 200)), ("bars", (240, 170, 30)),
             ("noise", (40, 190, 70)), ("checker", (120, 40, 160))]
    return [Shot(secs, None, style=s, color=c, static=True) for s, c in looks[:n]]


def _panning(n: int, secs: float = 2.0) -> list[Shot]:
    return [Shot(secs, None, style=s.style, color=s.color) for s in _static(n, secs)]


@pytest.fixture(scope="session")
def transnet():
    """TransNetV2 on the CPU, once for the session (the scan's own loader would cache it too)."""
    model = load_transnet("cpu")
    return lambda: model


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("transitions")
    return {
        "dissolve": make_transition_video(d / "dissolve.mp4", _static(3),
                                          [Join("dissolve", 1.0), Join("dissolve", 0.5)], fps=FPS),
        "wipe": make_transition_video(d / "wipe.mp4", _static(3), [Join("wipe", 1.0), Join("cut")], fps=FPS),
        "fade": make_transition_video(d / "fade.mp4", _panning(3), [Join("fade", 1.0), Join("fade", 0.6)], fps=FPS),
        "dark": make_transition_video(d / "dark.mp4", _panning(5, 1.2), [Join("cut")] * 4, fps=FPS,
                                      brightness=0.12),
        "darker": make_transition_video(d / "darker.mp4", _panning(5, 1.2), [Join("cut")] * 4, fps=FPS,
                                        brightness=0.06),
        "flash": make_transition_video(d / "flash.mp4", _panning(2), [Join("cut")], fps=FPS,
                                       flashes=[(15, 1), (70, 3)]),
        "pan_dissolve": make_transition_video(d / "pan_dissolve.mp4", _panning(2, 1.6), [Join("dissolve", 0.8)],
                                              fps=FPS),
    }


def _scan(made, mode="cheap", loader=None):
    stats = ScanStats()
    shots = list(scan_video(str(made["path"]), ShotParams(mode=mode), stats, model_loader=loader))
    # One decode per video, whatever the detector: the network reads frames of the same pass.
    assert stats.decoder_opens == 1 and stats.frames_decoded == made["frame_count"]
    return shots, stats


def _matches(shot, truth, tol=3):
    """The shot begins at the true boundary and its transition spans about the true frames."""
    return (abs(shot.start_frame - truth["frame"]) <= tol
            and abs(shot.transition_start_s - truth["start_s"]) <= tol / FPS
            and abs(shot.transition_end_s - truth["end_s"]) <= tol / FPS)


def test_dissolve_and_wipe_found_with_type_and_extent(clips):
    shots, stats = _scan(clips["dissolve"])
    truth = clips["dissolve"]["transitions"]
    assert [s.transition for s in shots] == ["start", "dissolve", "dissolve"]
    assert all(_matches(s, t) for s, t in zip(shots[1:], truth)), [(s.start_frame, s.transition_start_s,
                                                                    s.transition_end_s) for s in shots]
    assert all(s.detector == CHEAP_ID for s in shots) and stats.neural_frames == 0
    # Keyframes come from inside the shot, not from the blend.
    for s, t in zip(shots[1:], truth):
        assert not t["start_s"] <= s.keyframe_s <= t["end_s"]

    shots, _ = _scan(clips["wipe"])
    assert [s.transition for s in shots] == ["start", "wipe", "cut"]
    assert _matches(shots[1], clips["wipe"]["transitions"][0], tol=5)


def test_fade_through_black_found_with_extent(clips):
    shots, _ = _scan(clips["fade"])
    truth = clips["fade"]["transitions"]
    assert [s.transition for s in shots] == ["start", "fade", "fade"]
    assert all(_matches(s, t, tol=2) for s, t in zip(shots[1:], truth))
    # The new shot begins where the picture comes back; its keyframe is not black.
    assert all(s.start_frame == t["frame"] for s, t in zip(shots[1:], truth))


def test_dark_footage_keeps_its_cuts_and_a_flash_is_not_a_cut(clips):
    for name in ("dark", "darker"):
        shots, _ = _scan(clips[name])
        assert [s.start_frame for s in shots[1:]] == [t["frame"] for t in clips[name]["transitions"]], name
        assert {s.transition for s in shots[1:]} == {"cut"}
    # At 6 % brightness most cuts score below the full-contrast minimum: the threshold that
    # follows the footage's contrast is what keeps them.
    assert sum(s.cut_score < ShotParams().min_score for s in shots[1:]) >= 3

    shots, _ = _scan(clips["flash"])
    assert [(s.transition, s.start_frame) for s in shots[1:]] == [("cut", clips["flash"]["transitions"][0]["frame"])]


def test_routed_stretch_is_decided_by_transnetv2(clips, transnet):
    """A dissolve between two panning shots is no clean blend for the cheap fit: the stretch
    goes to the network, which finds it; the row says which detector decided."""
    made = clips["pan_dissolve"]
    (truth,) = made["transitions"]
    cheap, _ = _scan(made)
    assert len(cheap) == 1, "the cheap detector alone cannot settle it"
    shots, stats = _scan(made, "routed", transnet)
    assert [s.transition for s in shots] == ["start", "dissolve"]
    assert shots[1].detector == transnet_id() == "transnetv2@1.0.5"
    assert abs(shots[1].start_frame - truth["frame"]) <= 4
    assert shots[1].transition_start_s < truth["frame_s"] < shots[1].transition_end_s
    assert 0 < stats.neural_frames < made["frame_count"] and stats.mode == "routed"


def test_long_changing_shot_gets_more_than_one_keyframe(tmp_path):
    # One 5 s shot: the camera sweeps along a wide strip of colour bars (new colours come
    # into view); a static shot of the same length keeps one keyframe.
    moving = make_transition_video(tmp_path / "sweep.mp4", [Shot(5.0, None, style="bars", color=(20, 160, 170))],
                                   [], fps=FPS, fast=[0], speed=3)
    still = make_transition_video(tmp_path / "still.mp4", _static(1, 5.0), [], fps=FPS)
    (shot,), _ = _scan(moving)
    assert len(shot.extra_keyframes) >= 1
    times = sorted([shot.keyframe_s] + [e.t for e in shot.extra_keyframes])
    assert all(b - a >= ShotParams().extra_keyframe_gap_s - 1e-6 for a, b in zip(times, times[1:]))
    assert all(e.jpeg[:2] == b"\xff\xd8" for e in shot.extra_keyframes)
    (shot,), _ = _scan(still)
    assert shot.extra_keyframes == []


def test_caption_before_a_dissolve_is_read(home):
    """The real scenes + OCR stages: a captioned shot dissolves into an uncaptioned one; the
    caption is in `ocr_text`, the scenes row says how the second shot begins."""
    inbox = home / "inbox"
    shots = [Shot(2.0, "HARBOUR NEWS", style="gradient", color=(30, 90, 200), static=True),
             Shot(2.0, None, style="circles", color=(200, 120, 40), static=True)]
    made = make_transition_video(inbox / "harbour.mp4", shots, [Join("dissolve", 1.0)], size=(384, 216), fps=FPS)
    lake = LakehouseResource(root=str(home / "lake"))
    resources = {"lake": lake, "inbox": LocalInboxResource(roots=[str(inbox)], settle_seconds=0),
                 "objects": ObjectStoreResource(), "ocr": OcrResource()}
    res = materialize([media_assets, scenes, ocr_text], partition_key=window_of(made["path"]), resources=resources,
                      instance=DagsterInstance.ephemeral())
    assert res.success
    rows = sorted(lake.read("scenes").to_pylist(), key=lambda r: r["scene_index"])
    assert [r["transition"] for r in rows] == ["start", "dissolve"]
    (truth,) = made["transitions"]
    assert abs(rows[1]["start_s"] - truth["frame_s"]) <= 0.12
    assert rows[1]["transition_start_s"] <= truth["frame_s"] <= rows[1]["transition_end_s"]
    assert rows[0]["transition_start_s"] is None and rows[1]["detector"]
    texts = [(r["scene_index"], r["text"]) for r in lake.read("ocr_text").to_pylist()]
    assert (0, "HARBOUR NEWS") in texts
    assert all(t != "HARBOUR NEWS" or i == 0 for i, t in texts)
    meta = res.asset_materializations_for_node("scenes")[0].metadata
    assert meta["decodes_per_video"].value == 1
    ocr_meta = res.asset_materializations_for_node("ocr_text")[0].metadata
    assert ocr_meta["keyframes"].value >= 2
