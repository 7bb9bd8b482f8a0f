"""Search that serves: one text query, several retrievers, fused by reciprocal rank.

``search(text)`` puts the query to every retriever that can answer it, over the serving
index that the ``index_entries`` stage keeps in step with the lakehouse:

- ``vector``: the text embedder (all-MiniLM-L6-v2) against transcript segments ("speech")
  and the text read on each keyframe ("on-screen text"), in the vector index;
- ``picture``: CLIP's text tower against the scene keyframes, only when real CLIP weights
  made those vectors (the declared fallback's image features cannot read a query);
- ``keyword``: BM25 over the same texts, in the keyword index.

Each retriever ranks its own candidates; the lists are fused by reciprocal rank
(``score = sum 1 / (RRF_K + rank)``, Cormack et al. 2009), which needs no calibration
between cosine similarities of different models and BM25 scores. A result is one item
(a segment, a keyframe's text, a scene); it says why it matched (which retrievers, their
rank and raw score, and the query words found in its text). Filters (media kind,
duration, language, arrival date, source prefix) are pushed into every retriever, so a
page of filtered results is as deep as an unfiltered one. Pages are ``k`` long.

Weak matches are left out, on the retrievers' raw similarities (fused ranks alone cannot
say a match is weak: every query has a first hit): a hit that only the text-vector
retriever found needs a cosine of at least ``min_score`` (MEDIAINTEL_SEARCH_MIN_SCORE) and
at least MEDIAINTEL_SEARCH_RELATIVE_SCORE times the query's best cosine; a picture hit the
same with MEDIAINTEL_SEARCH_MIN_PICTURE_SCORE (CLIP's text-to-image cosines run lower); a
keyword hit holds a word of the query and always stays. ``min_score=0`` keeps every hit.
``Page.notes`` says why a page is short or empty (scenes unsearchable without CLIP
weights, hits left out as weak, no media matching the filters).

``similar(media_id or file)`` finds the media and scenes nearest a media's keyframes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from . import config
from .resources.clip import FALLBACK_MODEL_ID, ClipResource
from .resources.lakehouse import LakehouseResource
from .resources.text_embedder import TextEmbedderResource
from .resources.vector_index import IndexFilter, Match, TextIndexResource, VectorIndexResource

TEXT_KINDS = ("segment", "ocr")
KINDS = TEXT_KINDS + ("scene",)
RETRIEVERS = ("vector", "keyword", "picture")
RRF_K = 60
# What a match of each retriever on each kind of item means to a user.
REASONS = {("vector", "segment"): "speech", ("vector", "ocr"): "on-screen text", ("picture", "scene"): "picture",
           ("keyword", "segment"): "keyword", ("keyword", "ocr"): "keyword"}
_WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to explain a match: left out of ``matched_words`` (the retrievers still see them).
_STOPWORDS = frozenset("a an and are as at be by for from has have i in is it its of on or our that the this to "
                       "was we were will with you".split())


@dataclass
class Hit:
    media_id: str
    source_uri: Optional[str]
    item_kind: str
    item_index: int
    start_s: Optional[float]
    end_s: Optional[float]
    score: float  # the fused (reciprocal rank) score: higher is better
    text: Optional[str]
    model_id: str  # the model of the best-ranked retriever that found it
    matched: list[str] = field(default_factory=list)  # 'speech', 'on-screen text', 'picture', 'keyword'
    matched_words: list[str] = field(default_factory=list)  # query words found in the item's text
    why: list[dict] = field(default_factory=list)  # per retriever: retriever, model_id, rank, score

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Page:
    hits: list[Hit]
    page: int
    k: int
    candidates: int  # distinct items the retrievers returned for this query
    retrievers: dict  # retriever -> 'used' or why it was not
    notes: list[str] = field(default_factory=list)  # why the page is short or empty, for people
    below_min_score: int = 0  # candidates left out as weak matches (see the module docstring)
    min_score: Optional[float] = None  # the text-vector cosine floor this search used


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text or "")]


def default_indexes() -> tuple[VectorIndexResource, TextIndexResource]:
    """The configured serving index (definitions.index_resources, as the runs use)."""
    from .definitions import index_resources

    res = index_resources()
    return res["vector_index"], res["text_index"]


def search_page(text: str, k: int = 10, *, page: int = 1, flt: Optional[IndexFilter] = None,
                retrievers: Sequence[str] = RETRIEVERS, kinds: Optional[Sequence[str]] = None,
                lake: Optional[LakehouseResource] = None, text_embedder: Optional[TextEmbedderResource] = None,
                clip: Optional[ClipResource] = None, vector_index: Optional[VectorIndexResource] = None,
                text_index: Optional[TextIndexResource] = None, min_score: Optional[float] = None) -> Page:
    """Page ``page`` (from 1) of the ``k`` best items for ``text``: see the module docstring.

    ``min_score``: the cosine a hit only the text-vector retriever found needs (None: the
    configured MEDIAINTEL_SEARCH_MIN_SCORE; 0 keeps every hit, however weak)."""
    if not text or not text.strip():
        raise ValueError("empty query")
    if k < 1 or page < 1:
        raise ValueError("k and page must be at least 1")
    min_score = config.get_float("MEDIAINTEL_SEARCH_MIN_SCORE") if min_score is None else float(min_score)
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score is a cosine similarity between 0 and 1, got {min_score:g}")
    kinds_given = list(kinds) if kinds else None
    kinds = list(kinds or KINDS)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown item kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
    bad = set(retrievers) - set(RETRIEVERS)
    if bad:
        raise ValueError(f"unknown retriever(s) {sorted(bad)}; known: {', '.join(RETRIEVERS)}")
    lake = lake or LakehouseResource()
    if vector_index is None or text_index is None:
        vi, ti = default_indexes()
        vector_index, text_index = vector_index or vi, text_index or ti
    text_embedder = text_embedder or TextEmbedderResource()
    clip = clip or ClipResource()
    flt = flt or IndexFilter()
    depth = max(50, 3 * k * page)  # each retriever's list: deep enough for the page after fusion
    text_kinds = [kd for kd in kinds if kd in TEXT_KINDS]
    counts = vector_index.counts()
    lists: dict[str, list[Match]] = {}
    status: dict[str, str] = {}

    def narrowed(item_kinds: list[str]) -> IndexFilter:
        return replace(flt, item_kinds=[x for x in item_kinds if not flt.item_kinds or x in flt.item_kinds])

    if "vector" in retrievers:
        if not text_kinds:
            status["vector"] = "no text kinds asked"
        elif not counts.get(text_embedder.model_id):
            status["vector"] = f"no vectors of {text_embedder.model_id} in the index"
        else:
            vec = text_embedder.embed([text])[0]
            lists["vector"] = vector_index.query(text_embedder.model_id, vec, depth, narrowed(text_kinds))
            status["vector"] = "used"
    if "picture" in retrievers:
        clip_id, _ = clip.route()
        if "scene" not in kinds:
            status["picture"] = "scenes not asked"
        elif clip_id == FALLBACK_MODEL_ID:
            status["picture"] = f"no CLIP weights here: {FALLBACK_MODEL_ID} cannot read a text query"
        elif not counts.get(clip_id):
            status["picture"] = f"no vectors of {clip_id} in the index"
        else:  # CLIP is loaded only when its vectors are in the index
            vec = clip.embedder().embed_text([text])[0]
            lists["picture"] = vector_index.query(clip_id, vec, depth, narrowed(["scene"]))
            status["picture"] = "used"
    if "keyword" in retrievers:
        if not text_kinds:
            status["keyword"] = "no text kinds asked"
        else:
            lists["keyword"] = text_index.search(text, depth, narrowed(text_kinds))
            status["keyword"] = "used"

    fused = fuse(lists)
    kept = strong_matches(fused, lists, min_score) if min_score > 0 else fused
    start = (page - 1) * k
    chosen = kept[start:start + k]
    hits = _describe(lake, chosen, _words(text))
    dropped = len(fused) - len(kept)
    notes = _notes(status, counts, clip, kinds_asked=kinds_given, retrievers=list(retrievers), lists=lists,
                   flt=flt, dropped=dropped, min_score=min_score, found=len(kept), page=page, k=k,
                   short=len(hits) < k)
    return Page(hits=hits, page=page, k=k, candidates=len(fused), retrievers=status, notes=notes,
                below_min_score=dropped, min_score=min_score)


def strong_matches(fused: list[dict], lists: dict[str, list[Match]], min_score: float,
                   min_picture_score: Optional[float] = None, relative: Optional[float] = None) -> list[dict]:
    """The fused items that are not weak matches, in their order: an item stays when the
    keyword retriever found it (it holds a word of the query), or when a vector retriever
    found it with a cosine at least its floor (``min_score`` for text vectors,
    ``min_picture_score`` for CLIP's picture vectors) and at least ``relative`` times that
    retriever's best cosine for this query."""
    if min_picture_score is None:
        min_picture_score = config.get_float("MEDIAINTEL_SEARCH_MIN_PICTURE_SCORE")
    if relative is None:
        relative = config.get_float("MEDIAINTEL_SEARCH_RELATIVE_SCORE")
    best = {r: max(float(m.score) for m in ms) for r, ms in lists.items() if ms}
    floors = {"vector": min_score, "picture": min_picture_score}

    def strong(it: dict) -> bool:
        for w in it["why"]:
            r = w["retriever"]
            if r not in floors:  # keyword: BM25 found a query word in it
                return True
            if w["score"] >= max(floors[r], relative * best.get(r, 0.0)):
                return True
        return False

    return [it for it in fused if strong(it)]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _notes(status: dict, counts: dict, clip: ClipResource, *, kinds_asked, retrievers, lists, flt: IndexFilter,
           dropped: int, min_score: float, found: int, page: int, k: int, short: bool) -> list[str]:
    """Why a page holds fewer than k hits (or none), a sentence each, for people. That
    scenes cannot be searched by text is said when scenes were asked for by name (or the
    picture retriever alone) or nothing was found; otherwise it is in ``retrievers``."""
    notes = []
    scenes_named = (kinds_asked and "scene" in kinds_asked) or retrievers == ["picture"]
    scenes_asked = "picture" in retrievers and (kinds_asked is None or "scene" in kinds_asked)
    if scenes_asked and status.get("picture") != "used" and (scenes_named or not found):
        clip_id, _ = clip.route()
        if clip_id == FALLBACK_MODEL_ID:
            ran = f" (scene_embeddings ran {FALLBACK_MODEL_ID})" if counts.get(FALLBACK_MODEL_ID) else ""
            notes.append(f"no scene vectors searchable by text: CLIP weights are not installed{ran}")
        elif not counts.get(clip_id):
            notes.append(f"no scene vectors searchable by text: the index holds no vectors of {clip_id} yet "
                         "(scene_embeddings and index_entries have not run with these CLIP weights)")
    if not short:
        return notes
    if dropped:
        notes.append(f"{_plural(dropped, 'hit')} below the minimum score {min_score:g} "
                     f"{'was' if dropped == 1 else 'were'} left out")
    if not any(lists.values()):
        if not sum(counts.values()):
            notes.append("the serving index is empty: no media have been processed yet")
        elif "vector" in lists or "picture" in lists:
            # A vector query returns the nearest entries whatever the text: none means that
            # no entry of the asked kinds passes the filters.
            notes.append("no media match the filters" if _filtered(flt) else "no items of the asked kinds")
        elif "keyword" in lists:
            notes.append("no item holds a word of the query" + (" among the media that match the filters"
                                                                 if _filtered(flt) else ""))
    elif page > 1 and found <= (page - 1) * k:
        notes.append(f"page {page} is past the last hit: the query has {_plural(found, 'hit')} "
                     f"({_plural(-(-found // k), 'page')} of {k})")
    return notes


def _filtered(flt: IndexFilter) -> bool:
    return not replace(flt, item_kinds=None).is_empty()


def search(text: str, k: int = 10, **kwargs) -> list[Hit]:
    """The ``k`` best items for ``text``, best first (page 1 of ``search_page``)."""
    return search_page(text, k, **kwargs).hits


def fuse(lists: dict[str, list[Match]]) -> list[dict]:
    """Reciprocal-rank fusion of each retriever's ranked list, by item. Ties (an item two
    retrievers rank alike) break on the number of retrievers, then on the best rank."""
    items: dict[tuple, dict] = {}
    for retriever, matches in lists.items():
        for rank, m in enumerate(matches, 1):
            key = (m.media_id, m.item_kind, int(m.item_index))
            it = items.setdefault(key, {"key": key, "score": 0.0, "why": [], "text": None})
            it["score"] += 1.0 / (RRF_K + rank)
            it["why"].append({"retriever": retriever, "model_id": m.model_id, "rank": rank,
                              "score": round(float(m.score), 4)})
            if m.extra.get("text") and not it["text"]:
                it["text"] = m.extra["text"]
    return sorted(items.values(), key=lambda it: (-it["score"], -len(it["why"]), min(w["rank"] for w in it["why"]),
                                                  it["key"]))


def _describe(lake: LakehouseResource, chosen: list[dict], query_words: list[str]) -> list[Hit]:
    """Times, text and file of each hit, from transcript_segments, scenes, ocr_text and media."""
    if not chosen:
        return []
    ids = sorted({c["key"][0] for c in chosen})
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
    wanted = [w for w in dict.fromkeys(query_words) if w not in _STOPWORDS]
    hits = []
    for c in chosen:
        mid, kind, idx = c["key"]
        row = segments.get((mid, idx)) if kind == "segment" else scenes.get((mid, idx))
        text = (row["text"] if kind == "segment" and row else " ".join(lines.get((mid, idx), [])) or None) or c["text"]
        present = set(_words(text or ""))
        why = sorted(c["why"], key=lambda w: w["rank"])
        hits.append(Hit(
            media_id=mid, source_uri=uris.get(mid), item_kind=kind, item_index=idx,
            start_s=row["start_s"] if row else None, end_s=row["end_s"] if row else None,
            score=round(c["score"], 6), text=text, model_id=why[0]["model_id"],
            matched=list(dict.fromkeys(REASONS.get((w["retriever"], kind), w["retriever"]) for w in why)),
            matched_words=[w for w in wanted if w in present], why=why))
    return hits


# ---- similar media ------------------------------------------------------------------------

@dataclass
class Similar:
    media_id: str
    source_uri: Optional[str]
    score: float  # mean over the query's keyframes of the best cosine to this media's scenes
    matched_scenes: int  # query keyframes whose nearest neighbours include this media
    scenes: list[dict]  # the best scene matches: query scene_index, this media's scene_index, score

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def similar_to_vectors(vectors: np.ndarray, model_id: str, k: int = 10, *, exclude: Sequence[str] = (),
                       flt: Optional[IndexFilter] = None, per_scene: int = 20,
                       lake: Optional[LakehouseResource] = None,
                       vector_index: Optional[VectorIndexResource] = None) -> list[Similar]:
    """The media nearest a set of keyframe vectors (a media's scenes), best first: each
    keyframe asks the index for its ``per_scene`` nearest scenes; a media's score is the
    mean over the query keyframes of its best match (0 where it had none), so one shared
    frame ranks below a media that matches throughout."""
    lake = lake or LakehouseResource()
    if vector_index is None:
        vector_index, _ = default_indexes()
    flt = flt or IndexFilter()
    q = replace(flt, item_kinds=["scene"], exclude_media_ids=list(exclude) + list(flt.exclude_media_ids or []))
    best: dict[str, dict[int, tuple[float, int]]] = {}
    for qi, vec in enumerate(np.asarray(vectors, dtype=np.float32)):
        for m in vector_index.query(model_id, vec, per_scene, q):
            cur = best.setdefault(m.media_id, {}).get(qi)
            if cur is None or m.score > cur[0]:
                best[m.media_id][qi] = (float(m.score), int(m.item_index))
    n = max(1, len(vectors))
    ranked = sorted(best.items(), key=lambda kv: -sum(s for s, _ in kv[1].values()) / n)[:k]
    uris = {r["media_id"]: r["source_uri"] for r in lake.read_keys(
        "media", "media_id", [mid for mid, _ in ranked], columns=["media_id", "source_uri"]).to_pylist()}
    return [Similar(media_id=mid, source_uri=uris.get(mid), score=round(sum(s for s, _ in per.values()) / n, 4),
                    matched_scenes=len(per),
                    scenes=[{"query_scene": qi, "scene_index": si, "score": round(s, 4)}
                            for qi, (s, si) in sorted(per.items(), key=lambda kv: -kv[1][0])[:5]])
            for mid, per in ranked]


def similar_media(target: str, k: int = 10, *, lake: Optional[LakehouseResource] = None,
                  clip: Optional[ClipResource] = None, vector_index: Optional[VectorIndexResource] = None) -> dict:
    """Media similar to ``target``: a media_id in the lakehouse (its scene vectors, itself
    left out) or a file that was never ingested (its shots found and keyframes embedded on
    the fly with the model that runs here; nothing is written). Returns {query, media}."""
    import io
    import os

    import pyarrow.dataset as pads
    from PIL import Image

    lake = lake or LakehouseResource()
    clip = clip or ClipResource()
    if vector_index is None:
        vector_index, _ = default_indexes()
    served, _ = clip.route()
    known = lake.read_keys("media", "media_id", [target], columns=["media_id", "source_uri"]).to_pylist()
    if known:
        rows = lake.read("embeddings", columns=["item_index", "model_id", "vector"],
                         filter=(pads.field("media_id") == target) & (pads.field("item_kind") == "scene")).to_pylist()
        models = sorted({r["model_id"] for r in rows}, key=lambda m: (m != served, m))
        if not models:
            raise ValueError(f"media {target} has no scene vectors (audio only, or not through scene_embeddings yet)")
        model_id = models[0]
        vectors = np.asarray([r["vector"] for r in sorted(rows, key=lambda r: r["item_index"])
                              if r["model_id"] == model_id], dtype=np.float32)
        query = {"media_id": target, "label": f"media {target} ({known[0]['source_uri']})", "model_id": model_id,
                 "scenes": len(vectors)}
        exclude = [target]
    elif os.path.isfile(target):
        from .media.probe import probe
        from .media.shots import ShotParams, image_keyframe, scan_video

        facts = probe(target)
        params = ShotParams(mode="cheap")  # a query, not a lakehouse row: the fast detector is enough
        if facts.get("kind") == "image":
            shots = [image_keyframe(target, params)]
        elif facts.get("has_video"):
            shots = list(scan_video(target, params))
        else:
            raise ValueError(f"{target} has no picture: similar media are found by their keyframes")
        images = [Image.open(io.BytesIO(sh.keyframe_jpeg)).convert("RGB") for sh in shots]
        embedder = clip.embedder()
        vectors = np.asarray(embedder.embed(images), dtype=np.float32)
        model_id = embedder.model_id
        query = {"file": os.path.abspath(target), "label": os.path.basename(target), "model_id": model_id,
                 "scenes": len(vectors)}
        exclude = []
    else:
        raise ValueError(f"{target!r} is neither a media_id in the lakehouse nor a file")
    media = similar_to_vectors(vectors, model_id, k, exclude=exclude, lake=lake, vector_index=vector_index)
    return {"query": query, "media": media}


__all__ = ["Hit", "KINDS", "Page", "RETRIEVERS", "Similar", "fuse", "search", "search_page", "similar_media", "similar_to_vectors"]
