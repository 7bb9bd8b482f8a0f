"""Text embeddings: a sentence vector for every piece of text the pipeline found in a media."""


from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from ..partitions import arrival_partitions
from ..resources import LakehouseResource
from ..resources.text_embedder import TextEmbedderResource
from ..checks.keys import ROWS_KEY as _ROWS_KEY, TABLE_KEY as _TABLE_KEY
from ..checks.stats import table_stats
from .common import MODEL_RESOURCE_KEY, Stopwatch, audit_entry, stage_data_version, stage_metadata, window_media
from .stage_config import StageConfig

TEXT_EMBEDDINGS_CODE_VERSION = "text_embeddings@1"
ASSET = "text_embeddings"
TABLE = "embeddings"


@dataclass(frozen=True)
class TextSource:
    """Where one kind of text lives: the stage (asset) that writes it, its table, the column
    that numbers the items within a media (item_index) and the text column. ``usable`` keeps
    rows worth embedding."""

    item_kind: str
    asset: str
    table: str
    index_column: str
    text_column: str = "text"
    usable: Optional[pads.Expression] = None
    # Several rows per item (the lines of one keyframe): joined in this column's order.
    line_column: Optional[str] = None


# Every text this stage embeds. Segments flagged by the hallucination guard are left out:
# a search must not find "Thank you." invented over a music bed. OCR is embedded per
# keyframe (item_index = scene_index, its lines joined top to bottom), so a hit names the
# scene and its time range, and a caption split over two lines is one query match.
TEXT_SOURCES: tuple[TextSource, ...] = (
    TextSource("segment", "transcript_segments", "transcript_segments", "segment_index",
               usable=pads.field("hallucination").is_null()),
    TextSource("ocr", "ocr_text", "ocr_text", "scene_index", line_column="line_index"),
)


class TextEmbeddingsConfig(StageConfig):
    """``force``: embed every media of the window again."""


@asset(
    name=ASSET,
    deps=[s.asset for s in TEXT_SOURCES],
    partitions_def=arrival_partitions,
    code_version=TEXT_EMBEDDINGS_CODE_VERSION,
    group_name="search",
    kinds={"delta", "python"},
    # The embeddings contract check covers this stage's share of the shared table only.
    metadata={MODEL_RESOURCE_KEY: "text_embedder", _TABLE_KEY: TABLE,
              _ROWS_KEY: {"item_kind": sorted({s.item_kind for s in TEXT_SOURCES})}},
)
def text_embeddings(context: AssetExecutionContext, config: TextEmbeddingsConfig, lake: LakehouseResource,
                    text_embedder: TextEmbedderResource) -> MaterializeResult:
    """Sentence vectors (all-MiniLM-L6-v2, 384-d float32, unit length) of the window's
    transcript segments (item_kind 'segment', item_index = segment_index) and of the text
    read on each keyframe (item_kind 'ocr', item_index = scene_index, its lines joined top to
    bottom), for text search. Segments the hallucination guard flagged are not embedded. All media of the run are
    embedded in one batched pass. Rows go to the shared Delta table `embeddings`, replacing
    only this model's vectors of these kinds (image vectors of the same media stay).
    """
    clock = Stopwatch()
    partition = context.partition_key
    ids = [m["media_id"] for m in window_media(lake, partition, columns=["media_id"])]
    model_id = text_embedder.model_id
    todo, waiting, done = _todo(lake, ids, model_id, config.force)
    context.log.info(f"window {partition}: {len(ids)} media, {len(done)} already embedded with {model_id}, "
                     f"{len(waiting)} waiting for their text stages")

    items: list[tuple[str, str, int]] = []  # (media_id, item_kind, item_index)
    texts: list[str] = []
    for src in TEXT_SOURCES if todo else ():
        flt = pads.field("media_id").isin(todo)
        if src.usable is not None:
            flt = flt & src.usable
        columns = ["media_id", src.index_column, src.text_column] + ([src.line_column] if src.line_column else [])
        table = lake.read(src.table, columns=columns, filter=flt)
        if src.line_column:
            table = table.sort_by([("media_id", "ascending"), (src.index_column, "ascending"),
                                   (src.line_column, "ascending")])
        grouped: dict[tuple[str, int], list[str]] = {}
        for mid, idx, text in zip(*(table.column(c).to_pylist() for c in columns[:3])):
            if text and text.strip():
                grouped.setdefault((mid, int(idx)), []).append(text.strip())
        for (mid, idx), lines in grouped.items():
            items.append((mid, src.item_kind, idx))
            texts.append(" ".join(lines))

    rows = _rows(items, text_embedder.embed(texts) if texts else None, model_id)
    version = None
    if todo:
        keys = [(mid, src.item_kind, model_id) for mid in todo for src in TEXT_SOURCES]
        version = lake.replace(TABLE, rows, keys=keys)
        per_media = {mid: 0 for mid in todo}
        for mid, _, _ in items:
            per_media[mid] += 1
        lake.audit([audit_entry(context, ASSET, TABLE, mid, code_version=TEXT_EMBEDDINGS_CODE_VERSION, rows=count,
                                delta_version=version, model_id=model_id) for mid, count in sorted(per_media.items())])
    return MaterializeResult(
        data_version=stage_data_version(TEXT_EMBEDDINGS_CODE_VERSION, model_id, ids),
        metadata=stage_metadata(
        window_media_count=len(ids), processed=len(todo), skipped_done=len(done), failed=0, rows=rows.num_rows,
        media_seconds=0.0, wall_seconds=clock.seconds,
        delta_version=version if version is not None else lake.version(TABLE), model_id=model_id,
        cpu_seconds=clock.cpu_seconds, asset=ASSET, partition=context.partition_key,
        **table_stats(TABLE, rows),
        items_by_kind=MetadataValue.json({k: sum(1 for i in items if i[1] == k) for k in sorted({s.item_kind for s in TEXT_SOURCES})}),
        media_waiting_for_text=len(waiting), texts_per_second=round(rows.num_rows / clock.seconds, 1),
        item_kinds=MetadataValue.json(sorted({s.item_kind for s in TEXT_SOURCES})),
    ))


def _todo(lake: LakehouseResource, ids: list[str], model_id: str, force: bool) -> tuple[list[str], list[str], list[str]]:
    """(to embed, waiting, done) among ``ids``, from the audit trail.

    A media is ready when every source stage has written it (rows or none), and done when
    this code and model embedded it after the last time any source stage rewrote it: a
    re-transcribed media is embedded again, a quarantined one waits.
    """
    if not ids:
        return [], [], []
    assets = [ASSET] + [s.asset for s in TEXT_SOURCES]
    # A source stage that wrote part of a media (a keyframe quarantined) or quarantined it
    # has still had its say for now: embed what it wrote rather than hold back the other
    # sources' text; when it later writes the media whole, that newer row triggers a re-embed.
    log = lake.read("audit_log", columns=["asset", "media_id", "code_version", "model_id", "status", "at"],
                    filter=pads.field("asset").isin(assets) & pads.field("media_id").isin(sorted(set(ids)))
                    & pads.field("status").isin(["written", "partial", "quarantined"])).to_pylist()
    last: dict[tuple[str, str], object] = {}
    for r in log:
        if r["asset"] == ASSET and (r["code_version"] != TEXT_EMBEDDINGS_CODE_VERSION or r["model_id"] != model_id
                                    or r["status"] != "written"):
            continue
        key = (r["asset"], r["media_id"])
        if key not in last or r["at"] > last[key]:
            last[key] = r["at"]
    todo, waiting, done = [], [], []
    for mid in sorted(set(ids)):
        sources = [last.get((s.asset, mid)) for s in TEXT_SOURCES]
        if any(t is None for t in sources):
            waiting.append(mid)
        elif force or (ASSET, mid) not in last or last[(ASSET, mid)] < max(sources):
            todo.append(mid)
        else:
            done.append(mid)
    return todo, waiting, done


def _rows(items: list[tuple[str, str, int]], vectors: Optional[np.ndarray], model_id: str) -> pa.Table:
    """`embeddings` rows as Arrow, the vectors handed over without a Python list per float."""
    n = len(items)
    flat = pa.array(vectors.reshape(-1) if vectors is not None else np.zeros(0, np.float32), type=pa.float32())
    dim = vectors.shape[1] if vectors is not None else 0
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * dim, type=pa.int32())
    return pa.table({
        "media_id": pa.array([i[0] for i in items], pa.string()),
        "item_kind": pa.array([i[1] for i in items], pa.string()),
        "item_index": pa.array([i[2] for i in items], pa.int32()),
        "model_id": pa.array([model_id] * n, pa.string()),
        "vector": pa.ListArray.from_arrays(offsets, flat),
    })
