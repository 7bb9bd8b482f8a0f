"""The table rules on Arrow tables directly: good rows pass, each corruption is named."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from mediaintel_dagster.checks.drift import (
    asr_confidence_drift,
    centroid_cosine_distance,
    embedding_centroid_drift,
    ks_statistic,
    language_drift,
    total_variation,
)
from mediaintel_dagster.checks.rules import SPECS, RuleContext, evaluate
from mediaintel_dagster.lake.schemas import to_arrow

MID = "a" * 16
MID2 = "b" * 16


def media_row(mid=MID, **kw):
    row = {"media_id": mid, "sha256": (mid or "c" * 16) + "0" * 48, "source_uri": f"/in/{mid}.mp4", "size_bytes": 1000,
           "kind": "video", "duration_s": 10.0, "has_video": True, "has_audio": True, "width": 320,
           "height": 180, "fps": 25.0, "sample_rate": 16000, "channels": 1, "code_version": "media@1",
           "arrival_partition": "2026-11-01|0"}
    row.update(kw)
    return row


def ctx(**kw):
    return RuleContext.from_env([media_row(), media_row(MID2, duration_s=4.0)], **kw)


def rules(findings):
    return sorted({f.rule for f in findings})


def scenes(bounds, mid=MID):
    return [{"media_id": mid, "scene_index": i, "start_s": s, "end_s": e, "keyframe_s": (s + e) / 2}
            for i, (s, e) in enumerate(bounds)]


def segments(items, mid=MID, lang="en"):
    return [{"media_id": mid, "segment_index": i, "start_s": s, "end_s": e, "text": f"words {i}",
             "language": lang, "avg_logprob": -0.3, "model_id": "faster-whisper/base@int8"}
            for i, (s, e) in enumerate(items)]


def vectors(n, dim, model="minilm@1", mid=MID, kind="segment", seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v = rng.normal(size=dim)
        out.append({"media_id": mid, "item_kind": kind, "item_index": i, "model_id": model,
                    "vector": (v / np.linalg.norm(v)).tolist()})
    return out


def test_media_rules():
    good = to_arrow("media", [media_row(), media_row(MID2)])
    assert evaluate("media", good, ctx()) == []
    bad = to_arrow("media", [media_row(), media_row(None), media_row(MID2, duration_s=-1.0),
                             media_row(MID2, kind="pdf", sha256="f" * 64)])
    found = rules(evaluate("media", bad, ctx()))
    assert {"not_null:media_id", "unique:media_id", "between:duration_s", "in_set:kind",
            "media_id_is_sha256_prefix"} <= set(found)
    inf = to_arrow("media", [media_row(duration_s=math.inf)])
    assert rules(evaluate("media", inf, ctx())) == ["between:duration_s"]


def test_media_sources_reference_media():
    rows = to_arrow("media_sources", [
        {"source_uri": "/in/a.mp4", "media_id": MID, "size_bytes": 5, "arrival_partition": "p", "seen_at": None},
        {"source_uri": "/in/c.mp4", "media_id": "c" * 16, "size_bytes": 5, "arrival_partition": "p", "seen_at": None},
    ])
    found = rules(evaluate("media_sources", rows, ctx()))
    assert found == ["media_exists", "not_null:seen_at"]


def test_scenes_cover_duration_without_overlap():
    good = to_arrow("scenes", scenes([(0, 4), (4, 7.5), (7.5, 10.0)]) + scenes([(0, 4.0)], MID2))
    assert evaluate("scenes", good, ctx()) == []
    overlap = to_arrow("scenes", scenes([(0, 5), (4, 10)]))
    assert rules(evaluate("scenes", overlap, ctx())) == ["no_overlap"]
    gap = to_arrow("scenes", scenes([(0, 4), (6, 10)]))
    assert rules(evaluate("scenes", gap, ctx())) == ["no_gap"]
    short = to_arrow("scenes", scenes([(0, 4), (4, 8)]))
    assert rules(evaluate("scenes", short, ctx())) == ["covers_duration"]
    past = to_arrow("scenes", scenes([(0, 4), (4, 12)]))
    assert set(rules(evaluate("scenes", past, ctx()))) == {"covers_duration", "inside_media"}
    rows = scenes([(0, 10)])
    rows[0]["keyframe_s"] = 11.0
    assert "keyframe_in_scene" in rules(evaluate("scenes", to_arrow("scenes", rows), ctx()))
    # Within tolerance (decoders and containers disagree by a frame): fine.
    near = to_arrow("scenes", scenes([(0, 4), (4.02, 9.9)]))
    assert evaluate("scenes", near, ctx()) == []


def test_transcript_segments_rules():
    good = to_arrow("transcript_segments", segments([(0, 2), (2, 5), (5.5, 9.9)]))
    assert evaluate("transcript_segments", good, ctx()) == []
    past_end = to_arrow("transcript_segments", segments([(0, 2), (2, 12)]))
    assert rules(evaluate("transcript_segments", past_end, ctx())) == ["inside_media"]
    disorder = to_arrow("transcript_segments", segments([(0, 2), (5, 7), (3, 4)]))
    assert rules(evaluate("transcript_segments", disorder, ctx())) == ["time_order"]
    rows = segments([(0, 2), (2, 4)])
    rows[1]["language"] = "klingon"
    rows[0]["avg_logprob"] = 0.5
    assert rules(evaluate("transcript_segments", to_arrow("transcript_segments", rows), ctx())) == [
        "between:avg_logprob", "in_set:language"]
    # The allowed set is configuration.
    narrow = ctx(languages=frozenset({"de"}))
    assert rules(evaluate("transcript_segments", good, narrow)) == ["in_set:language"]


def test_ocr_text_rules():
    rows = [{"media_id": MID, "scene_index": 0, "line_index": i, "text": t, "confidence": c, "model_id": "rapidocr@1"}
            for i, (t, c) in enumerate([("OPEN", 0.9), ("SALE", 1.2), ("  ", 0.5)])]
    assert rules(evaluate("ocr_text", to_arrow("ocr_text", rows), ctx())) == ["between:confidence", "text_not_blank"]


def test_embeddings_dimension_and_norm_per_model():
    good = to_arrow("embeddings", vectors(4, 8) + vectors(3, 5, model="clip@1", kind="scene"))
    assert evaluate("embeddings", good, ctx(unit_norm_models=("minilm", "clip"))) == []
    wrong = vectors(4, 8)
    wrong[2]["vector"] = wrong[2]["vector"][:7]
    found = evaluate("embeddings", to_arrow("embeddings", wrong), ctx())
    assert rules(found) == ["dimension_per_model"]
    assert found[0].examples[0] == {"model_id": "minilm@1", "expected": 8, "found": {7: 1}}
    # A whole batch of the wrong length is caught against the configured (or stored) length.
    assert rules(evaluate("embeddings", to_arrow("embeddings", vectors(3, 7)), ctx(embedding_dims={"minilm": 8}))) == [
        "dimension_per_model"]
    zero = vectors(2, 4)
    zero[0]["vector"] = [0.0] * 4
    zero[1]["vector"] = [2.0, 0.0, 0.0, 0.0]
    found = evaluate("embeddings", to_arrow("embeddings", zero), ctx(unit_norm_models=("minilm",)))
    assert rules(found) == ["norm_per_model"] and found[0].count == 2
    assert rules(evaluate("embeddings", to_arrow("embeddings", vectors(2, 4, kind="frame")), ctx())) == ["in_set:item_kind"]


def test_real_models_dimension_and_unit_norm_by_default():
    """The real models' lengths and unit norm hold without configuration: a whole window of
    wrong-length MiniLM vectors (no stored rows to compare with) and a non-unit CLIP-fallback
    vector are caught; a tagged model_id (@version, @sha256) is the same model; another
    architecture sharing a prefix is not held to it."""
    minilm = "sentence-transformers/all-MiniLM-L6-v2@0.1.0"
    fallback = "mediaintel/image-features-v1"
    good = vectors(2, 384, model=minilm) + vectors(2, 512, model=fallback, kind="scene") + vectors(
        2, 512, model="open_clip/ViT-B-32@sha256:0123456789ab", kind="scene")
    assert evaluate("embeddings", to_arrow("embeddings", good), ctx()) == []
    found = evaluate("embeddings", to_arrow("embeddings", vectors(3, 383, model=minilm)), ctx())
    assert rules(found) == ["dimension_per_model"] and found[0].examples[0]["expected"] == 384
    off = vectors(2, 512, model=fallback, kind="scene")
    off[1]["vector"] = [2 * x for x in off[1]["vector"]]
    assert rules(evaluate("embeddings", to_arrow("embeddings", off), ctx())) == ["norm_per_model"]
    other = vectors(2, 24, model="open_clip/ViT-B-32-quickgelu@x", kind="scene")
    other[0]["vector"] = [2 * x for x in other[0]["vector"]]
    assert evaluate("embeddings", to_arrow("embeddings", other), ctx()) == []
    # configuration overrides a known model's length
    assert evaluate("embeddings", to_arrow("embeddings", vectors(3, 383, model=minilm)),
                    ctx(embedding_dims={minilm: 383})) == []


def entry(mid=MID, kind="segment", i=0, model="minilm@1", backend="lancedb", dim=384, **kw):
    row = {"entry_id": f"{mid}:{kind}:{i}:{model}", "media_id": mid, "item_kind": kind, "item_index": i,
           "model_id": model, "backend": backend, "namespace": "t", "dim": dim,
           "indexed_at": datetime.now(timezone.utc), "code_version": "index_entries@1"}
    row.update(kw)
    return row


def test_index_entries_rules():
    kw = "lancedb-fts/bm25@1"
    good = [entry(), entry(i=1), entry(kind="scene", model="clip@1", dim=512),
            entry(model=kw, backend="lancedb-fts", dim=None), entry(backend="pinecone")]
    assert evaluate("index_entries", to_arrow("index_entries", good), ctx()) == []
    cases = {
        "entry_id_deterministic": [entry(entry_id=f"{MID}:segment:7:minilm@1")],
        "dim_matches_backend": [entry(model=kw, backend="lancedb-fts", dim=384)],
        "dim_per_model": [entry(), entry(i=1, dim=768)],
        "media_exists": [entry("f" * 16)],
        "in_set:backend": [entry(backend="faiss")],
        "unique:entry_id+backend": [entry(), entry()],
        "not_null:namespace": [entry(namespace=None)],
    }
    for rule, rows in cases.items():
        assert rules(evaluate("index_entries", to_arrow("index_entries", rows), ctx())) == [rule], rule


def keyframe_hash(mid=MID, scene=0, n=0, **kw):
    h = "0123456789abcdef"
    row = {"media_id": mid, "scene_index": scene, "keyframe_n": n, "keyframe_s": 1.0 + scene,
           "keyframe_uri": f"/k/{mid}/{scene}.jpg", "hash": h, "hash_90": h, "hash_80": h, "hash_tl": h,
           "hash_tr": h, "hash_bl": h, "hash_br": h, "informative": True, "low_info_reason": None,
           "luma_mean": 100.0, "luma_std": 40.0, "edge_density": 0.2, "content_width": 320,
           "content_height": 180, "bar_top": 0, "bar_bottom": 0, "bar_left": 0, "bar_right": 0,
           "code_version": "keyframe_hashes@1"}
    row.update(kw)
    return row


def test_keyframe_hashes_rules():
    good = [keyframe_hash(), keyframe_hash(n=1), keyframe_hash(scene=1, informative=False, low_info_reason="near_black")]
    assert evaluate("keyframe_hashes", to_arrow("keyframe_hashes", good), ctx()) == []
    cases = {
        "hash_64_bit": [keyframe_hash(hash="0123"), keyframe_hash(n=1, hash_tl="zz23456789abcdef")],
        "low_info_reason": [keyframe_hash(informative=False)],
        "in_set:low_info_reason": [keyframe_hash(informative=False, low_info_reason="boring")],
        "between:edge_density": [keyframe_hash(edge_density=1.5)],
        "unique:media_id+scene_index+keyframe_n": [keyframe_hash(), keyframe_hash()],
        "not_null:hash": [keyframe_hash(hash=None)],
    }
    for rule, rows in cases.items():
        assert rules(evaluate("keyframe_hashes", to_arrow("keyframe_hashes", rows), ctx())) == [rule], rule


def duplicate(mid=MID, of=MID2, method="keyframe_sequence", **kw):
    row = {"media_id": mid, "duplicate_of": of, "method": method, "score": 0.9, "relation": "copy",
           "matched_keyframes": 5, "evidence": 4.2, "coverage": 0.9, "duplicate_coverage": 0.85,
           "mean_hash_distance": 3.0, "contradiction": 0.0, "speed_ratio": 1.0, "offset_s": 0.0,
           "source_uri": f"/in/{mid}.mp4", "duplicate_source_uri": f"/in/{of}.mp4",
           "code_version": "near_duplicates@1", "computed_at": datetime.now(timezone.utc)}
    row.update(kw)
    return row


def test_near_duplicates_rules():
    good = [duplicate(), duplicate(of=MID, method="exact_bytes", score=1.0, relation="same_bytes",
                                   duplicate_source_uri="/in/copy.mp4")]
    assert evaluate("near_duplicates", to_arrow("near_duplicates", good), ctx()) == []
    cases = {
        "between:score": [duplicate(score=1.2)],
        "pair_consistent": [duplicate(of=MID)],
        "in_set:relation": [duplicate(relation="similar")],
        "media_exists": [duplicate("f" * 16)],
        "unique:media_id+duplicate_of+method+duplicate_source_uri": [duplicate(), duplicate(score=0.8)],
    }
    for rule, rows in cases.items():
        assert rules(evaluate("near_duplicates", to_arrow("near_duplicates", rows), ctx())) == [rule], rule
    # exact copies are the media's own other locations, at score 1
    bad = duplicate(of=MID, method="exact_bytes", score=0.5, relation="same_bytes")
    assert rules(evaluate("near_duplicates", to_arrow("near_duplicates", [bad]), ctx())) == ["pair_consistent"]


def test_every_contract_table_has_a_spec():
    # every table a stage writes, except the bookkeeping ones (audit, quarantine, stage state)
    assert set(SPECS) == {"media", "media_sources", "scenes", "transcript_segments", "ocr_text", "embeddings",
                          "index_entries", "keyframe_hashes", "near_duplicates"}
    assert all(spec.blocking for spec in SPECS.values())


def test_great_expectations_engine_agrees_with_arrow():
    rows = to_arrow("media", [media_row(), media_row(None), media_row(MID2, duration_s=-1.0),
                              media_row(MID2, kind="pdf")])
    arrow = evaluate("media", rows, ctx())
    ge = evaluate("media", rows, ctx(), engine="ge")
    assert rules(ge) == rules(arrow)
    by_rule = {f.rule: f.count for f in ge}
    assert by_rule["between:duration_s"] == 1 and by_rule["not_null:media_id"] == 1
    seg = segments([(0, 2), (2, 4)])
    seg[1]["language"] = "xx"
    t = to_arrow("transcript_segments", seg)
    assert rules(evaluate("transcript_segments", t, ctx(), engine="ge")) == ["in_set:language"]
    # compound keys and nullable value sets, named alike by both engines
    hashes = to_arrow("keyframe_hashes", [keyframe_hash(), keyframe_hash(),
                                          keyframe_hash(n=1, informative=False, low_info_reason="near_black")])
    assert rules(evaluate("keyframe_hashes", hashes, ctx(), engine="ge")) == rules(
        evaluate("keyframe_hashes", hashes, ctx())) == ["unique:media_id+scene_index+keyframe_n"]


def test_drift_measures():
    assert total_variation({"en": 1.0}, {"en": 1.0}) == 0
    assert total_variation({"en": 1.0}, {"de": 1.0}) == 1
    assert ks_statistic([0, 1, 2], [0, 1, 2]) == 0
    assert ks_statistic([0, 1, 2], [10, 11, 12]) == 1
    ref = to_arrow("transcript_segments", segments([(i, i + 1) for i in range(10)]))
    same = to_arrow("transcript_segments", segments([(i, i + 1) for i in range(8)]))
    shifted = to_arrow("transcript_segments", segments([(i, i + 1) for i in range(4)], lang="en")
                       + segments([(i, i + 1) for i in range(4, 10)], lang="es"))
    assert not language_drift(same, ref).drifted
    res = language_drift(shifted, ref)
    assert res.drifted and res.score == pytest.approx(0.6)
    tiny = to_arrow("transcript_segments", segments([(0, 1)], lang="es"))
    assert not language_drift(tiny, ref).drifted, "too few rows: no verdict"
    low = segments([(i, i + 1) for i in range(8)])
    for r in low:
        r["avg_logprob"] = -1.2
    assert asr_confidence_drift(to_arrow("transcript_segments", low), ref).drifted
    assert not asr_confidence_drift(same, ref).drifted
    # Real embeddings share a dominant direction (anisotropy); the centroid is stable.
    def around(direction, seed):
        rows = vectors(20, 16, seed=seed)
        for r in rows:
            r["vector"] = (np.asarray(r["vector"]) * 0.3 + np.eye(16)[direction]).tolist()
        return to_arrow("embeddings", rows)

    now, ref = around(0, 1), around(0, 2)
    assert embedding_centroid_drift(now, ref, threshold=0.2).score < 0.1
    assert not embedding_centroid_drift(now, ref, threshold=0.2).drifted
    assert embedding_centroid_drift(around(1, 3), ref, threshold=0.2).drifted
    assert centroid_cosine_distance([[1, 0]], [[1, 0]]) == pytest.approx(0)
