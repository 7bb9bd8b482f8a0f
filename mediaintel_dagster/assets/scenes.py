"""Stage 2 (visual): shots, keyframes and perceptual hashes of the window's videos and images."""

import os
from collections import Counter

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset
from pydantic import Field

from ..partitions import arrival_partitions
from ..probe import MediaError
from ..resources import LakehouseResource
from ..resources.objects import ObjectStoreResource
from ..shots import ScanStats, ShotParams, image_keyframe, scan_video
from .common import (Stopwatch, audit_entry, done_media, quarantine_and_audit, quarantine_row, quarantined_media,
                     stage_data_version, stage_metadata, window_media)
from .stage_config import StageConfig

# Bump when what this stage writes changes: media done with an older version are redone.
SCENES_CODE_VERSION = "scenes@1"
STAGE = "scenes"
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

    def params(self) -> ShotParams:
        return ShotParams(min_score=self.min_score, ratio=self.ratio, min_scene_s=self.min_scene_s,
                          keyframe_max_side=self.keyframe_max_side, jpeg_quality=self.jpeg_quality)


def keyframe_key(media_id: str, scene_index: int) -> str:
    return f"keyframes/{media_id}/{scene_index}.jpg"


@asset(
    name="scenes",
    deps=[AssetKey("media")],
    partitions_def=arrival_partitions,
    code_version=SCENES_CODE_VERSION,
    group_name="visual",
    kinds={"delta", "python"},
    description=(
        "One row per detected shot of each video (media_id, scene_index, start_s/end_s in seconds from the "
        "start of the stream, keyframe_s), with a representative keyframe per shot saved as an upright JPEG in "
        "the object store (keyframe_uri, keyframes/<media_id>/<scene_index>.jpg, up to 1280 px on the long "
        "side) and its perceptual hash (phash, 16 hex digits). An image is one scene (0..0) whose keyframe is "
        "the image; audio has no scenes. Each video is decoded once for detection, keyframes and hashes. "
        "Delta table `scenes`."
    ),
)
def scenes(context: AssetExecutionContext, config: ScenesConfig, lake: LakehouseResource,
           objects: ObjectStoreResource) -> MaterializeResult:
    """Cut the window's videos into shots and save a keyframe per shot (see the description)."""
    clock = Stopwatch()
    params = config.params()
    detector = params.detector
    media = window_media(lake, context.partition_key, columns=[
        "media_id", "source_uri", "kind", "has_video", "duration_s", "video_frames"])
    ids = [m["media_id"] for m in media]
    done = set() if config.force else done_media(lake, STAGE, ids, code_version=SCENES_CODE_VERSION,
                                                   model_id=detector)
    # A media this code already failed on is not retried: new bytes are a new media_id.
    stuck = set() if config.force else quarantined_media(lake, STAGE, ids, code_version=SCENES_CODE_VERSION)

    rows: list[dict] = []
    written: dict[str, int] = {}  # media_id -> rows
    empty: list[dict] = []  # audio-only: nothing to cut, recorded so it is not redone
    bad: list[dict] = []
    stats = Counter()
    opens: dict[str, int] = {}
    todo = [m for m in media if m["media_id"] not in done and m["media_id"] not in stuck]
    for n, m in enumerate(todo, 1):
        mid, src = m["media_id"], m["source_uri"]
        label = f"[{n}/{len(todo)}] {os.path.basename(src)}"
        if m["kind"] == "audio" or (m["kind"] != "image" and not m["has_video"]):
            empty.append(m)  # never opened
            continue
        objects.delete_prefix(f"keyframes/{mid}")  # a forced rerun may find fewer shots
        scan = ScanStats()
        try:
            if m["kind"] == "image":
                shot = image_keyframe(_local(src), params)
                objects.put(keyframe_key(mid, 0), shot.keyframe_jpeg)
                shots = [shot]
                stats["images"] += 1
            else:
                shots = []
                watch = Stopwatch()
                for shot in scan_video(_local(src), params, scan):
                    objects.put(keyframe_key(mid, shot.index), shot.keyframe_jpeg)
                    shot.keyframe_jpeg = b""  # written; do not hold every JPEG of a long video
                    shots.append(shot)
                expected = m["video_frames"] or 0
                if expected and scan.frames_decoded < expected * 0.98 - 1:
                    raise MediaError(
                        "truncated",
                        f"{os.path.basename(src)}: decoding ended after {scan.frames_decoded} of the "
                        f"{expected} frames the media stage counted: the file was cut short or changed "
                        "after it was ingested.")
                opens[mid] = scan.decoder_opens
                stats["scan_seconds"] += watch.seconds
                stats["frames_decoded"] += scan.frames_decoded
                stats["video_frames"] += expected
                stats["videos"] += 1
                stats["media_seconds"] += m["duration_s"] or scan.duration_s
        except Exception as exc:  # noqa: BLE001 - one bad media must not stop the window
            err = exc if isinstance(exc, MediaError) else MediaError(
                "decode_error", f"{os.path.basename(src)}: {exc.__class__.__name__}: {exc}")
            objects.delete_prefix(f"keyframes/{mid}")
            bad.append(quarantine_row(context, STAGE, source_uri=src, error_type=err.error_type,
                                      message=err.message, code_version=SCENES_CODE_VERSION, media_id=mid))
            context.log.warning(f"{label}: quarantined: {err.message}")
            continue
        for shot in shots:
            rows.append({
                "media_id": mid, "scene_index": shot.index, "start_s": shot.start_s, "end_s": shot.end_s,
                "keyframe_s": shot.keyframe_s, "keyframe_uri": objects.uri(keyframe_key(mid, shot.index)),
                "phash": shot.phash,
                "code_version": SCENES_CODE_VERSION, "start_frame": shot.start_frame,
                "frame_count": shot.frame_count, "keyframe_width": shot.keyframe_width,
                "keyframe_height": shot.keyframe_height, "cut_score": shot.cut_score,
                "detector": "image" if m["kind"] == "image" else detector,
            })
        written[mid] = len(shots)
        context.log.info(f"{label}: {len(shots)} scene(s)"
                         + (f", {scan.frames_decoded} frames decoded once" if scan.decoder_opens else ""))

    version = None
    # Media that failed lose rows an earlier run wrote (their keyframes are gone too).
    replaced = sorted(set(written) | {r["media_id"] for r in bad})
    if replaced:
        version = lake.replace("scenes", rows, keys=[(mid,) for mid in replaced])
    audit = [audit_entry(context, STAGE, "scenes", mid, code_version=SCENES_CODE_VERSION, rows=count,
                         delta_version=version, model_id=detector) for mid, count in sorted(written.items())]
    audit += [audit_entry(context, STAGE, "scenes", m["media_id"], code_version=SCENES_CODE_VERSION, rows=0,
                          delta_version=version, model_id=detector) for m in empty]
    audit += quarantine_and_audit(context, lake, STAGE, bad, code_version=SCENES_CODE_VERSION, model_id=detector)
    lake.audit(audit)

    wall = clock.seconds
    scan_s = stats["scan_seconds"]
    return MaterializeResult(data_version=stage_data_version(SCENES_CODE_VERSION, detector, ids), metadata=stage_metadata(
        window_media_count=len(media), processed=len(written) + len(empty), skipped_done=len(done),
        failed=len(bad), rows=len(rows), media_seconds=stats["media_seconds"], wall_seconds=wall,
        delta_version=version if version is not None else lake.version("scenes"), model_id=detector,
        cpu_seconds=clock.cpu_seconds, asset=STAGE, partition=context.partition_key,
        still_quarantined=len(stuck),
        videos_decoded=stats["videos"],
        images=stats["images"],
        audio_only=len(empty),
        # The one-decode proof: every decoded video was opened once, and decoded as many
        # frames as the media stage counted packets.
        decodes_per_video=max(opens.values(), default=0),
        decoder_opens=sum(opens.values()),
        frames_decoded=stats["frames_decoded"],
        video_frames=stats["video_frames"],
        decode_frames_per_second=round(stats["frames_decoded"] / scan_s, 1) if scan_s else 0.0,
        keyframes_written=len(rows),
        quarantined_by_type=MetadataValue.json(dict(Counter(r["error_type"] for r in bad))),
    ))


def _local(uri: str) -> str:
    return uri.removeprefix("file://")
