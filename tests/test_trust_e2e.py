"""Trust on the REAL stages (phase 2): the checks, blocking, staleness and lineage SQL of
docs/trust.md proven with the code location's own definitions (build_defs), real models
(Whisper base, MiniLM, RapidOCR, the image-features CLIP fallback) on one small generated
window: a 3.5 s video with two captioned shots and a narration, and one captioned image.

One module-scoped ingest run is shared; the tests run in file order (lineage reads the
first run, staleness and blocking runs come after it) and each also works alone.

No `from __future__ import annotations`: nothing Dagster reads is defined here, but keep
the house rule for test modules that build Dagster objects.
"""

import hashlib
import io
import json
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest
from dagster import AssetCheckSeverity, AssetKey

from mediaintel_dagster.definitions import build_defs
from mediaintel_dagster.instance import get_instance
from mediaintel_dagster.lineage import stale_status
from mediaintel_dagster.media.samples import Shot, make_image, make_video
from mediaintel_dagster.resources import WhisperResource
from conftest import pipeline_resources as _resources, window_of

SPEECH = "Good evening, here is the news."
TABLES = ("media", "media_sources", "scenes", "ocr_text", "transcript_segments", "embeddings")


def _ingest(resources: dict, instance, partition: str, force: tuple[str, ...] = ()):
    """One ingest_job run of the real definitions; ``force`` names the stages to redo."""
    run_config = {"ops": {op: {"config": {"force": True}} for op in force}} if force else None
    job = build_defs(resources).resolve_job_def("ingest_job")
    return job.execute_in_process(partition_key=partition, instance=instance, run_config=run_config,
                                  raise_on_error=False)


def _materialized(result) -> set[str]:
    """The stage assets a run materialized (not the bookkeeping tables every stage reports)."""
    return {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()} - {"audit_log", "quarantine"}


def _evals(result) -> dict:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def run(tmp_path_factory, models_dir):
    h = tmp_path_factory.mktemp("trust_e2e") / "mi"
    with pytest.MonkeyPatch.context() as mp:
        # One shard: the video and the image share one window (one run sees both).
        mp.setenv("MEDIAINTEL_SHARDS", "1")
        for k, sub in [("MEDIAINTEL_HOME", ""), ("MEDIAINTEL_LAKE", "lake"), ("MEDIAINTEL_INBOX", "inbox"),
                       ("MEDIAINTEL_OBJECTS", "objects"), ("DAGSTER_HOME", "dagster"),
                       ("MEDIAINTEL_MODELS", None)]:
            mp.setenv(k, str(models_dir) if sub is None else str(h / sub) if sub else str(h))
        inbox = h / "inbox"
        inbox.mkdir(parents=True)
        make_video(inbox / "news.mp4", [Shot(1.75, "BREAKING NEWS", style="stripes", color=(200, 30, 30)),
                                        Shot(1.75, "WEATHER TODAY", style="checker", color=(30, 90, 200))],
                   speech=SPEECH, size=(320, 180), fps=10)
        make_image(inbox / "poster.png", "GRAND OPENING", size=(320, 180))
        windows = {window_of(p) for p in inbox.iterdir()}
        assert len(windows) == 1
        (partition,) = windows
        resources = _resources(h, models_dir)
        instance = get_instance()
        t0 = time.perf_counter()
        first = _ingest(resources, instance, partition)
        seconds = time.perf_counter() - t0
        print(f"first ingest run: {seconds:.1f}s")
        yield {"home": h, "models_dir": models_dir, "resources": resources, "instance": instance,
               "partition": partition, "first": first, "lake": resources["lake"], "inbox": inbox}


# ---- 1. a full run: every asset, every check, every table ---------------------------------

def test_full_run_materializes_everything_and_every_check_passes(run):
    result, lake = run["first"], run["lake"]
    defs = build_defs(run["resources"])
    assert result.success
    every_asset = {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    assert every_asset == {"media", "media_sources", "scenes", "keyframes", "ocr_text", "scene_embeddings",
                           "keyframe_hashes", "near_duplicates", "transcript_segments", "text_embeddings",
                           "index_entries"}
    assert _materialized(result) == every_asset

    evals = _evals(result)
    declared = {(k.asset_key.to_user_string(), k.name) for c in defs.asset_checks for k in c.check_keys}
    assert set(evals) == declared, "every declared check ran"
    contract = {k: e for k, e in evals.items() if k[1].endswith("_contract")}
    # one blocking contract check per contract table's asset (keyframes are objects, not a table)
    assert {a for a, _ in contract} == every_asset - {"keyframes"}
    for key, ev in contract.items():
        assert ev.passed and ev.severity == AssetCheckSeverity.ERROR, (key, ev.metadata.get("findings"))
        if key[0] == "near_duplicates":  # a video and a poster: no pair, and the check saw none
            assert ev.metadata["rows_checked"].value == lake.read("near_duplicates").num_rows == 0, key
        else:
            assert ev.metadata["rows_checked"].value >= 1, key
    drift = {k: e for k, e in evals.items() if k not in contract}
    assert drift, "drift checks ran too"
    for key, ev in drift.items():  # one window, no reference dates: a note, never an ERROR
        assert ev.severity == AssetCheckSeverity.WARN and ev.passed, (key, ev.metadata)

    media = {Path(r["source_uri"]).name: r for r in lake.read("media").to_pylist()}
    assert set(media) == {"news.mp4", "poster.png"}
    video, image = media["news.mp4"]["media_id"], media["poster.png"]["media_id"]
    scenes = lake.read("scenes").to_pylist()
    assert sorted((r["media_id"] == video, r["scene_index"]) for r in scenes) == [(False, 0), (True, 0), (True, 1)]
    ocr = " ".join(r["text"] for r in lake.read("ocr_text").to_pylist()).upper()
    assert "BREAKING" in ocr and "WEATHER" in ocr and "OPENING" in ocr, ocr
    segs = lake.read("transcript_segments").to_pylist()
    assert segs and {r["media_id"] for r in segs} == {video}
    assert "news" in " ".join(r["text"] for r in segs).lower()
    emb = lake.read("embeddings").to_pylist()
    kinds = {k: {(r["media_id"], r["item_index"]) for r in emb if r["item_kind"] == k} for k in ("scene", "segment", "ocr")}
    assert kinds["scene"] == {(r["media_id"], r["scene_index"]) for r in scenes}
    assert kinds["segment"] == {(r["media_id"], r["segment_index"]) for r in segs if r["hallucination"] is None}
    assert kinds["ocr"] and {m for m, _ in kinds["ocr"]} == {video, image}
    # The vectors the checks held to the real models' dimensions and unit norm (defaults).
    dims = {r["model_id"]: len(r["vector"]) for r in emb}
    assert dims == {run["resources"]["text_embedder"].model_id: 384, run["resources"]["clip"].route()[0]: 512}
    text_check = evals[("text_embeddings", "check_embeddings_contract")]
    assert text_check.metadata["rows_checked"].value == len(kinds["segment"]) + len(kinds["ocr"])


# ---- 4. lineage SQL of docs/trust.md on real rows -----------------------------------------

def _sql(query: str) -> list[dict]:
    from mediaintel_dagster.cli import sql

    out = io.StringIO()
    assert sql(query, fmt="json", out=out) == 0, query
    return json.loads(out.getvalue())


def test_lineage_sql_on_real_rows(run):
    first, lake, res = run["first"], run["lake"], run["resources"]
    video = run["inbox"] / "news.mp4"
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    # The docs' query: which model, code and run produced each transcript segment.
    rows = _sql("""
      SELECT t.media_id, t.segment_index, t.text, a.model_id, a.code_version, a.run_id, a.delta_version, a.at
      FROM transcript_segments t
      JOIN audit_log a ON a.media_id = t.media_id AND a.table_name = 'transcript_segments' AND a.status = 'written'
      QUALIFY row_number() OVER (PARTITION BY t.media_id, t.segment_index ORDER BY a.at DESC) = 1""")
    assert len(rows) == lake.read("transcript_segments").num_rows >= 1
    for r in rows:
        assert r["model_id"] == res["whisper"].model_id == "faster-whisper/base@auto"
        assert r["code_version"] == "transcripts@4" and r["run_id"] == first.run_id
        assert r["delta_version"] == lake.version("transcript_segments")
        assert r["media_id"] == sha[:16]

    # Every vector back to its model, its run and the file bytes it came from.
    rows = _sql("""
      SELECT e.item_kind, e.item_index, e.model_id AS row_model, a.model_id, a.asset, a.run_id,
             m.sha256, m.size_bytes, s.source_uri
      FROM embeddings e
      JOIN audit_log a ON a.media_id = e.media_id AND a.table_name = 'embeddings' AND a.status = 'written'
                      AND a.model_id = e.model_id
      JOIN media m ON m.media_id = e.media_id
      JOIN media_sources s ON s.media_id = e.media_id
      WHERE s.source_uri LIKE '%news.mp4'
      QUALIFY row_number() OVER (PARTITION BY e.media_id, e.item_kind, e.item_index, e.model_id ORDER BY a.at DESC) = 1
      ORDER BY e.item_kind, e.item_index""")
    by_kind = {}
    for r in rows:
        by_kind.setdefault(r["item_kind"], []).append(r)
        assert r["sha256"] == sha and r["size_bytes"] == video.stat().st_size
        assert r["run_id"] == first.run_id and r["row_model"] == r["model_id"]
    assert set(by_kind) == {"scene", "segment", "ocr"}
    assert {r["model_id"] for r in by_kind["scene"]} == {res["clip"].route()[0]}, "the model that ran here"
    assert {r["asset"] for r in by_kind["scene"]} == {"scene_embeddings"}
    for kind in ("segment", "ocr"):
        assert {r["model_id"] for r in by_kind[kind]} == {res["text_embedder"].model_id}
        assert {r["asset"] for r in by_kind[kind]} == {"text_embeddings"}

    # The docs' "everything one run did".
    did = {r["asset"]: (r["table_name"], r["status"], r["media"], r["rows"]) for r in _sql(f"""
        SELECT asset, table_name, status, count(*) media, sum(rows) rows
        FROM audit_log WHERE run_id = '{first.run_id}' GROUP BY ALL""")}
    n = {t: lake.read(t).num_rows for t in ("scenes", "ocr_text", "transcript_segments")}
    n["text"] = lake.read("embeddings", filter=pads.field("item_kind").isin(["segment", "ocr"])).num_rows
    n["index_entries"] = lake.read("index_entries").num_rows
    n["keyframe_hashes"] = lake.read("keyframe_hashes").num_rows
    n["near_duplicates"] = lake.read("near_duplicates").num_rows
    assert did == {
        "media": ("media", "written", 2, 2), "media_sources": ("media_sources", "written", 2, 2),
        "scenes": ("scenes", "written", 2, n["scenes"]), "ocr_text": ("ocr_text", "written", 2, n["ocr_text"]),
        "transcript_segments": ("transcript_segments", "written", 2, n["transcript_segments"]),
        "scene_embeddings": ("embeddings", "written", 2, n["scenes"]),
        "text_embeddings": ("embeddings", "written", 2, n["text"]),
        "keyframe_hashes": ("keyframe_hashes", "written", 2, n["keyframe_hashes"]),
        "near_duplicates": ("near_duplicates", "written", 2, n["near_duplicates"]),
        "index_entries": ("index_entries", "written", 2, n["index_entries"]),
    }
    assert n["index_entries"] > 0 and n["keyframe_hashes"] > 0


# ---- 3. staleness on the real stages ------------------------------------------------------

def test_whisper_config_change_shows_stage_then_downstream_stale(run):
    instance, partition, res = run["instance"], run["partition"], run["resources"]
    before = build_defs(res)
    assert set(v["status"] for v in stale_status(instance, before, partition).values()) == {"FRESH"}

    f32 = {**res, "whisper": WhisperResource(model_dir=res["whisper"].model_dir, device="cpu",
                                             compute_type="float32")}
    after = build_defs(f32)
    stale = stale_status(instance, after, partition)
    assert stale["transcript_segments"]["status"] == "STALE"
    assert any(c.startswith("CODE") and "transcript_segments" in c for c in stale["transcript_segments"]["causes"])
    others = {k: v["status"] for k, v in stale.items() if k not in ("transcript_segments", "text_embeddings")}
    assert set(others.values()) == {"FRESH"}, others

    job = after.resolve_job_def("ingest_job")
    rerun = job.execute_in_process(partition_key=partition, instance=instance,
                                   asset_selection=[AssetKey("transcript_segments")])
    assert rerun.success and _materialized(rerun) == {"transcript_segments"}
    rows = run["lake"].read("transcript_segments").to_pylist()
    assert rows and {r["model_id"] for r in rows} == {"faster-whisper/base@float32"}
    stale = stale_status(instance, after, partition)
    assert stale["transcript_segments"]["status"] == "FRESH"
    assert stale["text_embeddings"]["status"] == "STALE", "downstream of the model change"
    assert any(c.startswith("DATA") and "transcript_segments" in c for c in stale["text_embeddings"]["causes"])

    again = job.execute_in_process(partition_key=partition, instance=instance,
                                   asset_selection=[AssetKey("text_embeddings")])
    assert again.success
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    # both media were re-transcribed (the image with no rows) and are embedded again
    assert meta["media_processed"].value == meta["media_in_window"].value == 2
    assert set(v["status"] for v in stale_status(instance, after, partition).values()) == {"FRESH"}


# ---- 2. a failed check on a real stage blocks the steps after it --------------------------

def test_overlapping_scenes_block_ocr_and_scene_embeddings(run, monkeypatch):
    """The real scenes stage, made to emit overlapping shots (its detector patched), fails
    its contract check; OCR, scene and text embeddings do not run in that run."""
    import sys

    scenes_mod = sys.modules["mediaintel_dagster.assets.scenes"]  # the package exports the asset as `scenes`

    instance, partition, res, lake = run["instance"], run["partition"], run["resources"], run["lake"]
    real_scan = scenes_mod.scan_video

    def overlapping(*args, **kw):
        for shot in real_scan(*args, **kw):
            if shot.index == 1:
                shot.start_s -= 0.5  # starts before its predecessor ends
            yield shot

    monkeypatch.setattr(scenes_mod, "scan_video", overlapping)
    versions = {t: lake.version(t) for t in ("ocr_text", "embeddings")}
    bad = _ingest(res, instance, partition, force=("scenes",))
    assert not bad.success
    ev = _evals(bad)[("scenes", "check_scenes_contract")]
    assert not ev.passed and ev.severity == AssetCheckSeverity.ERROR
    assert "no_overlap" in ev.metadata["failed_rules"].value
    assert "scenes" in _materialized(bad), "the stage itself ran and wrote its rows"
    blocked = {"ocr_text", "scene_embeddings", "text_embeddings"}
    assert not blocked & _materialized(bad)
    assert not blocked & {e.step_key for e in bad.get_step_success_events()}
    assert {t: lake.version(t) for t in versions} == versions, "the tables downstream are untouched"
    assert _evals(bad)[("transcript_segments", "check_transcript_segments_contract")].passed

    # The detector fixed, a forced rerun writes good scenes and everything flows on again.
    monkeypatch.setattr(scenes_mod, "scan_video", real_scan)
    fixed = _ingest(res, instance, partition, force=("scenes",))
    assert fixed.success and blocked <= _materialized(fixed)
    assert _evals(fixed)[("scenes", "check_scenes_contract")].passed
    # The scenes were rewritten (new keyframes, new boundaries): the stages reading them
    # redo both media without being forced, as the audit trail says scenes changed after them.
    meta = {m.asset_key.to_user_string(): m.materialization.metadata for m in fixed.get_asset_materialization_events()}
    for stage in ("ocr_text", "scene_embeddings"):
        assert meta[stage]["media_processed"].value == 2, (stage, meta[stage]["media_skipped_done"])
    assert meta["transcript_segments"]["media_processed"].value == 0, "not downstream of scenes: skipped as done"


def test_segment_past_the_end_blocks_text_embeddings(run, monkeypatch):
    """The real transcription stage, its Whisper result extended past the media's end, fails
    its contract check; text_embeddings does not run and `embeddings` is unchanged."""
    instance, partition, res, lake = run["instance"], run["partition"], run["resources"], run["lake"]
    real = WhisperResource.transcribe

    def past_end(self, audio):
        out = real(self, audio)
        out.segments[-1]["end_s"] += 5.0
        return out

    monkeypatch.setattr(WhisperResource, "transcribe", past_end)
    before = lake.version("embeddings")
    emb_before = sorted((r["media_id"], r["item_kind"], r["item_index"], r["model_id"])
                        for r in lake.read("embeddings").to_pylist())
    bad = _ingest(res, instance, partition, force=("transcript_segments",))
    assert not bad.success
    ev = _evals(bad)[("transcript_segments", "check_transcript_segments_contract")]
    assert not ev.passed and ev.severity == AssetCheckSeverity.ERROR
    assert "inside_media" in ev.metadata["failed_rules"].value
    finding = next(f for f in ev.metadata["findings"].value if f["rule"] == "inside_media")
    (mid, _, end, duration) = finding["examples"][0]
    assert end > duration + 1.0
    assert lake.read("transcript_segments", filter=pads.field("end_s") > duration + 1.0).num_rows == 1
    assert "transcript_segments" in _materialized(bad)
    assert "text_embeddings" not in _materialized(bad)
    assert "text_embeddings" not in {e.step_key for e in bad.get_step_success_events()}
    assert lake.version("embeddings") == before
    assert sorted((r["media_id"], r["item_kind"], r["item_index"], r["model_id"])
                  for r in lake.read("embeddings").to_pylist()) == emb_before
    # The other stages' checks passed: only the transcript's failure held text_embeddings back.
    failed = {k for k, e in _evals(bad).items() if not e.passed}
    assert failed == {("transcript_segments", "check_transcript_segments_contract")}
