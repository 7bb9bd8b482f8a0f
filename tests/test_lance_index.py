"""The embedded serving index (resources/lance_index.py) on real LanceDB tables in tmp_path."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest

from mediaintel_dagster.resources.lance_index import (
    LanceTextIndexResource,
    LanceVectorIndexResource,
    filter_sql,
    vector_table_name,
)
from mediaintel_dagster.resources.vector_index import (
    ENTRY_SCHEMA,
    KEYWORD_MODEL_ID,
    TEXT_ENTRY_SCHEMA,
    IndexFilter,
    entry_id,
)

CLIP = "open_clip/ViT-B-32@abc"
MINILM = "sentence-transformers/all-MiniLM-L6-v2@1"


def unit(rng, n, dim):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def meta_rows(n, start=0, **over):
    """Filter columns for n entries; ``over`` replaces a column (list of n values)."""
    idx = range(start, start + n)
    cols = dict(
        media_id=[f"m{i % 10}" for i in idx],
        item_kind=[("segment", "ocr", "scene")[i % 3] for i in idx],
        item_index=list(idx),
        media_kind=[("video", "audio", "image")[i % 3] for i in idx],
        duration_s=[float(i % 50) for i in idx],
        language=[("en", "de", None)[i % 3] for i in idx],
        arrived_at_s=[1_700_000_000.0 + 3600 * (i % 24) for i in idx],
        source_uri=[f"/inbox/{('a', 'b')[i % 2]}/{i}.mp4" for i in idx],
    )
    cols.update(over)
    return cols


def vec_entries(model, vectors, start=0, **over) -> pa.Table:
    n = len(vectors)
    cols = meta_rows(n, start, **over)
    cols["entry_id"] = [entry_id(m, k, i, model) for m, k, i in zip(cols["media_id"], cols["item_kind"], cols["item_index"])]
    cols["model_id"] = [model] * n
    cols["vector"] = [list(map(float, v)) for v in vectors]
    return pa.table({f: cols[f] for f in ENTRY_SCHEMA.names}, schema=ENTRY_SCHEMA)


def text_entries(texts, start=0, **over) -> pa.Table:
    n = len(texts)
    cols = meta_rows(n, start, **over)
    cols["entry_id"] = [entry_id(m, k, i, KEYWORD_MODEL_ID)
                        for m, k, i in zip(cols["media_id"], cols["item_kind"], cols["item_index"])]
    cols["text"] = list(texts)
    return pa.table({f: cols[f] for f in TEXT_ENTRY_SCHEMA.names}, schema=TEXT_ENTRY_SCHEMA)


@pytest.fixture
def vindex(tmp_path):
    return LanceVectorIndexResource(root=str(tmp_path / "index"), ann_min_rows=1_000_000)


def test_defaults_come_from_the_environment_at_construction(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAINTEL_INDEX", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MEDIAINTEL_INDEX_ANN_MIN_ROWS", "1234")
    r = LanceVectorIndexResource()
    assert (r.root, r.ann_min_rows, r.backend) == (str(tmp_path / "elsewhere"), 1234, "lancedb")
    assert LanceTextIndexResource().root == str(tmp_path / "elsewhere")


def test_upsert_is_idempotent_and_replaces_by_id(vindex):
    rng = np.random.default_rng(1)
    v = unit(rng, 300, 32)
    t = vec_entries(CLIP, v)
    assert vindex.upsert(CLIP, t) == 300
    vindex.upsert(CLIP, t)
    assert vindex.counts() == {CLIP: 300}

    # Re-upsert 5 rows with new vectors: still 300 rows, and the new vectors are what is stored.
    new = unit(rng, 5, 32)
    vindex.upsert(CLIP, vec_entries(CLIP, new, start=0))
    assert vindex.counts() == {CLIP: 300}
    got = vindex.fetch(CLIP, t["entry_id"].to_pylist()[:5] + ["no:such:0:id"])
    assert set(got) == set(t["entry_id"].to_pylist()[:5])
    for i, eid in enumerate(t["entry_id"].to_pylist()[:5]):
        np.testing.assert_allclose(got[eid], new[i], rtol=1e-6)
    top = vindex.query(CLIP, new[2], 3)
    assert top[0].entry_id == t["entry_id"][2].as_py() and top[0].score == pytest.approx(1.0, abs=1e-5)
    assert (top[0].media_id, top[0].item_kind, top[0].item_index, top[0].model_id) == ("m2", "scene", 2, CLIP)
    assert top[0].score >= top[1].score >= top[2].score

    # Duplicate ids inside one batch: the last one wins, no duplicate rows.
    dup = pa.concat_tables([vec_entries(CLIP, v[:1]), vec_entries(CLIP, new[:1])])
    vindex.upsert(CLIP, dup)
    assert vindex.counts() == {CLIP: 300}
    np.testing.assert_allclose(vindex.fetch(CLIP, [t["entry_id"][0].as_py()])[t["entry_id"][0].as_py()], new[0], rtol=1e-6)


def test_delete_by_ids(vindex):
    v = unit(np.random.default_rng(2), 50, 16)
    t = vec_entries(CLIP, v)
    vindex.upsert(CLIP, t)
    ids = t["entry_id"].to_pylist()
    assert vindex.delete(CLIP, ids[:3] + ["unknown:segment:0:x"]) == 4
    assert vindex.counts() == {CLIP: 47}
    assert vindex.fetch(CLIP, ids[:4]).keys() == {ids[3]}
    assert all(m.entry_id not in ids[:3] for m in vindex.query(CLIP, v[0], 50))
    assert vindex.delete("never/indexed@1", ["x"]) == 1  # no table: nothing to do


# Values with the characters that break naive SQL: quotes, LIKE wildcards, backslash.
HOSTILE_SOURCES = ["/in/50%_off/a.mp4", "/in/50%_off/b.mp4", "/in/50xxoff/c.mp4", "/in/5_0/d.mp4", "/in/it's/e.mp4",
                   "/in/back\\slash/f.mp4", "/in/its/g.mp4", "/in/50%/h.mp4"]


@pytest.mark.parametrize("flt, keep", [
    (IndexFilter(media_kinds=["video"]), lambda r: r["media_kind"] == "video"),
    (IndexFilter(media_kinds=["video", "image"]), lambda r: r["media_kind"] in ("video", "image")),
    (IndexFilter(media_kinds=[]), lambda r: False),
    (IndexFilter(item_kinds=["ocr"]), lambda r: r["item_kind"] == "ocr"),
    (IndexFilter(languages=["de"]), lambda r: r["language"] == "de"),
    (IndexFilter(languages=["o'brien"]), lambda r: r["language"] == "o'brien"),
    (IndexFilter(min_duration_s=10.0), lambda r: r["duration_s"] >= 10),
    (IndexFilter(max_duration_s=10.0), lambda r: r["duration_s"] <= 10),
    (IndexFilter(min_duration_s=5, max_duration_s=7), lambda r: 5 <= r["duration_s"] <= 7),
    (IndexFilter(arrived_from_s=1_700_000_000.0 + 3600 * 5), lambda r: r["arrived_at_s"] >= 1_700_000_000.0 + 3600 * 5),
    (IndexFilter(arrived_to_s=1_700_000_000.0 + 3600 * 5), lambda r: r["arrived_at_s"] < 1_700_000_000.0 + 3600 * 5),
    (IndexFilter(source_prefix="/in/50%_"), lambda r: r["source_uri"].startswith("/in/50%_")),
    (IndexFilter(source_prefix="/in/5_"), lambda r: r["source_uri"].startswith("/in/5_")),
    (IndexFilter(source_prefix="/in/it's"), lambda r: r["source_uri"].startswith("/in/it's")),
    (IndexFilter(source_prefix="/in/back\\"), lambda r: r["source_uri"].startswith("/in/back\\")),
    (IndexFilter(source_prefix="/in/50%"), lambda r: r["source_uri"].startswith("/in/50%")),
    (IndexFilter(media_ids=["m1", "q'uote"]), lambda r: r["media_id"] in ("m1", "q'uote")),
    (IndexFilter(exclude_media_ids=["m1", "m2", "q'uote"]), lambda r: r["media_id"] not in ("m1", "m2", "q'uote")),
    (IndexFilter(media_kinds=["video"], languages=["en"], min_duration_s=3, source_prefix="/in/50"),
     lambda r: r["media_kind"] == "video" and r["language"] == "en" and r["duration_s"] >= 3
     and r["source_uri"].startswith("/in/50")),
])
@pytest.mark.parametrize("ann", [False, True], ids=["exact", "ann"])
def test_every_filter_field_pushed_into_vector_and_keyword_search(tmp_path, flt, keep, ann):
    n = 96
    over = dict(
        source_uri=[HOSTILE_SOURCES[i % len(HOSTILE_SOURCES)] for i in range(n)],
        media_id=[("m1", "m2", "m3", "q'uote")[i % 4] for i in range(n)],
        language=[("en", "de", None, "o'brien")[i % 4] for i in range(n)],
        duration_s=[float(i % 12) for i in range(n)],
    )
    # ann: the filters then go through the scalar indexes (BTREE, BITMAP) an ANN table gets.
    vindex = LanceVectorIndexResource(root=str(tmp_path / "index"), ann_min_rows=50 if ann else 10**9)
    tindex = LanceTextIndexResource(root=str(tmp_path / "index"))
    v = unit(np.random.default_rng(3), n, 8)
    t = vec_entries(CLIP, v, **over)
    vindex.upsert(CLIP, t)
    assert vindex.optimize()[CLIP].startswith("built" if ann else "exact")
    tindex.upsert(text_entries(["shared word"] * n, **over))
    rows = t.drop_columns(["vector"]).to_pylist()
    expected = {r["entry_id"] for r in rows if keep(r)}
    got = {m.entry_id for m in vindex.query(CLIP, v[0], n, flt)}
    assert got == expected
    keyword_expected = {e.replace(CLIP, KEYWORD_MODEL_ID) for e in expected}
    assert {m.entry_id for m in tindex.search("word", n, flt)} == keyword_expected


def test_filter_sql_rejects_non_finite_bounds():
    assert filter_sql(None) is None and filter_sql(IndexFilter()) is None
    with pytest.raises(ValueError):
        filter_sql(IndexFilter(min_duration_s=float("nan")))


def test_models_have_separate_tables_and_dims(vindex):
    rng = np.random.default_rng(4)
    clip_v, mini_v = unit(rng, 40, 512), unit(rng, 60, 384)
    vindex.upsert(CLIP, vec_entries(CLIP, clip_v))
    vindex.upsert(MINILM, vec_entries(MINILM, mini_v))
    assert vindex.counts() == {CLIP: 40, MINILM: 60}
    assert vector_table_name(CLIP) != vector_table_name(CLIP + "x") and "/" not in vector_table_name(CLIP)
    assert {m.model_id for m in vindex.query(CLIP, clip_v[0], 100)} == {CLIP}
    assert all(m.entry_id.endswith(":" + MINILM) for m in vindex.query(MINILM, mini_v[0], 100))
    assert len(vindex.query(MINILM, mini_v[0], 100)) == 60
    with pytest.raises(ValueError):  # a 384-d batch into the 512-d model
        vindex.upsert(CLIP, vec_entries(CLIP, unit(rng, 2, 384), start=100))
    with pytest.raises(ValueError):  # entries of another model
        vindex.upsert(CLIP, vec_entries(MINILM, mini_v[:2]))
    with pytest.raises(ValueError):
        vindex.query(CLIP, mini_v[0], 5)
    vindex.drop(MINILM)
    vindex.drop(MINILM)  # dropping twice is fine
    assert vindex.counts() == {CLIP: 40}
    assert vindex.query(MINILM, mini_v[0], 5) == []


def clustered(rng, n, dim, clusters=20, latent=16):
    """Unit vectors with structure: a mixture of clusters in a low-dimensional subspace."""
    basis = np.linalg.qr(rng.standard_normal((dim, latent)))[0]
    centers = rng.standard_normal((clusters, latent)) * 1.5
    z = centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, latent)) * 0.5
    x = z @ basis.T + rng.standard_normal((n, dim)) * 0.02
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ann_index_recall_and_rows_after_the_build(tmp_path):
    rng = np.random.default_rng(5)
    dim, n = 64, 2100
    data = clustered(rng, n + 60, dim)
    base, later, queries = data[:2000], data[2000:2100], data[2100:]
    vindex = LanceVectorIndexResource(root=str(tmp_path / "index"), ann_min_rows=1500, ann_partition_rows=100)
    vindex.upsert(CLIP, vec_entries(CLIP, base[:1000]))
    assert vindex.optimize() == {CLIP: "exact search"}  # below ann_min_rows
    vindex.upsert(CLIP, vec_entries(CLIP, base[1000:], start=1000))
    assert vindex.optimize()[CLIP].startswith("built")
    assert vindex.optimize() == {CLIP: "up to date"}

    def recall(vectors, ids):
        hits = 0
        for q in queries:
            truth = {ids[i] for i in np.argsort(-(vectors @ q))[:10]}
            hits += len(truth & {m.entry_id for m in vindex.query(CLIP, q, 10)})
        return hits / (10 * len(queries))

    ids = vec_entries(CLIP, base)["entry_id"].to_pylist()
    assert recall(base, ids) >= 0.9

    # Rows written after the build are found before optimize() folds them in, and after.
    t_later = vec_entries(CLIP, later, start=2000)
    vindex.upsert(CLIP, t_later)
    later_ids = t_later["entry_id"].to_pylist()
    assert vindex.query(CLIP, later[7], 1)[0].entry_id == later_ids[7]
    vindex.upsert(CLIP, t_later)  # re-upsert of unindexed rows, with the entry_id BTREE built
    vindex.upsert(CLIP, vec_entries(CLIP, base[:50]))  # and of indexed ones
    assert vindex.counts() == {CLIP: 2100}
    assert vindex.optimize()[CLIP].startswith("refreshed")
    assert vindex.query(CLIP, later[7], 1)[0].entry_id == later_ids[7]
    everything = np.concatenate([base, later])
    assert recall(everything, ids + later_ids) >= 0.9

    # A selective filter (~1% of rows) on the ANN path, with 1 of 20 partitions probed: few
    # matches are searched exactly; with that off, the ANN search widens until k pass.
    narrow = vindex.model_copy(update={"nprobes": 1})
    flt = IndexFilter(media_ids=["m3"], item_kinds=["scene"], max_duration_s=20)
    rows = vec_entries(CLIP, everything).drop_columns(["vector"]).to_pylist()
    expected = [i for i, r in enumerate(rows) if r["media_id"] == "m3" and r["item_kind"] == "scene"
                and r["duration_s"] <= 20]
    widen = vindex.model_copy(update={"nprobes": 1, "exact_filter_rows": 0})  # the other way past a short result
    for q in queries[:5]:
        truth = [rows[i]["entry_id"] for i in np.array(expected)[np.argsort(-(everything[expected] @ q))[:10]]]
        assert [m.entry_id for m in narrow.query(CLIP, q, 10, flt)] == truth
        got = [m.entry_id for m in widen.query(CLIP, q, 10, flt)]
        assert len(got) == 10 and len(set(got) & set(truth)) >= 8
    # Fewer matches than k in all: every one of them, best first.
    few = IndexFilter(media_ids=["m3"], item_kinds=["ocr"], min_duration_s=43, max_duration_s=43)
    expected = [i for i, r in enumerate(rows) if r["media_id"] == "m3" and r["item_kind"] == "ocr" and r["duration_s"] == 43]
    assert len(expected) == 14
    got = narrow.query(CLIP, queries[0], 20, few)
    assert [m.entry_id for m in got] == [rows[i]["entry_id"] for i in np.array(expected)[np.argsort(-(everything[expected] @ queries[0]))]]

    # Grown past twice its partitions' worth of rows, the table gets a fresh index.
    more = clustered(np.random.default_rng(55), 2000, dim)
    vindex.upsert(CLIP, vec_entries(CLIP, more, start=5000))
    assert vindex.optimize()[CLIP].startswith("rebuilt IVF_SQ over 4100 rows (41 partitions)")
    table = vindex._table(CLIP)
    assert [i.name for i in table.list_indices() if "vector" in i.columns] == ["vector_ivfsq_p41"]
    assert vindex.query(CLIP, more[3], 1)[0].entry_id == vec_entries(CLIP, more[3:4], start=5003)["entry_id"][0].as_py()


def test_keyword_search_bm25_later_rows_replacements_and_hostile_text(tmp_path):
    tindex = LanceTextIndexResource(root=str(tmp_path / "index"), reindex_rows=10**9)
    texts = ["the harbour crane lifts containers", "weather report rain later", "harbour harbour harbour news",
             "a long story about many things and once a harbour somewhere in the middle of it all", "sports results"]
    t = text_entries(texts)
    assert tindex.upsert(t) == 5
    tindex.upsert(t)
    assert tindex.count() == 5
    hits = tindex.search("harbour", 10)
    ids = t["entry_id"].to_pylist()
    # BM25: term frequency up, document length down.
    assert [m.entry_id for m in hits] == [ids[2], ids[0], ids[3]]
    assert hits[0].score > hits[1].score > hits[2].score > 0
    assert hits[0].extra["text"] == texts[2] and hits[0].model_id == KEYWORD_MODEL_ID

    # After the index was built: new rows are found, replaced text is searched as replaced.
    tindex.upsert(text_entries(["harbour pilots strike"], start=5))
    tindex.upsert(text_entries(["sports results harbour"], start=4))
    assert tindex.count() == 6
    found = {m.entry_id for m in tindex.search("harbour", 10)}
    assert ids[4] in found and len(found) == 5
    assert [m.entry_id for m in tindex.search("pilots", 10)] == [text_entries(["x"], start=5)["entry_id"][0].as_py()]
    assert tindex.optimize() == {"keyword": "refreshed FTS index"}
    assert {m.entry_id for m in tindex.search("harbour", 10)} == found

    tindex.delete([ids[2]])
    assert ids[2] not in {m.entry_id for m in tindex.search("harbour", 10)} and tindex.count() == 5

    for q in ["'", '"', 'harbour" OR "1"="1', "(harbour", "harbour*", "AND", "NOT harbour", "text:harbour",
              "\\", "'; DROP TABLE keyword_bm25; --", "harbour's", "+harbour -rain", "harbour~2", "[]{}^?",
              "🚢 harbour", "", "   ", "the", "a" * 500]:
        result = tindex.search(q, 10)  # never raises
        assert all(m.extra["text"] for m in result)
        if "harbour" in q:
            assert result, q
    assert LanceTextIndexResource(root=str(tmp_path / "empty")).search("harbour", 5) == []


def test_threads_share_one_connection(vindex):
    rng = np.random.default_rng(6)
    v = unit(rng, 400, 16)
    vindex.upsert(CLIP, vec_entries(CLIP, v[:100]))

    def work(i):
        if i % 4 == 0:
            vindex.upsert(CLIP, vec_entries(CLIP, v[100 + 3 * i: 103 + 3 * i], start=100 + 3 * i))
        return len(vindex.query(CLIP, v[i], 5))

    with ThreadPoolExecutor(4) as pool:
        assert all(n == 5 for n in pool.map(work, range(80)))
    assert vindex.counts() == {CLIP: 100 + 3 * 20}


def _upsert_worker(root: str, start: int, batches: int, per: int) -> None:
    rng = np.random.default_rng(start)
    vindex = LanceVectorIndexResource(root=root, ann_min_rows=10**9)
    tindex = LanceTextIndexResource(root=root)
    for b in range(batches):
        s = start + b * per
        vindex.upsert(CLIP, vec_entries(CLIP, unit(rng, per, 16), start=s))
        tindex.upsert(text_entries([f"batch {b} of {start}"] * per, start=s))


def test_two_processes_upserting_at_once_lose_nothing(tmp_path):
    root = str(tmp_path / "index")
    ctx = mp.get_context("spawn")  # LanceDB's runtime threads and fork do not mix
    procs = [ctx.Process(target=_upsert_worker, args=(root, start, 15, 40)) for start in (0, 100_000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0]
    vindex = LanceVectorIndexResource(root=root)
    assert vindex.counts() == {CLIP: 1200}
    expected = vec_entries(CLIP, np.zeros((600, 16)), start=0)["entry_id"].to_pylist() + \
        vec_entries(CLIP, np.zeros((600, 16)), start=100_000)["entry_id"].to_pylist()
    assert len(vindex.fetch(CLIP, expected)) == 1200
    assert LanceTextIndexResource(root=root).count() == 1200
