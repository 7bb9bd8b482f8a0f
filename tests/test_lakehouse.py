"""The lakehouse resource: contract schemas, idempotent replace, audit, concurrent writers."""

from __future__ import annotations

import pyarrow as pa
import pytest
from processes import run_spawned

from mediaintel_dagster.lake import schemas
from mediaintel_dagster.resources import LakehouseResource
from mediaintel_dagster.resources.lakehouse import key_predicate

CONTRACT = {
    "media": "media_id, sha256, source_uri, size_bytes, duration_s, has_video, has_audio, width, height, fps, ingested_at",
    "media_sources": "source_uri, media_id, seen_at",
    "quarantine": "source_uri, stage, error_type, message, seen_at",
    "scenes": "media_id, scene_index, start_s, end_s, keyframe_s",
    "transcript_segments": "media_id, segment_index, start_s, end_s, text, language, avg_logprob",
    "ocr_text": "media_id, scene_index, text, confidence",
    "embeddings": "media_id, item_kind, item_index, model_id, vector",
    "index_entries": "entry_id, media_id, item_kind, item_index, model_id, backend",
    "near_duplicates": "media_id, duplicate_of, method, score",
    "audit_log": "asset, partition, media_id, run_id, code_version, model_id, rows, delta_version, at",
}


@pytest.mark.parametrize("table", sorted(CONTRACT))
def test_contract_columns_exist(table):
    names = set(schemas.schema(table).names)
    missing = [c.strip() for c in CONTRACT[table].split(",") if c.strip() not in names]
    assert not missing, f"{table} lacks contract columns {missing}"


def _scenes(media_id: str, n: int, tag: str = "a") -> list[dict]:
    return [{"media_id": media_id, "scene_index": i, "start_s": float(i), "end_s": i + 1.0,
             "keyframe_s": i + 0.5, "code_version": tag} for i in range(n)]


def test_replace_is_idempotent_and_scoped_to_keys(lake):
    v1 = lake.replace("scenes", _scenes("m1", 3) + _scenes("m2", 2))
    before = lake.read("scenes").sort_by([("media_id", "ascending"), ("scene_index", "ascending")])
    v2 = lake.replace("scenes", _scenes("m1", 3))
    after = lake.read("scenes").sort_by([("media_id", "ascending"), ("scene_index", "ascending")])
    assert after.equals(before), "writing the same rows twice must give the same table"
    assert v2 == v1 + 1
    # m1 now has one scene: its three old rows go, m2 is untouched.
    lake.replace("scenes", _scenes("m1", 1, tag="b"))
    rows = lake.read("scenes").to_pylist()
    assert sorted((r["media_id"], r["scene_index"], r["code_version"]) for r in rows) == [
        ("m1", 0, "b"), ("m2", 0, "a"), ("m2", 1, "a")]
    # Replacing with no rows but a key deletes that media's rows.
    lake.replace("scenes", [], keys=[("m2",)])
    assert lake.read("scenes").column("media_id").to_pylist() == ["m1"]


def test_multi_column_keys_keep_other_models(lake):
    vec = [0.1] * 4
    lake.replace("embeddings", [
        {"media_id": "m", "item_kind": "scene", "item_index": 0, "model_id": "clip", "vector": vec},
        {"media_id": "m", "item_kind": "segment", "item_index": 0, "model_id": "minilm", "vector": vec},
    ])
    lake.replace("embeddings", [{"media_id": "m", "item_kind": "scene", "item_index": 0, "model_id": "clip", "vector": [0.2] * 4}])
    rows = sorted((r["item_kind"], r["model_id"], round(r["vector"][0], 3)) for r in lake.read("embeddings").to_pylist())
    assert rows == [("scene", "clip", 0.2), ("segment", "minilm", 0.1)]


def test_key_predicate_escapes_quotes(lake):
    uri = "/inbox/it's here.mp4"
    assert key_predicate(["source_uri"], [(uri,)]) == "source_uri IN ('/inbox/it''s here.mp4')"
    lake.replace("media_sources", [{"source_uri": uri, "media_id": "a"}, {"source_uri": "/x.mp4", "media_id": "b"}])
    lake.replace("media_sources", [{"source_uri": uri, "media_id": "c"}])
    assert sorted(lake.read("media_sources").column("media_id").to_pylist()) == ["b", "c"]


def test_schema_is_enforced(lake):
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError)):
        lake.replace("scenes", [{"media_id": "m", "scene_index": "not a number"}])
    with pytest.raises(KeyError, match="unknown lakehouse table"):
        lake.uri("scenez")


def test_audit_log_appends_with_version(lake):
    version = lake.replace("scenes", _scenes("m1", 2))
    lake.audit([{"asset": "scenes", "partition": "2026-01-01|0", "media_id": "m1", "run_id": "r",
                 "code_version": "scenes@1", "rows": 2, "delta_version": version}])
    lake.audit([{"asset": "scenes", "partition": "2026-01-01|0", "media_id": "m1", "run_id": "r2",
                 "code_version": "scenes@1", "rows": 2, "delta_version": version}])
    log = lake.read("audit_log").to_pylist()
    assert [r["run_id"] for r in sorted(log, key=lambda r: r["at"])] == ["r", "r2"]
    assert all(r["at"] is not None and r["delta_version"] == version for r in log)


def test_read_as_of_earlier_version(lake):
    v1 = lake.replace("scenes", _scenes("m1", 2))
    lake.replace("scenes", _scenes("m1", 5))
    assert lake.dataset("scenes", as_of_version=v1).count_rows() == 2
    assert lake.dataset("scenes").count_rows() == 5


# ---- concurrent writers: real processes (spawn: a forked child near deltalake panics) ----
def _writer(args):
    root, worker, mode, retries, barrier = args
    lake = LakehouseResource(root=root, max_commit_retries=retries)
    lake.ensure("scenes")
    lake.ensure("audit_log")
    barrier.wait(timeout=120)  # all writers start together, whatever their import times
    failures = 0
    for rep in range(3):
        media_id = "shared" if mode == "same" else f"m{worker}"
        try:
            lake.replace("scenes", _scenes(media_id, 4, tag=f"w{worker}r{rep}"))
            lake.audit([{"asset": "scenes", "media_id": media_id, "run_id": f"w{worker}", "rows": 4}])
        except Exception:
            failures += 1
    return failures


def _run_writers(root: str, mode: str, retries: int, n: int = 6) -> int:
    return sum(run_spawned(_writer, [(root, i, mode, retries) for i in range(n)]))


def test_parallel_writers_of_different_media_lose_nothing(tmp_path):
    root = str(tmp_path / "lake")
    assert _run_writers(root, "disjoint", retries=12) == 0
    lake = LakehouseResource(root=root)
    rows = lake.read("scenes").to_pylist()
    assert len(rows) == 6 * 4, "each of 6 media keeps exactly its 4 rows"
    assert {r["media_id"] for r in rows} == {f"m{i}" for i in range(6)}
    for i in range(6):  # every media holds one writer's last write, never a mix
        tags = {r["code_version"] for r in rows if r["media_id"] == f"m{i}"}
        assert tags == {f"w{i}r2"}
    assert lake.read("audit_log").num_rows == 6 * 3


def test_commit_conflicts_happen_and_are_retried(tmp_path):
    # Control: writers replacing the same media's rows without retries do lose races ...
    assert _run_writers(str(tmp_path / "noretry"), "same", retries=0) > 0
    # ... and with retries every write lands and the table holds exactly one writer's rows.
    root = str(tmp_path / "retry")
    assert _run_writers(root, "same", retries=12) == 0
    lake = LakehouseResource(root=root)
    rows = lake.read("scenes").to_pylist()
    assert len(rows) == 4 and len({r["code_version"] for r in rows}) == 1
    assert lake.read("audit_log").num_rows == 6 * 3
