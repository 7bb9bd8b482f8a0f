"""The table rules on Arrow tables directly: good rows pass, each corruption is named."""

from __future__ import annotations

import math

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


def test_every_contract_table_has_a_spec():
    assert set(SPECS) == {"media", "media_sources", "scenes", "transcript_segments", "ocr_text", "embeddings"}
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
