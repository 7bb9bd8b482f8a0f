"""OCR stage: the text lines on every keyframe of every scene of the window's media -> `ocr_text`.

A scene has its representative keyframe and, when its picture changes, extra keyframes
(a caption shown in only part of a shot is on one of them): all are read, and a line read
again on a later keyframe of the same scene (the same text) is written once, with the
keyframe it was first seen on (keyframe_s)."""

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
        frames = 0
        for scene in scenes.get(mid, []):
            seen: set[str] = set()
            for t_s, uri in keyframes_of(scene):
                frames += 1
                try:
                    image = open_keyframe_bgr(uri)
                    t = Stopwatch()
                    lines, recognised = ocr.read_counted(image)
                    run.model_seconds += t.seconds
                except MediaError as err:
                    errors.append((uri, err))
                    continue
                except Exception as exc:  # an engine error on one image must not stop the run
                    errors.append((uri, MediaError(ErrorCode.MODEL_FAILED,
                                                   f"OCR failed: {type(exc).__name__}: {exc}")))
                    continue
                run.stats["keyframes"] += 1
                run.stats["keyframes_without_text"] += not recognised
                ok.append(uri)
                for line in lines:
                    if line.text in seen:
                        run.stats["lines_repeated"] += 1
                        continue
                    seen.add(line.text)
                    rows.append({"media_id": mid, "scene_index": scene["scene_index"], "line_index": len(seen) - 1,
                                 "text": line.text, "raw_text": line.raw_text, "confidence": line.confidence,
                                 "box": line.box, "keyframe_s": t_s, "model_id": model_id})
        run.stats["keyframes_quarantined"] += len(errors)
        for uri, err in errors:
            run.log.warning(f"quarantined keyframe {uri} of {mid}: {err.message}")
        run.log.info(f"[{n}/{len(todo)}] {mid}: {frames} keyframe(s), {len(rows)} line(s)")
        yield Outcome(mid, rows=rows, item_errors=errors, ok_items=ok, media_seconds=m.get("duration_s") or 0.0)


def keyframes_of(scene: dict) -> list[tuple[float, str]]:
    """(time, uri) of every keyframe of a scene: the representative one first, then its extras."""
    extra = list(zip(scene.get("extra_keyframe_s") or [], scene.get("extra_keyframe_uris") or []))
    return [(scene["keyframe_s"], scene["keyframe_uri"])] + extra


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
    name="ocr_text", table="ocr_text", code_version="ocr_text@3", group="visual",
    description=(
        "One row per distinct text line read on a scene's keyframes (Delta table `ocr_text`; every keyframe "
        "of the scene is read, the representative one and the extras of a shot whose picture changes, and a "
        "line seen again is written once): media_id, scene_index, "
        "line_index (in reading order), text (with the spaces between words restored), raw_text (as the "
        "recogniser read it), confidence (0-1), box (4 corner points x0,y0..x3,y3 in keyframe pixels), keyframe_s "
        "(the keyframe the line was read on) and "
        "model_id (RapidOCR PP-OCRv4 on ONNX Runtime; recognition runs only on keyframes where detection "
        "finds text). Reads the window's `scenes` rows and their keyframe JPEGs. A keyframe that is missing or not decodable gets a `quarantine` row and its media is retried "
        "by the retry rule; media already read with this code version and model are skipped."
    ),
    compute=read_keyframes, batch=True, model="ocr", deps=("scenes", "keyframes"), after=("scenes",),
    media_columns=("media_id", "source_uri", "kind", "has_video", "duration_s"), summarize=summarize,
)
OCR_CODE_VERSION = OCR.code_version
ocr_text = OCR.asset()

__all__ = ["OCR", "OCR_CODE_VERSION", "ocr_text"]
