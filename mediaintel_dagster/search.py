"""Text search over what the pipeline found: spoken words, on-screen text, and (with CLIP
weights) what the scenes show.

One query goes to every model whose vectors are in `embeddings`:

- the text embedder (all-MiniLM-L6-v2) against transcript segments (item_kind 'segment')
  and the text read on each keyframe (item_kind 'ocr', one item per scene);
- CLIP's text tower against the scene keyframes (item_kind 'scene'), only when real CLIP
  weights produced those vectors; the fallback image features cannot read a query.

Scores are cosine similarities, comparable within a model; hits of all models are merged by
score (CLIP text-to-image similarities run lower than sentence-to-sentence ones, so on-screen
and spoken matches tend to come first). This is exact brute force over the lakehouse: fine
for an embedded lakehouse (about 11 ms per query at 100k x 512 on this machine, DESIGN.md);
the serving index (index_entries, Pinecone in production) is the scale-out path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from .resources.clip import FALLBACK_MODEL_ID, ClipResource
from .resources.lakehouse import LakehouseResource
from .resources.text_embedder import TextEmbedderResource

TEXT_KINDS = ("segment", "ocr")
KINDS = TEXT_KINDS + ("scene",)


@dataclass
class Hit:
    media_id: str
    source_uri: str | None
    item_kind: str
    item_index: int
    start_s: float | None
    end_s: float | None
    score: float
    text: str | None
    model_id: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _vectors(table: pa.Table) -> np.ndarray:
    """The `vector` column as an (n, dim) float32 matrix without a Python list per float."""
    col = table.column("vector").combine_chunks()
    if len(col) == 0:
        return np.zeros((0, 0), np.float32)
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(col), -1)


def _score(lake: LakehouseResource, model_id: str, kinds: list[str], query: np.ndarray, k: int) -> list[tuple]:
    flt = (pads.field("model_id") == model_id) & pads.field("item_kind").isin(kinds)
    table = lake.read("embeddings", columns=["media_id", "item_kind", "item_index", "vector"], filter=flt)
    if table.num_rows == 0:
        return []
    scores = _vectors(table) @ query.astype(np.float32)
    top = np.argsort(-scores)[:k]
    mids, item_kinds, idx = (table.column(c).to_pylist() for c in ("media_id", "item_kind", "item_index"))
    return [(mids[i], item_kinds[i], int(idx[i]), float(scores[i]), model_id) for i in top]


def search(text: str, k: int = 10, *, lake: LakehouseResource | None = None,
           text_embedder: TextEmbedderResource | None = None, clip: ClipResource | None = None,
           kinds: list[str] | None = None) -> list[Hit]:
    """The ``k`` best scenes and transcript segments for ``text``, best first."""
    lake = lake or LakehouseResource()
    text_embedder = text_embedder or TextEmbedderResource()
    clip = clip or ClipResource()
    kinds = list(kinds or KINDS)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown item kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
    if not text.strip():
        raise ValueError("empty query")

    found: list[tuple] = []
    text_kinds = [kd for kd in kinds if kd in TEXT_KINDS]
    if text_kinds:
        found += _score(lake, text_embedder.model_id, text_kinds, text_embedder.embed([text])[0], k)
    if "scene" in kinds:
        clip_id, _ = clip.route()  # the model that runs here: its text tower embeds the query
        has_scene_vectors = clip_id != FALLBACK_MODEL_ID and lake.read(
            "embeddings", columns=["media_id"],
            filter=(pads.field("model_id") == clip_id) & (pads.field("item_kind") == "scene")).num_rows > 0
        if has_scene_vectors:  # load CLIP only when its vectors exist
            found += _score(lake, clip_id, ["scene"], clip.embedder().embed_text([text])[0], k)
    found.sort(key=lambda h: -h[3])
    return _describe(lake, found[:k])


def _describe(lake: LakehouseResource, found: list[tuple]) -> list[Hit]:
    """Times, text and file of each hit, from transcript_segments, scenes, ocr_text and media."""
    if not found:
        return []
    ids = sorted({f[0] for f in found})
    uris = {r["media_id"]: r["source_uri"]
            for r in lake.read_keys("media", "media_id", ids, columns=["media_id", "source_uri"]).to_pylist()}
    segments = {(r["media_id"], r["segment_index"]): r for r in lake.read_keys(
        "transcript_segments", "media_id", ids, columns=["media_id", "segment_index", "start_s", "end_s", "text"]
    ).to_pylist()}
    scenes = {(r["media_id"], r["scene_index"]): r for r in lake.read_keys(
        "scenes", "media_id", ids, columns=["media_id", "scene_index", "start_s", "end_s"]).to_pylist()}
    lines: dict[tuple, list] = {}
    for r in sorted(lake.read_keys("ocr_text", "media_id", ids,
                                   columns=["media_id", "scene_index", "line_index", "text"]).to_pylist(),
                    key=lambda r: r["line_index"]):
        lines.setdefault((r["media_id"], r["scene_index"]), []).append(r["text"])
    hits = []
    for mid, kind, idx, score, model_id in found:
        row = segments.get((mid, idx)) if kind == "segment" else scenes.get((mid, idx))
        text = row["text"] if kind == "segment" and row else " ".join(lines.get((mid, idx), [])) or None
        hits.append(Hit(media_id=mid, source_uri=uris.get(mid), item_kind=kind, item_index=idx,
                        start_s=row["start_s"] if row else None, end_s=row["end_s"] if row else None,
                        score=round(score, 4), text=text, model_id=model_id))
    return hits
