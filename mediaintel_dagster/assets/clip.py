"""Image-embedding stage: one vector per scene keyframe of the window's media -> `embeddings`
(item_kind 'scene')."""

import numpy as np
from dagster import MetadataValue

from ..media.errors import ErrorCode, MediaError
from ..media.keyframes import open_keyframe_pil
from .scenes import scenes_by_media
from .stage import Outcome, Stage, StageRun, Stopwatch

ITEM_KIND = "scene"


def embed_keyframes(run: StageRun, todo: list[dict]):
    """Every keyframe of the run in one list, in batches of ``clip.batch_size`` that span
    media: a window of many short clips fills the GPU as well as one long film does."""
    clip = run.model
    embedder = clip.embedder()
    scenes = scenes_by_media(run.lake, [m["media_id"] for m in todo])
    items = [(m["media_id"], scene) for m in todo for scene in scenes.get(m["media_id"], [])]
    batch_size = max(1, int(clip.batch_size))
    rows: dict[str, list] = {m["media_id"]: [] for m in todo}
    errors: dict[str, list] = {m["media_id"]: [] for m in todo}
    batch_sizes: list[int] = []
    for start in range(0, len(items), batch_size):
        images, kept = [], []
        for mid, scene in items[start:start + batch_size]:
            try:
                images.append(open_keyframe_pil(scene["keyframe_uri"]))
                kept.append((mid, scene))
            except MediaError as err:
                errors[mid].append((scene["keyframe_uri"], err))
        if not images:
            continue
        t = Stopwatch()
        try:
            vectors = embedder.embed(images)
        except Exception as exc:  # a failed batch quarantines its keyframes; the run goes on
            for mid, scene in kept:
                errors[mid].append((scene["keyframe_uri"],
                                    MediaError(ErrorCode.MODEL_FAILED, f"{type(exc).__name__}: {exc}")))
            run.log.warning(f"embedding a batch of {len(images)} keyframes failed: {exc}")
            continue
        run.model_seconds += t.seconds
        batch_sizes.append(len(images))
        run.log.info(f"batch {len(batch_sizes)}: {len(images)} keyframe(s) in {t.seconds:.2f}s")
        for (mid, scene), vec in zip(kept, vectors):
            rows[mid].append({"media_id": mid, "item_kind": ITEM_KIND, "item_index": scene["scene_index"],
                              "model_id": embedder.model_id, "vector": np.asarray(vec, dtype=np.float32).tolist()})
    run.metadata.update(fallback=embedder.is_fallback, dim=int(embedder.dim), batches=len(batch_sizes),
                        batch_sizes=MetadataValue.json(batch_sizes))
    for m in todo:
        mid = m["media_id"]
        run.stats["keyframes_quarantined"] += len(errors[mid])
        for uri, err in errors[mid]:
            run.log.warning(f"quarantined keyframe {uri} of {mid}: {err.message}")
        failed = {u for u, _ in errors[mid]}
        ok = [s["keyframe_uri"] for s in scenes.get(mid, []) if s["keyframe_uri"] not in failed]
        yield Outcome(mid, rows=rows[mid], item_errors=errors[mid], ok_items=ok, media_seconds=m.get("duration_s") or 0.0)


def summarize(run: StageRun, rows) -> dict:
    if not rows.num_rows:
        return {}
    norms = np.linalg.norm(np.asarray(rows.column("vector").to_pylist(), dtype=np.float32), axis=1)
    return {"keyframes": rows.num_rows,
            "keyframes_per_second": round(rows.num_rows / run.model_seconds, 2) if run.model_seconds else 0.0,
            "norm_min": round(float(norms.min()), 6) if len(norms) else None,
            "norm_max": round(float(norms.max()), 6) if len(norms) else None}


SCENE_EMBEDDINGS = Stage(
    name="scene_embeddings", table="embeddings", code_version="scene_embeddings@1", group="visual",
    description=(
        "One L2-normalised float32 vector per scene keyframe, in the Delta table `embeddings` (item_kind "
        "'scene', item_index = scene_index, model_id, vector). The configured model is OpenCLIP (default "
        "ViT-B-32 laion2b_s34b_b79k; model_id `open_clip/<arch>@<tag or sha256 of the weights file>`). Where "
        "its weights are not on the machine, the routing decision (recorded in audit_log.model_route) runs "
        "the declared fallback `mediaintel/image-features-v1` (colour, edge and layout features: good for "
        "similar-image search, not for text search); the model_id on every row says which ran, so vectors "
        "never mix, and installing the weights later upgrades the fallback's rows. Keyframes of all the "
        "window's media go through the model in batches of `batch_size`, on the GPU when there is one. A "
        "missing or undecodable keyframe gets a `quarantine` row; its media is retried by the retry rule."
    ),
    compute=embed_keyframes, batch=True, model="clip", deps=("scenes", "keyframes"), after=("scenes",),
    media_columns=("media_id", "source_uri", "kind", "has_video", "duration_s"),
    # The rows of the model that runs here: another model's vectors of the media stay.
    replace_keys=lambda run, mid: [(mid, ITEM_KIND, run.model.route()[0])],
    summarize=summarize, kinds=("delta", "pytorch"), gpu=True, check_rows={"item_kind": [ITEM_KIND]},
)
SCENE_EMBEDDINGS_CODE_VERSION = SCENE_EMBEDDINGS.code_version
scene_embeddings = SCENE_EMBEDDINGS.asset()
