"""OCR stage: the text lines on every scene keyframe of the window's media -> `ocr_text`."""

import statistics

from dagster import MetadataValue

from ..media.errors import ErrorCode, MediaError
from ..media.keyframes import open_keyframe_bgr
from .scenes import scenes_by_media
from .stage import Outcome, Stage, StageRun, Stopwatch


def read_keyframes(run: StageRun, todo: list[dict]):
    """Every keyframe of the due media through the OCR engine; a keyframe that is missing or
    not decodable (or that the engine fails on) is quarantined, the media's other rows stay."""
    ocr = run.model
    model_id = ocr.model_id
    scenes = scenes_by_media(run.lake, [m["media_id"] for m in todo])
    for n, m in enumerate(todo, 1):
        mid = m["media_id"]
        rows, errors, ok = [], [], []
        for scene in scenes.get(mid, []):
            uri = scene["keyframe_uri"]
            try:
                image = open_keyframe_bgr(uri)
                t = Stopwatch()
                lines = ocr.read(image)
                run.model_seconds += t.seconds
            except MediaError as err:
                errors.append((uri, err))
                continue
            except Exception as exc:  # an engine error on one image must not stop the run
                errors.append((uri, MediaError(ErrorCode.MODEL_FAILED, f"OCR failed: {type(exc).__name__}: {exc}")))
                continue
            run.stats["keyframes"] += 1
            ok.append(uri)
            rows += [{"media_id": mid, "scene_index": scene["scene_index"], "line_index": i, "text": line.text,
                      "raw_text": line.raw_text, "confidence": line.confidence, "box": line.box,
                      "keyframe_s": scene["keyframe_s"], "model_id": model_id} for i, line in enumerate(lines)]
        run.stats["keyframes_quarantined"] += len(errors)
        for uri, err in errors:
            run.log.warning(f"quarantined keyframe {uri} of {mid}: {err.message}")
        run.log.info(f"[{n}/{len(todo)}] {mid}: {len(scenes.get(mid, []))} keyframe(s), {len(rows)} line(s)")
        yield Outcome(mid, rows=rows, item_errors=errors, ok_items=ok, media_seconds=m.get("duration_s") or 0.0)


def summarize(run: StageRun, rows) -> dict:
    texts, raw = rows.column("text").to_pylist(), rows.column("raw_text").to_pylist()
    conf = [c for c in rows.column("confidence").to_pylist() if c is not None]
    return {
        "keyframes_per_second": round(run.stats["keyframes"] / run.model_seconds, 2) if run.model_seconds else 0.0,
        "lines_found": rows.num_rows,
        "mean_confidence": round(statistics.fmean(conf), 4) if conf else None,
        "spaces_restored": sum(t.count(" ") - r.count(" ") for t, r in zip(texts, raw)),
        "sample_lines": MetadataValue.json(texts[:10]),
    }


OCR = Stage(
    name="ocr_text", table="ocr_text", code_version="ocr_text@1", group="visual",
    description=(
        "One row per text line read on a scene keyframe (Delta table `ocr_text`): media_id, scene_index, "
        "line_index (top to bottom), text (with the spaces between words restored), raw_text (as the recogniser "
        "read it), confidence (0-1), box (4 corner points x0,y0..x3,y3 in keyframe pixels), keyframe_s and "
        "model_id (RapidOCR PP-OCRv4 on ONNX Runtime). Reads the window's `scenes` rows and their keyframe "
        "JPEGs. A keyframe that is missing or not decodable gets a `quarantine` row and its media is retried "
        "by the retry rule; media already read with this code version and model are skipped."
    ),
    compute=read_keyframes, batch=True, model="ocr", deps=("scenes", "keyframes"), after=("scenes",),
    media_columns=("media_id", "source_uri", "kind", "has_video", "duration_s"), summarize=summarize,
)
OCR_CODE_VERSION = OCR.code_version
ocr_text = OCR.asset()

__all__ = ["OCR", "OCR_CODE_VERSION", "ocr_text"]
