"""Text embeddings: a sentence vector for every piece of text the pipeline found in a media."""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from dagster import MetadataValue

from .stage import Outcome, Stage, StageRun, Stopwatch


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
ITEM_KINDS = sorted({s.item_kind for s in TEXT_SOURCES})


def item_texts(lake, ids: list[str]) -> tuple[list[tuple[str, str, int]], list[str]]:
    """Every text item of these media: ((media_id, item_kind, item_index), text), in
    TEXT_SOURCES order. The one definition of "the text of an item": what is embedded here
    is what the keyword index holds (assets/index.py) and what search quotes."""
    items: list[tuple[str, str, int]] = []
    texts: list[str] = []
    for src in TEXT_SOURCES:
        flt = pads.field("media_id").isin(ids)
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
    return items, texts


def embed_texts(run: StageRun, todo: list[dict]):
    """Every text of the due media in one batched pass of the sentence model."""
    ids = [m["media_id"] for m in todo]
    items, texts = item_texts(run.lake, ids)
    clock = Stopwatch()
    vectors = run.model.embed(texts) if texts else None
    run.model_seconds += clock.seconds
    table = _rows(items, vectors, run.model.model_id)
    run.metadata["items_by_kind"] = MetadataValue.json({k: sum(1 for i in items if i[1] == k) for k in ITEM_KINDS})
    run.metadata["texts_per_second"] = round(len(texts) / run.model_seconds, 1) if run.model_seconds else 0.0
    mids = table.column("media_id")
    for mid in ids:
        mine = table.filter(pc.equal(mids, mid)) if len(items) else table
        yield Outcome(mid, rows=mine)


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


TEXT_EMBEDDINGS = Stage(
    name="text_embeddings", table="embeddings", code_version="text_embeddings@1", group="search",
    description=(
        "Sentence vectors (all-MiniLM-L6-v2, 384-d float32, unit length) of the window's transcript segments "
        "(item_kind 'segment', item_index = segment_index) and of the text read on each keyframe (item_kind "
        "'ocr', item_index = scene_index, its lines joined top to bottom), for text search. Segments the "
        "hallucination guard flagged are not embedded. A media waits until every text stage has had its say "
        "(written, partly written or quarantined), and is embedded again when one of them rewrites it. All "
        "media of the run are embedded in one batched pass. Rows go to the shared Delta table `embeddings`, "
        "replacing only this model's vectors of these kinds (image vectors of the same media stay)."
    ),
    compute=embed_texts, batch=True, model="text_embedder", deps=tuple(s.asset for s in TEXT_SOURCES),
    after=tuple(s.asset for s in TEXT_SOURCES), media_columns=("media_id", "source_uri"),
    replace_keys=lambda run, mid: [(mid, kind, run.model.model_id) for kind in ITEM_KINDS],
    check_rows={"item_kind": ITEM_KINDS},
)
TEXT_EMBEDDINGS_CODE_VERSION = TEXT_EMBEDDINGS.code_version
text_embeddings = TEXT_EMBEDDINGS.asset()
