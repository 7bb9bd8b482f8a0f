"""Scenes stage: shots, keyframes and perceptual hashes of the window's videos and images."""

# No `from __future__ import annotations`: Dagster reads the config class's annotations.

import os

from dagster import AssetSpec
from pydantic import Field

from ..media.errors import ErrorCode, MediaError
from ..media.shots import ScanStats, ShotParams, image_keyframe, scan_video
from .stage import Outcome, Stage, StageRun, Stopwatch
from .stage_config import StageConfig

_DEFAULTS = ShotParams()


class ScenesConfig(StageConfig):
    """Shot detection settings; changing one changes the detector id, so the media are redone."""

    min_score: float = Field(default=_DEFAULTS.min_score,
                             description="Mean absolute YUV difference (0-255) a cut must reach.")
    ratio: float = Field(default=_DEFAULTS.ratio,
                         description="A cut's score over the mean score of its neighbouring frames.")
    min_scene_s: float = Field(default=_DEFAULTS.min_scene_s, description="Shortest shot, in seconds.")
    keyframe_max_side: int = Field(default=_DEFAULTS.keyframe_max_side,
                                   description="Keyframes keep full size up to this many pixels on the long side.")
    jpeg_quality: int = Field(default=_DEFAULTS.jpeg_quality, description="Keyframe JPEG quality.")
    detector_mode: str = Field(
        default=_DEFAULTS.mode,
        description=("'auto' (TransNetV2 on every frame on a GPU, only on the stretches the cheap detector cannot "
                     "settle on a CPU), 'routed', 'neural' or 'cheap' (never the network)."))
    extra_keyframes: int = Field(default=_DEFAULTS.extra_keyframes,
                                 description="At most this many keyframes per shot beyond the representative one.")

    def params(self) -> ShotParams:
        return ShotParams(min_score=self.min_score, ratio=self.ratio, min_scene_s=self.min_scene_s,
                          keyframe_max_side=self.keyframe_max_side, jpeg_quality=self.jpeg_quality,
                          mode=self.detector_mode, extra_keyframes=self.extra_keyframes)


def keyframe_key(media_id: str, scene_index: int, extra: int = 0) -> str:
    """keyframes/<media_id>/<scene_index>.jpg for the representative keyframe,
    <scene_index>_<n>.jpg for the shot's n-th extra one."""
    return f"keyframes/{media_id}/{scene_index}.jpg" if not extra else f"keyframes/{media_id}/{scene_index}_{extra}.jpg"


def scenes_of(run: StageRun, m: dict) -> Outcome:
    """One media's shots; each keyframe goes to the object store as it is found."""
    objects = run.resource("objects")
    mid, src = m["media_id"], m["source_uri"]
    if m["kind"] == "audio" or (m["kind"] != "image" and not m["has_video"]):
        run.stats["audio_only"] += 1
        return Outcome(mid, note="no picture")  # never opened
    params = run.config.params()
    objects.delete_prefix(f"keyframes/{mid}")  # a forced rerun may find fewer shots
    scan = ScanStats()
    try:
        if m["kind"] == "image":
            shots = [image_keyframe(_local(m), params)]
            objects.put(keyframe_key(mid, 0), shots[0].keyframe_jpeg)
            run.stats["images"] += 1
        else:
            shots, watch = [], Stopwatch()
            for shot in scan_video(_local(m), params, scan):
                objects.put(keyframe_key(mid, shot.index), shot.keyframe_jpeg)
                shot.keyframe_jpeg = b""  # written; do not hold every JPEG of a long video
                for n, extra in enumerate(shot.extra_keyframes, 1):
                    objects.put(keyframe_key(mid, shot.index, n), extra.jpeg)
                    extra.jpeg = b""
                shots.append(shot)
            expected = m["video_frames"] or 0
            if expected and scan.frames_decoded < expected * 0.98 - 1:
                raise MediaError(
                    ErrorCode.TRUNCATED,
                    f"{os.path.basename(src)}: decoding ended after {scan.frames_decoded} of the {expected} "
                    "frames the media stage counted: the file was cut short or changed after it was ingested.")
            run.stats["scan_seconds"] += watch.seconds
            run.stats["frames_decoded"] += scan.frames_decoded
            run.stats["video_frames"] += expected
            run.stats["videos_decoded"] += 1
            run.stats["decoder_opens"] += scan.decoder_opens
            run.stats["neural_frames"] += scan.neural_frames
            run.stats["routed_stretches"] += scan.routed_stretches
            if scan.neural_frames:
                from ..media.transitions import gpu_available

                run.metadata["transnet_device"] = "cuda" if gpu_available() else "cpu"
            run.metadata["detector_mode"] = scan.mode
            # The one-decode proof: every decoded video was opened once.
            run.metadata["decodes_per_video"] = max(run.metadata.get("decodes_per_video", 0), scan.decoder_opens)
    except BaseException:
        objects.delete_prefix(f"keyframes/{mid}")  # no keyframes of a media without scenes rows
        raise
    image = m["kind"] == "image"
    rows = [{
        "media_id": mid, "scene_index": s.index, "start_s": s.start_s, "end_s": s.end_s,
        "keyframe_s": s.keyframe_s, "keyframe_uri": objects.uri(keyframe_key(mid, s.index)), "phash": s.phash,
        "code_version": SCENES.code_version, "start_frame": s.start_frame, "frame_count": s.frame_count,
        "keyframe_width": s.keyframe_width, "keyframe_height": s.keyframe_height, "cut_score": s.cut_score,
        # How the shot begins and which detector decided it (an image: 'image').
        "detector": "image" if image else s.detector, "transition": None if image else s.transition,
        "transition_start_s": s.transition_start_s, "transition_end_s": s.transition_end_s,
        "extra_keyframe_s": [e.t for e in s.extra_keyframes],
        "extra_keyframe_uris": [objects.uri(keyframe_key(mid, s.index, n)) for n in range(1, len(s.extra_keyframes) + 1)],
    } for s in shots]
    run.stats["keyframes_written"] += len(rows) + sum(len(s.extra_keyframes) for s in shots)
    return Outcome(mid, rows=rows, media_seconds=(m["duration_s"] or scan.duration_s) if scan.decoder_opens else 0.0,
                   note=f"{scan.frames_decoded} frames decoded once" if scan.decoder_opens else "")


SCENE_COLUMNS = ["media_id", "scene_index", "start_s", "end_s", "keyframe_s", "keyframe_uri", "extra_keyframe_s",
                 "extra_keyframe_uris"]


def scenes_by_media(lake, media_ids: list[str]) -> dict[str, list[dict]]:
    """The `scenes` rows of these media (one read), grouped by media, in scene order: what
    the keyframe stages (OCR, image embeddings) read."""
    out: dict[str, list[dict]] = {}
    for row in lake.read_keys("scenes", "media_id", media_ids, columns=SCENE_COLUMNS).to_pylist():
        out.setdefault(row["media_id"], []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r["scene_index"])
    return out


def summarize(run: StageRun, rows) -> dict:
    scan_s = run.stats.pop("scan_seconds", 0.0)
    out = {"decode_frames_per_second": round(run.stats["frames_decoded"] / scan_s, 1) if scan_s else 0.0}
    run.extra_results["keyframes"] = {"keyframes_written": run.stats["keyframes_written"],
                                      "root": run.resource("objects").root}
    return out


def _local(m: dict) -> str:
    # file:// URIs of non-UTF-8 names decode to their bytes; a source that vanished or became
    # a FIFO since ingest raises its MediaError here instead of hanging the decoder; an s3://
    # one this pod has no staged copy of is fetched, checked against the media's SHA-256.
    from ..media.files import source_path

    return source_path(m["source_uri"], m.get("sha256"))


KEYFRAMES = AssetSpec(
    "keyframes", group_name="visual", kinds={"file"},
    description=("Upright JPEGs in the object store, up to 1280 px on the long side, written by the scenes step "
                 "from the same single decode: one representative per shot (keyframes/<media_id>/<scene_index>.jpg, "
                 "the `scenes` row's keyframe_uri, which image embeddings read) and, for a shot whose picture "
                 "changes, up to 4 more (<scene_index>_<n>.jpg, extra_keyframe_uris). OCR reads them all."),
)

SCENES = Stage(
    name="scenes", table="scenes", code_version="scenes@3", group="visual",
    description=(
        "One row per detected shot of each video (media_id, scene_index, start_s/end_s in seconds from the "
        "start of the stream, keyframe_s), with a representative keyframe per shot saved as an upright JPEG in "
        "the object store (keyframe_uri, keyframes/<media_id>/<scene_index>.jpg, up to 1280 px on the long "
        "side) and its perceptual hash (phash, 16 hex digits). How each shot begins: transition ('cut', "
        "'dissolve', 'fade' or 'wipe'; 'start' for the first shot) with transition_start_s/transition_end_s (its "
        "first and last frame), and detector (which detector decided it: the cheap adaptive YUV-difference one, "
        "or TransNetV2 on the stretches routed to it, on every frame on a GPU). A shot whose picture changes "
        "has extra keyframes (extra_keyframe_s, extra_keyframe_uris) for OCR. An image is one scene (0..0) "
        "whose keyframe is the image; audio has no scenes. Each video is decoded once for detection, keyframes "
        "and hashes. Delta table `scenes`."
    ),
    compute=scenes_of, resources=("objects",), config=ScenesConfig,
    config_model=lambda config: config.params().detector,
    media_columns=("media_id", "source_uri", "sha256", "kind", "has_video", "duration_s", "video_frames"),
    summarize=summarize, also=(KEYFRAMES,),
    # TransNetV2 runs on every frame when a GPU is there ('auto'): a GPU step (pool "gpu", a GPU pod).
    gpu=True,
)
SCENES_CODE_VERSION = SCENES.code_version
scenes = SCENES.asset()
