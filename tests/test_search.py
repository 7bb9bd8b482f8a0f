"""Search that serves, end to end: ten media with known topics go through the real pipeline
(Whisper, RapidOCR, MiniLM, the image-feature fallback) and the `index_entries` stage into a
real LanceDB index; then hybrid search, its filters and pages, why each result matched,
similar media, and the index's upkeep (stale entries, rebuild from the lakehouse alone, a
second model version beside the first, dropping it, removing a media, a failing index).

Retrieval quality is measured here with the same corpus and code as
`python -m mediaintel_dagster.bench.retrieval`: hybrid must be at least as good as each
retriever alone on recall@1, recall@5 and MRR.
"""

import json
import os
import time

import numpy as np
import pyarrow.dataset as pads
import pytest

from mediaintel_dagster.assets.index import KEYWORD_BACKEND, drop_model, index_media, rebuild_index, unindex_media
from mediaintel_dagster.bench import retrieval
from mediaintel_dagster.definitions import build_defs
from mediaintel_dagster.instance import get_instance
from mediaintel_dagster.resources.vector_index import ENTRY_SCHEMA, KEYWORD_MODEL_ID, IndexFilter, entry_id
from mediaintel_dagster.search import RETRIEVERS, fuse, search_page, similar_media
from conftest import ingest_one_window, pipeline_resources, run_cli, set_home, window_of


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, models_dir):
    h = tmp_path_factory.mktemp("search") / "mi"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAINTEL_SHARDS", "1")
        inbox = set_home(mp, h, models_dir) / "inbox"
        paths = retrieval.make_corpus(inbox / "topics")
        res = pipeline_resources(h, models_dir)
        result = ingest_one_window(res, paths.values())
        lake = res["lake"]
        by_uri = {r["source_uri"]: r["media_id"] for r in lake.read("media_sources").to_pylist()}
        media_of = {name: by_uri[str(p.absolute())] for name, p in paths.items()}
        yield {"result": result, "res": res, "lake": lake, "media_of": media_of, "paths": paths, "home": h}


def _search(corpus, text, **kw):
    r = corpus["res"]
    return search_page(text, lake=r["lake"], text_embedder=r["text_embedder"], clip=r["clip"],
                       vector_index=r["vector_index"], text_index=r["text_index"], **kw)


def test_index_entries_mirror_the_embeddings(corpus):
    assert corpus["result"].success
    lake, vindex, tindex = corpus["lake"], corpus["res"]["vector_index"], corpus["res"]["text_index"]
    emb = lake.read("embeddings", columns=["media_id", "item_kind", "item_index", "model_id"]).to_pylist()
    entries = lake.read("index_entries").to_pylist()
    vec_ids = {e["entry_id"] for e in entries if e["backend"] == "lancedb"}
    assert vec_ids == {entry_id(r["media_id"], r["item_kind"], r["item_index"], r["model_id"]) for r in emb}
    # one table per model, each holding exactly its model's vectors
    by_model = {}
    for r in emb:
        by_model[r["model_id"]] = by_model.get(r["model_id"], 0) + 1
    assert vindex.counts() == by_model and len(by_model) == 2  # MiniLM and the image features
    # every text item in the keyword index, and every entry carries its filter fields
    kw = [e for e in entries if e["backend"] == KEYWORD_BACKEND]
    assert tindex.count() == len(kw) > 0 and {e["model_id"] for e in kw} == {KEYWORD_MODEL_ID}
    text_model = corpus["res"]["text_embedder"].model_id
    assert {e["dim"] for e in entries if e["model_id"] == text_model} == {384}
    # the stage is done: a rerun of the window upserts nothing
    audit = lake.read("audit_log", filter=pads.field("asset") == "index_entries").to_pylist()
    assert len(audit) == len(corpus["media_of"]) and {a["status"] for a in audit} == {"written"}


def test_hybrid_is_at_least_as_good_as_each_retriever(corpus):
    r = corpus["res"]
    fn = retrieval.lake_search_fn(lake=r["lake"], text_embedder=r["text_embedder"], clip=r["clip"],
                                  vector_index=r["vector_index"], text_index=r["text_index"])
    results = retrieval.evaluate(corpus["media_of"], fn)
    print("\n" + retrieval.table(results))
    hybrid = results["hybrid"]["all"]
    for mode in ("vector", "keyword"):
        for metric in ("recall@1", "recall@5", "mrr"):
            assert hybrid[metric] >= results[mode]["all"][metric], (mode, metric, results)
    assert hybrid["recall@5"] >= 0.9 and hybrid["mrr"] >= 0.7, results
    # and each retriever has its strength: keywords find their own words, vectors paraphrases
    assert results["keyword"]["keywords"]["mrr"] >= 0.8
    assert results["vector"]["paraphrase"]["mrr"] > results["keyword"]["paraphrase"]["mrr"]


NONSENSE = ("' OR 1=1 --", "asdkjh qwpoe", "zzzz")


def test_weak_matches_are_left_out_and_the_page_says_why(corpus):
    """Nonsense finds (almost) nothing, where it used to fill every page with cosine-0.2
    neighbours; every real query of the retrieval bench keeps its relevant media first."""
    for q in NONSENSE:
        page = _search(corpus, q, k=10)
        assert len(page.hits) <= 1, (q, [(h.text, h.why) for h in page.hits])
        assert page.below_min_score > 0 and page.min_score == 0.25
        assert any("below the minimum score 0.25 were left out" in n for n in page.notes), page.notes
        everything = _search(corpus, q, k=10, min_score=0)  # 0: every hit, however weak, as before
        assert len(everything.hits) == 10 and not any("minimum score" in n for n in everything.notes)
    for t in retrieval.TOPICS:
        for q in (t.paraphrase, t.keywords):
            page = _search(corpus, q, k=5)
            assert page.hits and page.hits[0].media_id == corpus["media_of"][t.name], q
            # what is left is strong: found by keyword, or a cosine of 0.25 and half the best one
            best = max(w["score"] for h in page.hits for w in h.why if w["retriever"] == "vector")
            for h in page.hits:
                scores = {w["retriever"]: w["score"] for w in h.why}
                assert "keyword" in scores or scores["vector"] >= max(0.25, best / 2), (q, h.why)


def test_notes_say_why_a_page_is_empty(corpus):
    scenes = _search(corpus, "volcano", k=5, kinds=["scene"])
    assert not scenes.hits and scenes.notes == [
        "no scene vectors searchable by text: CLIP weights are not installed "
        "(scene_embeddings ran mediaintel/image-features-v1)"]
    german = _search(corpus, "volcano", k=5, flt=IndexFilter(languages=["de"]))
    assert not german.hits and "no media match the filters" in german.notes
    far = _search(corpus, "volcano ash", k=5, page=3)
    assert not far.hits and any(n.startswith("page 3 is past the last hit") for n in far.notes), far.notes
    full = _search(corpus, "the city", k=2, min_score=0)
    assert len(full.hits) == 2 and full.notes == []  # a full page of text hits needs no excuse
    with pytest.raises(ValueError, match="min_score"):
        _search(corpus, "volcano", min_score=1.5)


def test_strong_matches_keep_keyword_hits_and_cut_weak_vectors():
    from mediaintel_dagster.resources.vector_index import Match
    from mediaintel_dagster.search import strong_matches

    vec = [Match("a", "m1", "segment", 0, 0.80, "v"), Match("b", "m2", "segment", 0, 0.35, "v"),
           Match("c", "m3", "ocr", 0, 0.30, "v"), Match("d", "m4", "ocr", 0, 0.10, "v")]
    kw = [Match("k", "m4", "ocr", 0, 1.5, "kw")]
    lists = {"vector": vec, "keyword": kw}
    kept = strong_matches(fuse(lists), lists, 0.25, relative=0.5)
    # m2 and m3 clear the floor but not half of the best cosine (0.40); m4 is weak as a
    # vector match but holds a query word
    assert sorted(it["key"][0] for it in kept) == ["m1", "m4"]
    assert sorted(it["key"][0] for it in strong_matches(fuse(lists), lists, 0.25, relative=0.0)) == \
        ["m1", "m2", "m3", "m4"]
    only_vec = {"vector": vec[1:]}  # the best is 0.35: 0.30 is more than half of it, 0.10 under the floor
    assert [it["key"][0] for it in strong_matches(fuse(only_vec), only_vec, 0.25, relative=0.5)] == ["m2", "m3"]


def test_results_say_why_they_matched(corpus):
    page = _search(corpus, "volcano ash", k=5)
    top = page.hits[0]
    assert top.media_id == corpus["media_of"]["volcano"]
    assert "keyword" in top.matched and {"volcano", "ash"} & set(top.matched_words)
    assert {w["retriever"] for w in top.why} <= set(RETRIEVERS) and all(w["rank"] >= 1 for w in top.why)
    kinds_reasons = {(h.item_kind, m) for h in page.hits for m in h.matched}
    assert kinds_reasons <= {("segment", "speech"), ("ocr", "on-screen text"), ("segment", "keyword"),
                             ("ocr", "keyword"), ("scene", "picture")}
    # without CLIP weights the picture retriever says why it is not used
    assert "no CLIP weights" in page.retrievers["picture"]
    assert [h.score for h in page.hits] == sorted((h.score for h in page.hits), reverse=True)


def test_filters_reach_every_retriever(corpus):
    lake = corpus["lake"]
    media = {r["media_id"]: r for r in lake.read("media").to_pylist()}
    audio_only = _search(corpus, "news about money and traffic", k=20, flt=IndexFilter(media_kinds=["audio"]))
    assert audio_only.hits and {media[h.media_id]["kind"] for h in audio_only.hits} == {"audio"}
    long_only = _search(corpus, "weather", k=50, flt=IndexFilter(min_duration_s=6.5))
    assert all(media[h.media_id]["duration_s"] >= 6.5 for h in long_only.hits)
    prefix = str(corpus["paths"]["volcano"].parent) + "/volc"
    only = _search(corpus, "smoke", k=10, flt=IndexFilter(source_prefix=prefix))
    assert {h.media_id for h in only.hits} == {corpus["media_of"]["volcano"]}
    assert not _search(corpus, "volcano", k=10, flt=IndexFilter(languages=["de"])).hits
    today = time.time()
    assert _search(corpus, "volcano", k=5, flt=IndexFilter(arrived_from_s=today - 86400)).hits
    assert not _search(corpus, "volcano", k=5, flt=IndexFilter(arrived_to_s=today - 86400)).hits


def test_pages_do_not_repeat_and_follow_the_ranking(corpus):
    one = _search(corpus, "the city", k=4, page=1)
    two = _search(corpus, "the city", k=4, page=2)
    whole = _search(corpus, "the city", k=8, page=1)
    keys = lambda hits: [(h.media_id, h.item_kind, h.item_index) for h in hits]  # noqa: E731
    assert len(one.hits) == 4 and keys(one.hits) + keys(two.hits) == keys(whole.hits)
    assert not set(keys(one.hits)) & set(keys(two.hits))


def test_fusion_is_reciprocal_rank():
    from mediaintel_dagster.resources.vector_index import Match

    a = [Match("x", "m1", "segment", 0, 0.9, "v"), Match("y", "m2", "segment", 0, 0.8, "v")]
    b = [Match("y2", "m2", "segment", 0, 12.0, "kw"), Match("z", "m3", "ocr", 1, 3.0, "kw")]
    fused = fuse({"vector": a, "keyword": b})
    assert [f["key"] for f in fused] == [("m2", "segment", 0), ("m1", "segment", 0), ("m3", "ocr", 1)]
    assert fused[0]["score"] == pytest.approx(1 / 62 + 1 / 61)


def test_similar_media_for_a_lakehouse_media_and_a_new_file(corpus, tmp_path):
    r = corpus["res"]
    target = corpus["media_of"]["concert"]
    out = similar_media(target, k=3, lake=r["lake"], clip=r["clip"], vector_index=r["vector_index"])
    assert out["query"]["media_id"] == target and target not in {s.media_id for s in out["media"]}
    assert out["media"] and out["media"][0].matched_scenes >= 1
    # A re-encoded, half-size copy that was never ingested finds its original first.
    import av
    src = str(corpus["paths"]["baking"])
    copy = tmp_path / "baking_small.mp4"
    with av.open(src) as inp, av.open(str(copy), "w") as outc:
        vs = outc.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 240, 136, "yuv420p"
        vs.options = {"crf": "32"}
        for frame in inp.decode(video=0):
            outc.mux(vs.encode(frame.reformat(width=240, height=136)))
        outc.mux(vs.encode(None))
    found = similar_media(str(copy), k=3, lake=r["lake"], clip=r["clip"], vector_index=r["vector_index"])
    assert found["query"]["scenes"] >= 2 and found["media"][0].media_id == corpus["media_of"]["baking"]
    with pytest.raises(ValueError, match="neither a media_id"):
        similar_media("nope", lake=r["lake"], clip=r["clip"], vector_index=r["vector_index"])


def test_stale_entries_go_and_the_index_rebuilds_from_the_lakehouse(corpus, tmp_path):
    from mediaintel_dagster.resources.lance_index import LanceTextIndexResource, LanceVectorIndexResource

    lake, r = corpus["lake"], corpus["res"]
    vindex, tindex = r["vector_index"], r["text_index"]
    mid = corpus["media_of"]["safari"]
    before = vindex.counts()
    # The media loses a keyframe text (OCR rewrote it): its entry leaves both indexes.
    lines = lake.read("ocr_text", filter=pads.field("media_id") == mid)
    gone_scene = lines.column("scene_index")[0].as_py()
    kept = [row for row in lines.to_pylist() if row["scene_index"] != gone_scene]
    lake.replace("ocr_text", kept, keys=[(mid,)])
    emb = lake.read("embeddings", filter=(pads.field("media_id") == mid)).to_pylist()
    emb = [e for e in emb if not (e["item_kind"] == "ocr" and e["item_index"] == gone_scene)]
    lake.replace("embeddings", emb, keys=sorted({(e["media_id"], e["item_kind"], e["model_id"]) for e in emb}))
    rows, stats = index_media(lake, vindex, tindex, [mid])
    lake.replace("index_entries", rows, keys=[(mid, "lancedb"), (mid, KEYWORD_BACKEND)])
    assert stats["entries_deleted"] == 2  # its MiniLM vector and its keyword entry
    text_model = r["text_embedder"].model_id
    assert vindex.counts()[text_model] == before[text_model] - 1
    gone_id = entry_id(mid, "ocr", gone_scene, text_model)
    assert vindex.fetch(text_model, [gone_id]) == {}

    # A new, empty index rebuilt from the lakehouse alone answers like the live one.
    fresh_v = LanceVectorIndexResource(root=str(tmp_path / "rebuilt"))
    fresh_t = LanceTextIndexResource(root=str(tmp_path / "rebuilt"))
    summary = rebuild_index(lake, fresh_v, fresh_t)
    assert fresh_v.counts() == vindex.counts() and fresh_t.count() == tindex.count()
    assert summary["media"] == len(corpus["media_of"])
    q = dict(lake=lake, text_embedder=r["text_embedder"], clip=r["clip"])
    live = search_page("elephants", k=5, vector_index=vindex, text_index=tindex, **q)
    rebuilt = search_page("elephants", k=5, vector_index=fresh_v, text_index=fresh_t, **q)
    assert [(h.media_id, h.item_kind, h.item_index) for h in live.hits] == \
        [(h.media_id, h.item_kind, h.item_index) for h in rebuilt.hits]


def test_a_second_model_version_stays_queryable_until_dropped(corpus):
    lake, r = corpus["lake"], corpus["res"]
    vindex, tindex = r["vector_index"], r["text_index"]
    old_model = r["text_embedder"].model_id
    new_model = old_model + "-v2"
    mid = corpus["media_of"]["rocket"]
    emb = lake.read("embeddings", filter=(pads.field("media_id") == mid) & (pads.field("model_id") == old_model))
    v2 = [{**e, "model_id": new_model} for e in emb.to_pylist()]
    lake.replace("embeddings", v2)
    rows, _ = index_media(lake, vindex, tindex, [mid])
    lake.replace("index_entries", rows, keys=[(mid, "lancedb"), (mid, KEYWORD_BACKEND)])
    counts = vindex.counts()
    assert counts[new_model] == len(v2) and counts[old_model] > 0  # side by side, never mixed
    vec = np.asarray(v2[0]["vector"], np.float32)
    assert vindex.query(new_model, vec, 3)[0].media_id == mid
    assert vindex.query(old_model, vec, 1)[0].score == pytest.approx(1.0, abs=1e-4)
    out = drop_model(lake, vindex, new_model)
    assert out["embeddings_removed"] == len(v2) and new_model not in vindex.counts()
    assert not lake.read("index_entries", filter=pads.field("model_id") == new_model).num_rows
    assert vindex.counts()[old_model] == counts[old_model]


def test_removing_a_media_removes_its_entries(corpus):
    lake, r = corpus["lake"], corpus["res"]
    vindex, tindex = r["vector_index"], r["text_index"]
    mid = corpus["media_of"]["traffic"]
    before_v, before_t = sum(vindex.counts().values()), tindex.count()
    n = unindex_media(lake, vindex, tindex, [mid])
    assert n > 0 and sum(vindex.counts().values()) + tindex.count() == before_v + before_t - n
    hits = _search(corpus, "highway commuters", k=10).hits
    assert mid not in {h.media_id for h in hits}
    assert not lake.read("index_entries", filter=pads.field("media_id") == mid).num_rows
    # and indexing it again brings it back (deterministic ids: the same entries)
    rows, _ = index_media(lake, vindex, tindex, [mid])
    lake.replace("index_entries", rows, keys=[(mid, "lancedb"), (mid, KEYWORD_BACKEND)])
    assert _search(corpus, "highway commuters", k=3).hits[0].media_id == mid


def test_an_index_that_fails_quarantines_and_is_retried(corpus, tmp_path):
    """A broken index (here: a LanceDB root that is a file) quarantines the window's media as
    index_failed, retryable; the run itself succeeds and says what it lost."""
    from mediaintel_dagster.assets import index_entries
    from dagster import materialize

    from mediaintel_dagster.resources.lance_index import LanceTextIndexResource, LanceVectorIndexResource

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    r = corpus["res"]
    broken = {**r, "vector_index": LanceVectorIndexResource(root=str(blocker / "idx")),
              "text_index": LanceTextIndexResource(root=str(blocker / "idx"))}
    partition = window_of(next(iter(corpus["paths"].values())))
    res = materialize([index_entries], partition_key=partition, resources=broken,
                      run_config={"ops": {"index_entries": {"config": {"force": True}}}}, raise_on_error=False)
    assert res.success
    q = corpus["lake"].read("quarantine", filter=pads.field("stage") == "index_entries").to_pylist()
    assert q and {row["error_type"] for row in q} == {"index_failed"} and all(row["retryable"] for row in q)
    # the working index again: the retry clears them
    res = materialize([index_entries], partition_key=partition, resources=r, raise_on_error=False)
    assert res.success
    assert not corpus["lake"].read("quarantine", filter=pads.field("stage") == "index_entries").num_rows


def test_cli_search_json_filters_and_errors(corpus):
    # The module fixture's environment (MEDIAINTEL_HOME and the rest) is set while it is live.
    out = run_cli("search", "volcano ash", "--k", "3", "--json")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert {"media_id", "source_uri", "item_kind", "start_s", "end_s", "score", "matched", "why"} <= set(hits[0])
    assert hits[0]["source_uri"].endswith("volcano.mp4")
    audio = json.loads(run_cli("search", "rocket", "--media-kind", "audio", "--json").stdout)
    assert audio and all(h["source_uri"].endswith(".wav") for h in audio)
    bad = run_cli("search", "x", "--since", "yesterday")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
    stats = json.loads(run_cli("index", "stats").stdout)
    assert stats["backend"] == "lancedb" and sum(stats["vectors"].values()) > 0
    sim = run_cli("similar", corpus["media_of"]["safari"], "--json")
    assert sim.returncode == 0 and json.loads(sim.stdout)["media"]
    assert run_cli("remove", "0123456789abcdef").returncode == 2


def test_cli_search_says_why_it_found_little(corpus):
    weak = run_cli("search", "' OR 1=1 --", "--local")
    assert weak.returncode == 0 and "Traceback" not in weak.stderr, weak.stderr[-3000:]
    assert "below the minimum score" in weak.stderr and "(0 rows)" in weak.stdout
    scenes = run_cli("search", "volcano", "--kind", "scene", "--local", "--json")
    assert scenes.returncode == 0 and json.loads(scenes.stdout) == []
    assert "note: no scene vectors searchable by text: CLIP weights are not installed" in scenes.stderr
    quiet = run_cli("search", "volcano", "--kind", "scene", "--json", "-q")  # the service if one runs, else here
    assert quiet.returncode == 0 and json.loads(quiet.stdout) == [] and quiet.stderr == ""


def test_cli_remove_takes_a_media_out_of_everything(corpus):
    """The takedown of one media (the tests after this one count the media that are left)."""
    lake, r = corpus["lake"], corpus["res"]
    mid = corpus["media_of"]["markets"]
    out = run_cli("remove", mid)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["removed"] == [mid] and summary["index_entries"] > 0 and summary["rows"]["media"] == 1
    for table in ("media", "media_sources", "transcript_segments", "embeddings", "index_entries"):
        assert not lake.read(table, filter=pads.field("media_id") == mid).num_rows, table
    assert mid not in {h.media_id for h in _search(corpus, "investors shares", k=20).hits}
    audit = lake.read("audit_log", filter=(pads.field("media_id") == mid) & (pads.field("status") == "removed"))
    assert audit.num_rows >= 7  # one per stage: the same bytes again are redone by every stage


def test_entry_schema_is_what_backends_take():
    assert ENTRY_SCHEMA.field("vector").type.value_type.bit_width == 32


def test_a_failing_upstream_check_takes_the_window_out_of_the_index(corpus):
    """A vector of the wrong length lands in `embeddings` behind the pipeline's back; the
    blocking contract check fails, the run skips index_entries, and index_guard_sensor asks
    for index_job, which takes the window's media out of the index (quarantined as
    check_failed). Once the rows are fixed and pass, a retry puts them back."""
    from dagster import AssetKey, build_sensor_context

    from mediaintel_dagster.sensors import index_guard_sensor

    lake, r = corpus["lake"], corpus["res"]
    vindex = r["vector_index"]
    defs = build_defs(r)
    instance = get_instance()
    partition = window_of(next(iter(corpus["paths"].values())))
    text_model = r["text_embedder"].model_id
    mid = corpus["media_of"]["election"]
    flt = (pads.field("media_id") == mid) & (pads.field("model_id") == text_model)
    good = lake.read("embeddings", filter=flt).to_pylist()
    bad = [dict(row) for row in good]
    bad[0]["vector"] = bad[0]["vector"][:100]
    lake.replace("embeddings", bad)  # no writer tag: a repair by hand, judged again
    before = sum(vindex.counts().values())

    ingest = defs.resolve_job_def("ingest_job")
    run = ingest.execute_in_process(partition_key=partition, instance=instance, raise_on_error=False,
                                    asset_selection=[AssetKey("text_embeddings"), AssetKey("index_entries")])
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks["check_embeddings_contract"] is False
    assert sum(vindex.counts().values()) == before, "the skipped index step changed nothing"

    tick = index_guard_sensor(build_sensor_context(instance=instance, definitions=defs))
    assert [q.partition_key for q in tick.run_requests] == [partition]
    again = index_guard_sensor(build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor))
    assert not again.run_requests, "each failure is acted on once"
    guard = defs.resolve_job_def("index_job").execute_in_process(
        partition_key=partition, instance=instance, run_config=tick.run_requests[0].run_config)
    assert guard.success
    assert sum(vindex.counts().values()) == 0 and r["text_index"].count() == 0
    q = lake.read("quarantine", filter=pads.field("stage") == "index_entries").to_pylist()
    assert len(q) == lake.read("media").num_rows and {row["error_type"] for row in q} == {"check_failed"}

    lake.replace("embeddings", good)  # fixed
    fixed = ingest.execute_in_process(partition_key=partition, instance=instance, raise_on_error=False,
                                      asset_selection=[AssetKey("text_embeddings"), AssetKey("index_entries")])
    assert fixed.success
    assert sum(vindex.counts().values()) == before
    assert not lake.read("quarantine", filter=pads.field("stage") == "index_entries").num_rows


def test_the_same_pipeline_serves_from_pinecone(corpus):
    """The production backend end to end, against the Pinecone stand-in (tests/pinecone_standin.py,
    NOT Pinecone: it speaks the data-plane REST protocol the real client sends): the index is
    built from the lakehouse through the same index_media, one stand-in index per vector
    dimension (MiniLM 384, image features 512), and hybrid search through Pinecone returns
    what it returns through LanceDB."""
    from pinecone_standin import PineconeStandIn

    from mediaintel_dagster.resources.pinecone_index import PineconeVectorIndexResource

    lake, r = corpus["lake"], corpus["res"]
    with PineconeStandIn(api_key="k", dimension=384) as text_ix, PineconeStandIn(api_key="k", dimension=512) as img_ix:
        pine = PineconeVectorIndexResource(api_key="k", host=f"{text_ix.host},{img_ix.host}", timeout_s=5, retries=2)
        try:
            summary = rebuild_index(lake, pine, r["text_index"], drop=False)
            assert summary["media"] == lake.read("media").num_rows
            assert pine.counts() == r["vector_index"].counts()
            q = dict(lake=lake, text_embedder=r["text_embedder"], clip=r["clip"], text_index=r["text_index"])
            for text in ("volcano ash", "citizens casting ballots", "car accident on the motorway"):
                via_lance = search_page(text, k=5, vector_index=r["vector_index"], **q).hits
                via_pine = search_page(text, k=5, vector_index=pine, **q).hits
                assert [(h.media_id, h.item_kind, h.item_index) for h in via_pine] == \
                    [(h.media_id, h.item_kind, h.item_index) for h in via_lance], text
            filtered = search_page("rocket", k=10, vector_index=pine, retrievers=["vector"],
                                   flt=IndexFilter(media_kinds=["audio"]), **q).hits
            media = {m["media_id"]: m["kind"] for m in lake.read("media").to_pylist()}
            assert filtered and {media[h.media_id] for h in filtered} == {"audio"}
            # the stage's writes went through batched upserts, not one call per vector
            assert len(text_ix.calls("/vectors/upsert")) < pine.counts()[r["text_embedder"].model_id]
        finally:
            ids = sorted(corpus["media_of"].values())
            lake.replace("index_entries", [], keys=[(m, "pinecone") for m in ids])
