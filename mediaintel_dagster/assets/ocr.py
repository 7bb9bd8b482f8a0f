"""OCR stage: the text lines on every scene keyframe of the window's media -> `ocr_text`."""

import statistics
from collections import Counter

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from ..checks.stats import table_stats
from ..lake.schemas import to_arrow
from ..partitions import arrival_partitions
from ..resources.lakehouse import LakehouseResource
from ..resources.ocr import OcrResource
from .common import MODEL_RESOURCE_KEY, Stopwatch, quarantine_row, stage_data_version, stage_metadata
from .keyframes import KeyframeError, open_keyframe_bgr, plan_keyframe_work, write_keyframe_rows
from .stage_config import StageConfig

# Bump when what this stage writes changes (the word-space rule included): media done
# with an older version are redone.
OCR_CODE_VERSION = "ocr_text@1"
STAGE = "ocr_text"


class OcrConfig(StageConfig):
    """``force``: read every keyframe of the window again, even media already done."""


@asset(
    name="ocr_text",
    deps=["scenes"],
    partitions_def=arrival_partitions,
    code_version=OCR_CODE_VERSION,
    group_name="visual",
    kinds={"delta", "python"},
    # The OCR model's id joins the code version (a model change shows the asset stale).
    metadata={MODEL_RESOURCE_KEY: "ocr"},
)
def ocr_text(context: AssetExecutionContext, config: OcrConfig, lake: LakehouseResource,
             ocr: OcrResource) -> MaterializeResult:
    """One row per text line read on a scene keyframe (Delta table `ocr_text`): media_id,
    scene_index, line_index (top to bottom), text (with the spaces between words restored),
    raw_text (as the recogniser read it), confidence (0-1), box (4 corner points x0,y0..x3,y3
    in keyframe pixels), keyframe_s and model_id (RapidOCR PP-OCRv4 on ONNX Runtime).

    Reads the window's `scenes` rows and their keyframe JPEGs. A keyframe that is missing
    or not decodable gets a `quarantine` row and its media is retried on the next run;
    media already read with this code version and model are skipped.
    """
    clock = Stopwatch()
    model_id = ocr.model_id
    plan = plan_keyframe_work(context, lake, STAGE, code_version=OCR_CODE_VERSION, model_id=model_id,
                              force=config.force)
    media, done, work, waiting, scenes = plan.media, plan.done, plan.work, plan.waiting, plan.scenes

    rows: list[dict] = []
    bad: list[dict] = []
    ok_uris: list[str] = []
    per_media = Counter()
    failed_media: set[str] = set()
    keyframes = 0
    ocr_seconds = 0.0
    for n, m in enumerate(work, 1):
        mid = m["media_id"]
        for scene in scenes[mid]:
            uri = scene["keyframe_uri"]
            try:
                image = open_keyframe_bgr(uri)
                t = Stopwatch()
                lines = ocr.read(image)
                ocr_seconds += t.seconds
            except KeyframeError as err:
                bad.append(_quarantine(context, uri, mid, err.error_type, err.message))
                failed_media.add(mid)
                context.log.warning(f"quarantined keyframe {uri} of {mid}: {err.message}")
                continue
            except Exception as exc:  # an engine error on one image must not stop the run
                bad.append(_quarantine(context, uri, mid, "ocr_failed", f"{type(exc).__name__}: {exc}"))
                failed_media.add(mid)
                context.log.warning(f"quarantined keyframe {uri} of {mid}: OCR failed: {exc}")
                continue
            keyframes += 1
            ok_uris.append(uri)
            for i, line in enumerate(lines):
                rows.append({
                    "media_id": mid, "scene_index": scene["scene_index"], "line_index": i,
                    "text": line.text, "raw_text": line.raw_text, "confidence": line.confidence,
                    "box": line.box, "keyframe_s": scene["keyframe_s"], "model_id": model_id,
                })
                per_media[mid] += 1
        context.log.info(f"[{n}/{len(work)}] {mid}: {len(scenes[mid])} keyframe(s), {per_media[mid]} line(s)")

    written, version = write_keyframe_rows(
        context, lake, STAGE, "ocr_text", rows, plan=plan, key_suffix=(), per_media=per_media,
        failed_media=failed_media, bad=bad, ok_uris=ok_uris, code_version=OCR_CODE_VERSION, model_id=model_id)

    wall = clock.seconds
    confidences = [r["confidence"] for r in rows]
    by_media = {m["media_id"]: m for m in media}
    return MaterializeResult(data_version=stage_data_version(OCR_CODE_VERSION, model_id, [m["media_id"] for m in media]),
                             metadata=stage_metadata(
        window_media_count=len(media), processed=len(written), skipped_done=len(done), failed=len(failed_media),
        rows=len(rows), media_seconds=sum(by_media[mid].get("duration_s") or 0.0 for mid in written),
        wall_seconds=wall, delta_version=version if version is not None else lake.version("ocr_text"),
        model_id=model_id, cpu_seconds=clock.cpu_seconds, asset=STAGE, partition=context.partition_key,
        **table_stats("ocr_text", to_arrow("ocr_text", rows)),
        keyframes=keyframes,
        keyframes_per_second=round(keyframes / ocr_seconds, 2) if ocr_seconds > 0 else 0.0,
        lines_found=len(rows),
        mean_confidence=round(statistics.fmean(confidences), 4) if confidences else None,
        spaces_restored=sum(r["text"].count(" ") - r["raw_text"].count(" ") for r in rows),
        keyframes_quarantined=len(bad),
        quarantined_by_type=MetadataValue.json(dict(Counter(r["error_type"] for r in bad))),
        media_waiting_for_scenes=len(waiting),
        sample_lines=MetadataValue.json([r["text"] for r in rows[:10]]),
    ))


def _quarantine(context, uri: str, media_id: str, error_type: str, message: str) -> dict:
    return quarantine_row(context, STAGE, source_uri=uri, error_type=error_type, message=message,
                          code_version=OCR_CODE_VERSION, media_id=media_id)


__all__ = ["OCR_CODE_VERSION", "OcrConfig", "ocr_text"]
