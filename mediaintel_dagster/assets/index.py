"""Index entries: every vector of a media in the serving index, and every text in the keyword index.

The stage reads what the embedding stages wrote (`embeddings`, every model_id the media
has) and the texts they embedded (``item_texts``), and keeps the serving index in step with
the lakehouse:

- vectors go to the configured vector index (``vector_index``: LanceDB on local disk, or
  Pinecone), one table or namespace per model_id, so vectors of two models never meet;
- texts (transcript segments, the lines read on each keyframe) go to the keyword index
  (``text_index``: LanceDB full-text search, BM25);
- entry ids are deterministic (``media_id:item_kind:item_index:model_id``), so an upsert
  is idempotent and a rerun writes the same entries;
- an entry the media no longer has (a re-cut into fewer scenes, a segment the guard now
  flags) is deleted from the index: the stage knows a media's old entries from the
  `index_entries` table, upserts the new ones first and then deletes the difference, so a
  search never finds nothing in between;
- a model change is a backfill: the new model's vectors are indexed beside the old ones
  (both queryable) until ``mediaintel index drop OLD_MODEL_ID`` removes the old.

The same function rebuilds the index from the lakehouse alone (``rebuild_index``) and
removes a media from it (``unindex_media``), so there is one way entries are made.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from dagster import MetadataValue

from ..lake import schemas
from ..media.errors import ErrorCode, MediaError
from ..resources.lakehouse import LakehouseResource, utcnow
from ..resources.vector_index import (
    ENTRY_SCHEMA, KEYWORD_MODEL_ID, TEXT_ENTRY_SCHEMA, TextIndexResource, VectorIndexResource, entry_id,
)
from .stage import Outcome, Stage, StageRun, Stopwatch
from .text_embeddings import item_texts

CODE_VERSION = "index_entries@1"
KEYWORD_BACKEND = "lancedb-fts"
UPSTREAM = ("text_embeddings", "scene_embeddings")


def media_facts(lake: LakehouseResource, ids: Sequence[str]) -> dict[str, dict]:
    """What a filter can ask about each media: kind, duration, source, arrival time (the
    earliest mtime it was delivered with, the time that put it in its arrival window) and
    its main spoken language (the most common language of its transcript segments)."""
    ids = list(ids)
    facts = {r["media_id"]: {"media_kind": r["kind"], "duration_s": r["duration_s"], "source_uri": r["source_uri"],
                             "arrived_at_s": None, "language": None}
             for r in lake.read_keys("media", "media_id", ids,
                                     columns=["media_id", "kind", "duration_s", "source_uri"]).to_pylist()}
    for r in lake.read_keys("media_sources", "media_id", ids, columns=["media_id", "mtime_ns"]).to_pylist():
        f = facts.get(r["media_id"])
        if f is not None and r["mtime_ns"] is not None:
            t = r["mtime_ns"] / 1e9
            f["arrived_at_s"] = t if f["arrived_at_s"] is None else min(f["arrived_at_s"], t)
    langs: dict[str, Counter] = {}
    for r in lake.read_keys("transcript_segments", "media_id", ids, columns=["media_id", "language"]).to_pylist():
        if r["language"]:
            langs.setdefault(r["media_id"], Counter())[r["language"]] += 1
    for mid, c in langs.items():
        if mid in facts:
            facts[mid]["language"] = c.most_common(1)[0][0]
    return facts


def segment_languages(lake: LakehouseResource, ids: Sequence[str]) -> dict[tuple[str, int], str]:
    return {(r["media_id"], r["segment_index"]): r["language"]
            for r in lake.read_keys("transcript_segments", "media_id", list(ids),
                                    columns=["media_id", "segment_index", "language"]).to_pylist()}


def _filter_columns(keys: list[tuple[str, str, int]], facts: dict, seg_lang: dict) -> dict[str, list]:
    cols: dict[str, list] = {n: [] for n in ("media_id", "item_kind", "item_index", "media_kind", "duration_s",
                                             "language", "arrived_at_s", "source_uri")}
    for mid, kind, idx in keys:
        f = facts.get(mid, {})
        cols["media_id"].append(mid)
        cols["item_kind"].append(kind)
        cols["item_index"].append(int(idx))
        cols["media_kind"].append(f.get("media_kind"))
        cols["duration_s"].append(f.get("duration_s"))
        lang = seg_lang.get((mid, int(idx))) if kind == "segment" else None
        cols["language"].append(lang or f.get("language"))
        cols["arrived_at_s"].append(f.get("arrived_at_s"))
        cols["source_uri"].append(f.get("source_uri"))
    return cols


def build_entries(lake: LakehouseResource, ids: Sequence[str]) -> tuple[dict[str, pa.Table], pa.Table]:
    """The index entries these media should have, from the lakehouse alone:
    ({model_id: ENTRY_SCHEMA table}, TEXT_ENTRY_SCHEMA table)."""
    ids = sorted(set(ids))
    facts = media_facts(lake, ids)
    seg_lang = segment_languages(lake, ids)
    emb = lake.read_keys("embeddings", "media_id", ids,
                         columns=["media_id", "item_kind", "item_index", "model_id", "vector"])
    vectors: dict[str, pa.Table] = {}
    for model_id in sorted(set(emb.column("model_id").to_pylist()) - {None}):
        part = emb.filter(pc.equal(emb.column("model_id"), model_id))
        keys = list(zip(*(part.column(c).to_pylist() for c in ("media_id", "item_kind", "item_index"))))
        cols = _filter_columns(keys, facts, seg_lang)
        vectors[model_id] = pa.table({
            "entry_id": [entry_id(m, k, i, model_id) for m, k, i in keys], "model_id": [model_id] * len(keys),
            **cols, "vector": part.column("vector").cast(pa.list_(pa.float32()))}, schema=ENTRY_SCHEMA)
    items, texts = item_texts(lake, ids)
    cols = _filter_columns(items, facts, seg_lang)
    text = pa.table({"entry_id": [entry_id(m, k, i, KEYWORD_MODEL_ID) for m, k, i in items], **cols,
                     "text": texts}, schema=TEXT_ENTRY_SCHEMA)
    return vectors, text


def old_entries(lake: LakehouseResource, ids: Sequence[str], backends: Iterable[str]) -> pa.Table:
    return lake.read("index_entries", columns=["entry_id", "media_id", "model_id", "backend"],
                     filter=pads.field("media_id").isin(list(ids)) & pads.field("backend").isin(list(backends)))


def index_media(lake: LakehouseResource, vector_index: VectorIndexResource, text_index: TextIndexResource,
                ids: Sequence[str], *, code_version: str = CODE_VERSION) -> tuple[pa.Table, dict]:
    """Put these media's entries in the index and delete the ones they no longer have.
    Returns (their `index_entries` rows, counts). Raises if the index refuses a call."""
    backend = vector_index.backend
    vectors, text = build_entries(lake, ids)
    old = old_entries(lake, ids, [backend, KEYWORD_BACKEND])
    stats: Counter = Counter()
    new_ids: set[str] = set()
    rows: list[pa.Table] = []
    at = utcnow()

    def entries_rows(table: pa.Table, model_id: str, be: str, dim: Optional[int]) -> pa.Table:
        n = table.num_rows
        return pa.table({
            "entry_id": table.column("entry_id"), "media_id": table.column("media_id"),
            "item_kind": table.column("item_kind"), "item_index": table.column("item_index"),
            "model_id": pa.array([model_id] * n, pa.string()), "backend": pa.array([be] * n, pa.string()),
            "namespace": pa.array([model_id] * n, pa.string()), "dim": pa.array([dim] * n, pa.int32()),
            "indexed_at": pa.array([at] * n, schemas.TS), "code_version": pa.array([code_version] * n, pa.string()),
        })

    for model_id, table in vectors.items():
        if table.num_rows:
            stats["vectors_upserted"] += vector_index.upsert(model_id, table)
        dim = len(table.column("vector")[0]) if table.num_rows else None
        rows.append(entries_rows(table, model_id, backend, dim))
        new_ids.update(table.column("entry_id").to_pylist())
    if text.num_rows:
        stats["texts_upserted"] += text_index.upsert(text)
    rows.append(entries_rows(text, KEYWORD_MODEL_ID, KEYWORD_BACKEND, None))
    new_ids.update(text.column("entry_id").to_pylist())

    # Then what the media no longer have (after the upserts: never a moment with neither).
    stats["entries_deleted"] += delete_entries(vector_index, text_index,
                                               [r for r in old.to_pylist() if r["entry_id"] not in new_ids])
    out = pa.concat_tables(rows) if rows else schemas.schema("index_entries").empty_table()
    return out, dict(stats)


def delete_entries(vector_index: VectorIndexResource, text_index: TextIndexResource, entries: Iterable[dict]) -> int:
    """Delete these `index_entries` rows' entries from the index they live in (the keyword
    index, or the vector index's table/namespace of their model); the count."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in entries:
        groups.setdefault((r["backend"], r["model_id"]), []).append(r["entry_id"])
    for (be, model_id), gone in sorted(groups.items()):
        (text_index.delete(gone) if be == KEYWORD_BACKEND else vector_index.delete(model_id, gone))
    return sum(len(g) for g in groups.values())


def unindex_media(lake: LakehouseResource, vector_index: VectorIndexResource, text_index: TextIndexResource,
                  ids: Sequence[str], *, write: bool = True) -> int:
    """Delete every entry of these media from the index and (``write``) from `index_entries`
    (a media removed from the lakehouse, or whose upstream check failed); the count deleted."""
    old = old_entries(lake, ids, [vector_index.backend, KEYWORD_BACKEND])
    delete_entries(vector_index, text_index, old.to_pylist())
    if ids and write:
        lake.replace("index_entries", [], keys=[(m, b) for m in ids for b in (vector_index.backend, KEYWORD_BACKEND)],
                     writer="index_entries")
    return old.num_rows


def upstream_check_keys() -> list:
    """The blocking contract check of every stage upstream of the index (its deps, theirs, ...;
    not the near-duplicate stages beside it, whose failure says nothing about what is served)."""
    from dagster import AssetCheckKey, AssetKey

    from . import STAGES

    by_asset = {s.name: s for s in STAGES}
    by_asset.update({spec.key.to_user_string(): s for s in STAGES for spec in s.also})
    seen: dict[str, Stage] = {}
    todo = list(UPSTREAM)
    while todo:
        stage = by_asset.get(todo.pop())
        if stage is not None and stage.name not in seen:
            seen[stage.name] = stage
            todo += list(stage.deps)
    return [AssetCheckKey(AssetKey(s.name), f"check_{s.table}_contract") for s in seen.values()]


def failed_upstream_checks(instance, partition: Optional[str]) -> list[str]:
    """The upstream contract checks whose newest evaluation of this window failed."""
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as S

    failed = []
    for key in upstream_check_keys():
        history = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, status={S.SUCCEEDED, S.FAILED},
            partition_filter=PartitionKeyFilter(key=partition) if partition else None)
        if history and history[0].status == S.FAILED:
            failed.append(f"{key.name} on {key.asset_key.to_user_string()}")
    return failed


def index_window(run: StageRun, todo: list[dict]):
    """The due media's entries, in one upsert per model (and one for the keyword index)."""
    ids = [m["media_id"] for m in todo]
    vindex, tindex = run.resource("vector_index"), run.resource("text_index")
    failed = failed_upstream_checks(run.context.instance, run.partition)
    if failed:
        # Rows a blocking check rejected must not be served: the window's media leave the
        # index (and index_entries) until the upstream rows are fixed and pass again.
        removed = unindex_media(run.lake, vindex, tindex, ids, write=False)
        run.stats["entries_deleted"] += removed
        run.log.warning(f"index_entries: {', '.join(failed)} failed for window {run.partition}: "
                        f"{len(ids)} media taken out of the index ({removed} entries)")
        err = MediaError(ErrorCode.CHECK_FAILED, f"upstream check failed: {', '.join(failed)}")
        for mid in ids:
            yield Outcome(mid, error=err)
        return
    clock = Stopwatch()
    try:
        rows, stats = index_media(run.lake, vindex, tindex, ids)
    except Exception as exc:  # noqa: BLE001 - the index is a service: its failure quarantines, retried later
        run.log.warning(f"index_entries: the {vindex.backend} index failed: {type(exc).__name__}: {exc}")
        err = MediaError(ErrorCode.INDEX_FAILED, f"{vindex.backend}: {type(exc).__name__}: {exc}")
        for mid in ids:
            yield Outcome(mid, error=err)
        return
    run.model_seconds += clock.seconds
    run.stats.update(stats)
    run.metadata["backend"] = vindex.backend
    run.metadata["index_seconds"] = round(clock.seconds, 3)
    run.metadata["entries_by_model"] = MetadataValue.json(
        dict(Counter(rows.column("model_id").to_pylist())) if rows.num_rows else {})
    mids = rows.column("media_id")
    for m in todo:
        yield Outcome(m["media_id"], rows=rows.filter(pc.equal(mids, m["media_id"])),
                      media_seconds=m.get("duration_s") or 0.0)


def rebuild_index(lake: LakehouseResource, vector_index: VectorIndexResource, text_index: TextIndexResource,
                  *, drop: bool = True, chunk: int = 200) -> dict:
    """The whole serving index again from the lakehouse alone (a lost or new index, a
    backend move): every model's table or namespace is dropped first (``drop``), then every
    media with vectors or text is indexed in chunks, and `index_entries` rewritten to match."""
    ids = sorted(set(lake.read("media", columns=["media_id"]).column("media_id").to_pylist()))
    if drop:
        for model_id in list(vector_index.counts()):
            vector_index.drop(model_id)
        gone = lake.read("index_entries", columns=["entry_id"],
                         filter=pads.field("backend") == KEYWORD_BACKEND).column("entry_id").to_pylist()
        if gone:
            text_index.delete(gone)
        old_keys = {(r["media_id"], r["backend"]) for r in lake.read(
            "index_entries", columns=["media_id", "backend"],
            filter=pads.field("backend").isin([vector_index.backend, KEYWORD_BACKEND])).to_pylist()}
        if old_keys:
            lake.replace("index_entries", [], keys=old_keys, writer="index_entries")
    total: Counter = Counter()
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        rows, stats = index_media(lake, vector_index, text_index, part)
        lake.replace("index_entries", rows, keys=[(m, b) for m in part
                                                  for b in (vector_index.backend, KEYWORD_BACKEND)],
                     writer="index_entries")
        total.update(stats)
        total["media"] += len(part)
    total["optimize"] = vector_index.optimize() or {}
    return dict(total)


def drop_model(lake: LakehouseResource, vector_index: VectorIndexResource, model_id: str) -> dict:
    """Retire a model's vectors once its successor is indexed (``mediaintel index drop``):
    its table or namespace in the index, its `index_entries` rows and its `embeddings` rows
    (the lakehouse is the index's source: rows left there would be indexed again)."""
    entries = lake.read("index_entries", columns=["media_id", "backend"],
                        filter=pads.field("model_id") == model_id)
    emb = lake.read("embeddings", columns=["media_id", "item_kind", "model_id"],
                    filter=pads.field("model_id") == model_id)
    if not entries.num_rows and not emb.num_rows and model_id not in vector_index.counts():
        raise ValueError(f"no vectors of {model_id!r} in the index or the lakehouse")
    vector_index.drop(model_id)
    if entries.num_rows:
        # index_entries is keyed by (media, backend): rewrite those media's other models' rows.
        keys = sorted({(r["media_id"], r["backend"]) for r in entries.to_pylist()})
        keep = lake.read("index_entries", filter=pads.field("media_id").isin(sorted({k[0] for k in keys}))
                         & (pads.field("model_id") != model_id))
        lake.replace("index_entries", keep, keys=keys, writer="index_entries")
    if emb.num_rows:
        lake.replace("embeddings", [], keys=sorted({(r["media_id"], r["item_kind"], r["model_id"])
                                                    for r in emb.to_pylist()}), writer="index_entries")
    return {"model_id": model_id, "index_entries_removed": entries.num_rows, "embeddings_removed": emb.num_rows}


def summarize(run: StageRun, rows) -> dict:
    if not rows.num_rows:
        return {}
    vindex = run.resource("vector_index")
    try:
        counts = vindex.counts()
    except Exception:  # noqa: BLE001 - numbers for the UI only
        counts = {}
    return {"index_counts": MetadataValue.json(counts)} if counts else {}


INDEX = Stage(
    name="index_entries", table="index_entries", code_version=CODE_VERSION, group="search",
    description=(
        "The serving index, kept in step with the lakehouse: every vector in `embeddings` (all model_ids the "
        "media has) in the vector index (`vector_index`: LanceDB under MEDIAINTEL_INDEX by default, Pinecone in "
        "production), one table or namespace per model_id, and every transcript segment and keyframe text in "
        "the keyword (BM25) index (`text_index`, LanceDB full-text search). Entry ids are "
        "`media_id:item_kind:item_index:model_id`, so upserts are idempotent; a media's entries it no longer "
        "has are deleted after the new ones are in. Each entry carries the filter fields (media kind, duration, "
        "language, arrival time, source) so a filtered search needs no join. One row per entry in the Delta "
        "table `index_entries` (entry_id, media_id, item_kind, item_index, model_id, backend, namespace, dim). "
        "A media waits for both embedding stages; an index that refuses or times out quarantines the window's "
        "media as `index_failed` (retried)."
    ),
    compute=index_window, batch=True, deps=UPSTREAM, after=UPSTREAM, resources=("vector_index", "text_index"),
    media_columns=("media_id", "source_uri", "duration_s"),
    replace_keys=lambda run, mid: [(mid, run.resource("vector_index").backend), (mid, KEYWORD_BACKEND)],
    summarize=summarize,
)
INDEX_CODE_VERSION = INDEX.code_version
index_entries = INDEX.asset()
