"""Image-embedding stage: one vector per scene keyframe of the window's media -> `embeddings`
(item_kind 'scene')."""

from collections import Counter

import numpy as np
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from ..checks.keys import ROWS_KEY, TABLE_KEY
from ..checks.stats import table_stats
from ..jobs import GPU_OP_TAGS, GPU_POOL
from ..lake.schemas import to_arrow
from ..partitions import arrival_partitions
from ..resources.clip import ClipResource
from ..resources.lakehouse import LakehouseResource
from .common import MODEL_RESOURCE_KEY, Stopwatch, quarantine_row, stage_data_version, stage_metadata
from .keyframes import KeyframeError, open_keyframe_pil, plan_keyframe_work, write_keyframe_rows
from .stage_config import StageConfig

SCENE_EMBEDDINGS_CODE_VERSION = "scene_embeddings@1"
STAGE = "scene_embeddings"
ITEM_KIND = "scene"


class SceneEmbeddingsConfig(StageConfig):
    """``force``: embed every keyframe of the window again, even media already done."""


@asset(
    name="scene_embeddings",
    deps=["scenes"],
    partitions_def=arrival_partitions,
    code_version=SCENE_EMBEDDINGS_CODE_VERSION,
    group_name="visual",
    kinds={"delta", "pytorch"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    # Checked as the `embeddings` table, on this stage's rows only; the CLIP model id
    # joins the code version (a model change shows the asset stale).
    metadata={TABLE_KEY: "embeddings", ROWS_KEY: {"item_kind": [ITEM_KIND]}, MODEL_RESOURCE_KEY: "clip"},
)
def scene_embeddings(context: AssetExecutionContext, config: SceneEmbeddingsConfig, lake: LakehouseResource,
                     clip: ClipResource) -> MaterializeResult:
    """One L2-normalised float32 vector per scene keyframe, in the Delta table `embeddings`
    (item_kind 'scene', item_index = scene_index, model_id, vector).

    The model is OpenCLIP (default ViT-B-32 laion2b_s34b_b79k; model_id
    `open_clip/<arch>@<tag or sha256 of the weights file>`) when its weights are on this
    machine. When they are not, the run says so in a warning and uses the declared fallback
    `mediaintel/image-features-v1` (colour, edge and layout features: good for similar-image
    search, not for text search); its model_id is on every row, so vectors never mix.
    Keyframes of all the window's media go through the model in batches of `batch_size`,
    on the GPU when there is one. A missing or undecodable keyframe gets a `quarantine`
    row and its media is retried on the next run.
    """
    clock = Stopwatch()
    embedder = clip.embedder()
    model_id = embedder.model_id
    plan = plan_keyframe_work(context, lake, STAGE, code_version=SCENE_EMBEDDINGS_CODE_VERSION, model_id=model_id,
                              force=config.force)
    media, done, work, waiting, scenes = plan.media, plan.done, plan.work, plan.waiting, plan.scenes

    # Every keyframe of the run in one list, so that batches span media: a window of many
    # short clips fills the GPU as well as one long film does.
    items = [(m["media_id"], scene) for m in work for scene in scenes[m["media_id"]]]
    if embedder.is_fallback and items:  # said once per run that embeds, not on no-op reruns
        context.log.warning(f"CLIP weights are not available; embedding with the fallback {model_id}. "
                            f"{embedder.reason}")
    batch_size = max(1, int(clip.batch_size))
    rows: list[dict] = []
    bad: list[dict] = []
    ok_uris: list[str] = []
    failed_media: set[str] = set()
    per_media = Counter()
    batch_sizes: list[int] = []
    embed_seconds = 0.0
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        images, kept = [], []
        for mid, scene in chunk:
            try:
                images.append(open_keyframe_pil(scene["keyframe_uri"]))
                kept.append((mid, scene))
            except KeyframeError as err:
                bad.append(_quarantine(context, scene["keyframe_uri"], mid, err.error_type, err.message))
                failed_media.add(mid)
                context.log.warning(f"quarantined keyframe {scene['keyframe_uri']} of {mid}: {err.message}")
        if not images:
            continue
        t = Stopwatch()
        try:
            vectors = embedder.embed(images)
        except Exception as exc:  # a failed batch quarantines its keyframes; the run goes on
            for mid, scene in kept:
                bad.append(_quarantine(context, scene["keyframe_uri"], mid, "embed_failed",
                                       f"{type(exc).__name__}: {exc}"))
                failed_media.add(mid)
            context.log.warning(f"embedding a batch of {len(images)} keyframes failed: {exc}")
            continue
        embed_seconds += t.seconds
        batch_sizes.append(len(images))
        context.log.info(f"batch {len(batch_sizes)}: {len(images)} keyframe(s) in {t.seconds:.2f}s")
        for (mid, scene), vec in zip(kept, vectors):
            rows.append({"media_id": mid, "item_kind": ITEM_KIND, "item_index": scene["scene_index"],
                         "model_id": model_id, "vector": np.asarray(vec, dtype=np.float32).tolist()})
            ok_uris.append(scene["keyframe_uri"])
            per_media[mid] += 1

    written, version = write_keyframe_rows(
        context, lake, STAGE, "embeddings", rows, plan=plan, key_suffix=(ITEM_KIND, model_id), per_media=per_media,
        failed_media=failed_media, bad=bad, ok_uris=ok_uris, code_version=SCENE_EMBEDDINGS_CODE_VERSION,
        model_id=model_id)

    norms = np.linalg.norm(np.asarray([r["vector"] for r in rows], dtype=np.float32), axis=1) if rows else None
    wall = clock.seconds
    by_media = {m["media_id"]: m for m in media}
    on_gpu = str(embedder.device).startswith("cuda")
    return MaterializeResult(
        data_version=stage_data_version(SCENE_EMBEDDINGS_CODE_VERSION, model_id, [m["media_id"] for m in media]),
        metadata=stage_metadata(
        window_media_count=len(media), processed=len(written), skipped_done=len(done), failed=len(failed_media),
        rows=len(rows), media_seconds=sum(by_media[mid].get("duration_s") or 0.0 for mid in written),
        wall_seconds=wall, delta_version=version if version is not None else lake.version("embeddings"),
        model_id=model_id, cpu_seconds=clock.cpu_seconds, gpu_seconds=embed_seconds if on_gpu else None,
        asset=STAGE, partition=context.partition_key,
        **table_stats("embeddings", to_arrow("embeddings", rows)),
        fallback=embedder.is_fallback,
        device=embedder.device,
        dim=int(embedder.dim),
        keyframes=len(rows),
        keyframes_per_second=round(len(rows) / embed_seconds, 2) if embed_seconds > 0 else 0.0,
        batch_size=batch_size,
        batches=len(batch_sizes),
        batch_sizes=MetadataValue.json(batch_sizes),
        norm_min=round(float(norms.min()), 6) if norms is not None else None,
        norm_max=round(float(norms.max()), 6) if norms is not None else None,
        keyframes_quarantined=len(bad),
        quarantined_by_type=MetadataValue.json(dict(Counter(r["error_type"] for r in bad))),
        media_waiting_for_scenes=len(waiting),
    ))


def _quarantine(context, uri: str, media_id: str, error_type: str, message: str) -> dict:
    return quarantine_row(context, STAGE, source_uri=uri, error_type=error_type, message=message,
                          code_version=SCENE_EMBEDDINGS_CODE_VERSION, media_id=media_id)
