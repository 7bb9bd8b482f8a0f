"""Trust on a real Dagster instance and real Delta tables: checks run with the stages,
a failed blocking check stops the downstream step, a model change shows stale, drift warns,
metrics reach Prometheus, logs are JSON when asked.

No `from __future__ import annotations`: Dagster reads the test assets' signatures.
"""


import datetime as dt
import io
import json
import socket
import urllib.request

import numpy as np
import pyarrow.dataset as pads
import pytest
from dagster import (
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetSelection,
    AssetSpec,
    ConfigurableResource,
    MaterializeResult,
    Definitions,
    MultiPartitionKey,
    asset,
    define_asset_job,
    multi_asset,
)

from mediaintel_dagster.assets import media_assets
from mediaintel_dagster.assets.stage import MODEL_RESOURCE_KEY, apply_model_versions, stage_data_version
from mediaintel_dagster.checks import build_checks, drift_checks_for
from mediaintel_dagster.definitions import build_defs
from mediaintel_dagster.instance import get_instance
from mediaintel_dagster.lineage import stale_status
from mediaintel_dagster.partitions import arrival_partitions
from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource
from conftest import copy_into

RAN: list[str] = []  # steps of the test's downstream assets that actually ran


def _resources(home):
    return {"inbox": LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=0.0),
            "lake": LakehouseResource(root=str(home / "lake"))}


def _ingest(home, media_dir, names=("clip.mp4",)):
    """Put files in the inbox and run ingest_job for their window; returns (instance, resources, partition, result)."""
    instance = get_instance()
    res = _resources(home)
    copy_into(media_dir, list(names), home / "inbox")
    partitions = {str(f.partition_key()) for f in res["inbox"].list_files()}
    assert len(partitions) == 1
    partition = partitions.pop()
    result = build_defs(res).resolve_job_def("ingest_job").execute_in_process(partition_key=partition, instance=instance)
    assert result.success
    return instance, res, partition, result


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _run(instance, res, partition, assets, checks):
    defs = Definitions(assets=assets, asset_checks=checks, resources=res,
                       jobs=[define_asset_job("trust_job", AssetSelection.all())])
    RAN.clear()
    return defs.resolve_job_def("trust_job").execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False)


@asset(deps=["media"], partitions_def=arrival_partitions, group_name="test")
def after_media(context: AssetExecutionContext):
    """A stage downstream of media (test stand-in for scenes/transcripts, not merged yet)."""
    RAN.append("after_media")


def test_checks_run_with_ingest_and_pass(home, media_dir):
    instance, res, partition, result = _ingest(home, media_dir)
    evals = _checks(result)
    assert {"check_media_contract", "check_media_sources_contract"} <= set(evals)
    for name in ("check_media_contract", "check_media_sources_contract"):
        assert evals[name].passed, evals[name].metadata
        assert evals[name].metadata["rows_checked"].value >= 1
        assert evals[name].metadata["engine"].value == "ge"
    specs = {s.name: s for c in build_checks([media_assets]) for s in c.check_specs}
    assert specs["check_media_contract"].blocking and specs["check_media_sources_contract"].blocking
    mat = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    meta = mat["media"].materialization.metadata
    assert meta["cpu_seconds"].value > 0
    assert meta["cpu_seconds_per_media_minute"].value > 0
    # Great Expectations is imported by the check, never by loading the code location.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import sys, mediaintel_dagster.definitions as d; "
                          "print('great_expectations' in sys.modules)"], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-500:]


@pytest.mark.parametrize("corruption", ["null_media_id", "negative_duration"])
def test_failed_media_check_blocks_downstream(home, media_dir, corruption):
    instance, res, partition, _ = _ingest(home, media_dir)
    lake = res["lake"]
    assets, checks = [media_assets, after_media], build_checks([media_assets])
    ok = _run(instance, res, partition, assets, checks)
    assert ok.success and RAN == ["after_media"], "control: good data flows on"

    row = lake.read("media").to_pylist()[0]
    if corruption == "null_media_id":
        lake.append("media", [{**row, "media_id": None}])
    else:
        lake.replace("media", [{**row, "duration_s": -1.0}])
    bad = _run(instance, res, partition, assets, checks)
    ev = _checks(bad)["check_media_contract"]
    assert not ev.passed and ev.severity == AssetCheckSeverity.ERROR
    rule = "not_null:media_id" if corruption == "null_media_id" else "between:duration_s"
    assert rule in ev.metadata["failed_rules"].value
    assert RAN == [], "the downstream step must not run"
    assert "after_media" not in {e.step_key for e in bad.get_step_success_events()}
    assert "media_assets" in {e.step_key for e in bad.get_step_success_events()}, "media itself ran"
    assert not bad.success


def _stub_stage(table, downstream):
    """The stage writing ``table`` (its rows are written by the test, as the real stage
    would) and a stage after it; the real ones land in phase 2."""

    @asset(name=table, deps=["media"], partitions_def=arrival_partitions, group_name="test")
    def stage(context: AssetExecutionContext):
        RAN.append(table)

    @asset(name=downstream, deps=[table], partitions_def=arrival_partitions, group_name="test")
    def after(context: AssetExecutionContext):
        RAN.append(downstream)

    return stage, after


def _segments(mid, bounds, lang="en", logprob=-0.3):
    return [{"media_id": mid, "segment_index": i, "start_s": s, "end_s": e, "text": f"w{i}", "language": lang,
             "avg_logprob": logprob, "model_id": "faster-whisper/base@int8"} for i, (s, e) in enumerate(bounds)]


def _vectors(mid, n, dim, model="minilm@1", seed=0):
    rng = np.random.default_rng(seed)
    return [{"media_id": mid, "item_kind": "segment", "item_index": i, "model_id": model,
             "vector": (v / np.linalg.norm(v)).tolist()} for i, v in enumerate(rng.normal(size=(n, dim)))]


def _hashes(mid, n, bad_hash=None):
    rows = [{"media_id": mid, "scene_index": i, "keyframe_n": 0, "keyframe_s": 0.1 + i, "hash": "0123456789abcdef",
             "informative": True} for i in range(n)]
    if bad_hash:
        rows[-1]["hash"] = bad_hash
    return rows


@pytest.mark.parametrize("table", ["transcript_segments", "embeddings", "keyframe_hashes"])
def test_failed_stage_check_blocks_downstream(home, media_dir, table):
    instance, res, partition, _ = _ingest(home, media_dir)
    lake = res["lake"]
    media = lake.read("media").to_pylist()[0]
    mid, dur = media["media_id"], media["duration_s"]
    downstream = {"transcript_segments": "text_embeddings", "embeddings": "index_entries",
                  "keyframe_hashes": "near_duplicates"}[table]
    stage, after = _stub_stage(table, downstream)
    assets = [media_assets, stage, after]
    checks = build_checks(assets)
    assert f"check_{table}_contract" in {k.name for c in checks for k in c.check_keys}

    good = {"transcript_segments": lambda: _segments(mid, [(0.0, dur / 2), (dur / 2, dur)]),
            "embeddings": lambda: _vectors(mid, 4, 384), "keyframe_hashes": lambda: _hashes(mid, 3)}[table]()
    lake.replace(table, good)
    ok = _run(instance, res, partition, assets, checks)
    assert _checks(ok)[f"check_{table}_contract"].passed and downstream in RAN

    if table == "transcript_segments":  # a segment past the media's end
        bad = _segments(mid, [(0.0, dur / 2), (dur / 2, dur + 5.0)])
        rule = "inside_media"
    elif table == "embeddings":  # one vector of the wrong dimension for its model
        bad = _vectors(mid, 4, 384)
        bad[3]["vector"] = bad[3]["vector"][:383]
        rule = "dimension_per_model"
    else:  # a fingerprint cut short: near_duplicates would compare garbage
        bad, rule = _hashes(mid, 3, bad_hash="0123456789abcde"), "hash_64_bit"
    lake.replace(table, bad)
    result = _run(instance, res, partition, assets, checks)
    ev = _checks(result)[f"check_{table}_contract"]
    assert not ev.passed and rule in ev.metadata["failed_rules"].value
    assert table in RAN and downstream not in RAN, "the stage ran, the step after it did not"


class SpeechModel(ConfigurableResource):
    """A model resource as stages declare them: its config names the model (model_id)."""

    name: str = "faster-whisper/base"
    compute_type: str = "int8"

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.compute_type}"


@multi_asset(specs=[AssetSpec("transcript_segments", deps=["media"], code_version="transcripts@1",
                              metadata={MODEL_RESOURCE_KEY: "asr"})],
             partitions_def=arrival_partitions)
def transcripts_stage(context: AssetExecutionContext, asr: SpeechModel, lake: LakehouseResource):
    RAN.append(context.assets_def.code_versions_by_key[context.assets_def.key])
    ids = [r["media_id"] for r in lake.window_media(context.partition_key, columns=["media_id"])]
    return MaterializeResult(data_version=stage_data_version("transcripts@1", asr.model_id, ids))


@asset(deps=["transcript_segments"], partitions_def=arrival_partitions, code_version="text_embeddings@1")
def text_embeddings(context: AssetExecutionContext):
    RAN.append("text_embeddings")


def test_model_change_shows_downstream_stale(home, media_dir):
    instance, res, partition, _ = _ingest(home, media_dir)

    def defs_for(compute_type):
        resources = {**res, "asr": SpeechModel(compute_type=compute_type)}
        assets = [apply_model_versions(a, resources) for a in [media_assets, transcripts_stage, text_embeddings]]
        return Definitions(assets=assets, resources=resources,
                           jobs=[define_asset_job("all", AssetSelection.all()),
                                 define_asset_job("asr", AssetSelection.assets("transcript_segments")),
                                 define_asset_job("embed", AssetSelection.assets("text_embeddings"))])

    def run(defs, job):
        assert defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance).success

    def statuses(defs):
        return {k: v["status"] for k, v in stale_status(instance, defs, partition).items()}

    before = defs_for("int8")
    RAN.clear()
    run(before, "all")
    assert RAN[0] == "transcripts@1|faster-whisper/base@int8", "the step sees its versioned code version"
    assert set(statuses(before).values()) == {"FRESH"}
    run(before, "asr")  # same model again: same data version, downstream stays fresh
    assert set(statuses(before).values()) == {"FRESH"}

    after = defs_for("float16")  # same code, another model: a configuration change
    stale = stale_status(instance, after, partition)
    assert stale["transcript_segments"]["status"] == "STALE"
    assert any(c.startswith("CODE") for c in stale["transcript_segments"]["causes"])
    assert stale["media"]["status"] == "FRESH"
    # Dagster 1.13 flags the assets downstream once the changed stage has produced data
    # with the new model (a new data version); the model stage itself shows at once.
    assert stale["text_embeddings"]["status"] == "FRESH"
    run(after, "asr")
    stale = stale_status(instance, after, partition)
    assert stale["transcript_segments"]["status"] == "FRESH"
    assert stale["text_embeddings"]["status"] == "STALE", "downstream of the model change"
    assert any(c.startswith("DATA") and "transcript_segments" in c for c in stale["text_embeddings"]["causes"])
    run(after, "embed")
    assert set(statuses(after).values()) == {"FRESH"}


def _pk(date: dt.date, shard: int) -> str:
    return str(MultiPartitionKey({"date": date.isoformat(), "shard": str(shard)}))


@pytest.mark.parametrize("shifted", [False, True])
def test_language_drift_warns(home, shifted):
    lake = LakehouseResource(root=str(home / "lake"))
    today = dt.date.today()
    current = _pk(today, 0)
    sources, segs = [], []
    # Reference window: the previous dates (all shards), mostly English with some German.
    for d in range(1, 4):
        for shard in range(2):
            mid = f"r{d}{shard}".ljust(16, "0")
            sources.append({"source_uri": f"/in/{mid}.wav", "media_id": mid, "size_bytes": 10,
                            "arrival_partition": _pk(today - dt.timedelta(days=d), shard)})
            segs += _segments(mid, [(i, i + 1) for i in range(4)], "en") + _segments(mid, [(4, 5)], "de")[:1]
    # This window: the same mix, or mostly Spanish.
    for n in range(2):
        mid = f"c{n}".ljust(16, "0")
        sources.append({"source_uri": f"/in/{mid}.wav", "media_id": mid, "size_bytes": 10, "arrival_partition": current})
        segs += _segments(mid, [(i, i + 1) for i in range(5)], "es" if shifted else "en")
    lake.replace("media_sources", sources)
    lake.replace("transcript_segments", segs)

    @asset(name="transcript_segments", partitions_def=arrival_partitions)
    def stage(context: AssetExecutionContext):
        pass

    checks = drift_checks_for("transcript_segments", "transcript_segments")
    defs = Definitions(assets=[stage], asset_checks=checks, resources={"lake": lake},
                       jobs=[define_asset_job("drift_job", AssetSelection.all())])
    result = defs.resolve_job_def("drift_job").execute_in_process(partition_key=current, instance=get_instance())
    assert result.success, "a WARN check never fails the run"
    ev = _checks(result)["check_transcript_segments_language_mix_drift"]
    assert ev.severity == AssetCheckSeverity.WARN
    assert ev.passed is (not shifted)
    assert ev.metadata["reference_rows"].value == 30 and ev.metadata["current_rows"].value == 10
    if shifted:
        assert ev.metadata["score"].value == pytest.approx(1.0)
    assert _checks(result)["check_transcript_segments_asr_confidence_drift"].passed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prometheus_export(home, media_dir, monkeypatch, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    textdir = tmp_path / "prom"
    port = _free_port()
    monkeypatch.setenv("MEDIAINTEL_METRICS", "prometheus")
    monkeypatch.setenv("MEDIAINTEL_PROMETHEUS_TEXTFILE_DIR", str(textdir))
    monkeypatch.setenv("MEDIAINTEL_PROMETHEUS_PORT", str(port))
    _, _, _, result = _ingest(home, media_dir)
    meta = {m.asset_key.to_user_string(): m.materialization.metadata
            for m in result.get_asset_materialization_events()}["media"]

    def samples(text):
        # The media stage's samples: every stage exports the same gauge names, labelled by asset.
        return {s.name: s for fam in text_string_to_metric_families(text) for s in fam.samples
                if s.labels.get("asset") == "media"}

    # node_exporter's textfile collector format, one file per asset
    filed = samples((textdir / "mediaintel_media.prom").read_text())
    assert filed["mediaintel_stage_media_seconds"].labels == {"asset": "media"}
    assert filed["mediaintel_stage_media_seconds"].value == pytest.approx(meta["media_seconds"].value)
    assert filed["mediaintel_stage_cpu_seconds"].value == pytest.approx(meta["cpu_seconds"].value)
    assert filed["mediaintel_stage_new_media"].value == 1
    # and a real scrape of the process's endpoint
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        scraped = samples(r.read().decode())
    assert scraped["mediaintel_stage_media_seconds"].value == pytest.approx(meta["media_seconds"].value)
    assert scraped["mediaintel_stage_last_run_timestamp_seconds"].value > 0


def test_metrics_off_by_default_and_otlp_says_so(monkeypatch):
    from mediaintel_dagster.monitoring import metrics

    monkeypatch.delenv("MEDIAINTEL_METRICS", raising=False)
    assert metrics.record_stage("media", None, {"media_seconds": 1.0}) is False
    monkeypatch.setenv("MEDIAINTEL_METRICS", "otlp")
    with pytest.raises(NotImplementedError):
        metrics.record_stage("media", None, {"media_seconds": 1.0})


def test_sensor_backlog_reaches_media_metadata(home, media_dir):
    import os
    import time

    from dagster import build_sensor_context

    from mediaintel_dagster.sensors import inbox_sensor

    instance = get_instance()
    res = {**_resources(home), "inbox": LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=60)}
    copy_into(media_dir, ["clip.mp4", "poster.png"], home / "inbox")
    old = time.time() - 120
    os.utime(home / "inbox" / "clip.mp4", (old, old))  # settled
    os.utime(home / "inbox" / "poster.png")  # still being written
    requests = inbox_sensor(build_sensor_context(instance=instance, resources=res)).run_requests
    assert len(requests) == 1 and requests[0].tags["mediaintel/inbox_backlog"] == "1"
    result = build_defs(res).resolve_job_def("ingest_job").execute_in_process(
        partition_key=requests[0].partition_key, instance=instance, tags=requests[0].tags)
    meta = {m.asset_key.to_user_string(): m.materialization.metadata
            for m in result.get_asset_materialization_events()}["media"]
    assert meta["inbox_backlog"].value == 1


def test_json_logs(home, media_dir, monkeypatch, capfd):
    monkeypatch.setenv("MEDIAINTEL_LOG_FORMAT", "json")
    _, _, partition, result = _ingest(home, media_dir)
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("{")]
    records = [json.loads(ln) for ln in lines]
    assert records, "run logs are JSON lines"
    assert any(r.get("dagster_meta", {}).get("run_id") == result.run_id or result.run_id in json.dumps(r)
               for r in records)


def test_lineage_sql_which_run_and_bytes(home, media_dir):
    from mediaintel_dagster.cli import sql

    _, res, partition, result = _ingest(home, media_dir)
    out = io.StringIO()
    q = ("SELECT m.media_id, m.sha256, s.source_uri, a.run_id, a.code_version, a.delta_version "
         "FROM media m JOIN audit_log a ON a.media_id = m.media_id AND a.table_name = 'media' "
         "JOIN media_sources s ON s.media_id = m.media_id")
    assert sql(q, fmt="json", out=out) == 0
    rows = json.loads(out.getvalue())
    assert len(rows) == 1 and rows[0]["run_id"] == result.run_id and rows[0]["code_version"] == "media@2"
    assert rows[0]["sha256"].startswith(rows[0]["media_id"]) and rows[0]["source_uri"].endswith("clip.mp4")
    # The table as of the version that run wrote, after a later change.
    lake = res["lake"]
    row = lake.read("media").to_pylist()[0]
    lake.replace("media", [{**row, "duration_s": 99.0}])
    out = io.StringIO()
    assert sql("SELECT duration_s FROM media", fmt="json", as_of={"media": rows[0]["delta_version"]}, out=out) == 0
    assert json.loads(out.getvalue())[0]["duration_s"] == pytest.approx(row["duration_s"])


def test_two_stages_sharing_embeddings_are_checked_apart(home, media_dir):
    from mediaintel_dagster.checks.factory import ROWS_KEY, TABLE_KEY

    instance, res, partition, _ = _ingest(home, media_dir)
    mid = res["lake"].read("media").to_pylist()[0]["media_id"]

    def stage(name, kind):
        @asset(name=name, deps=["media"], partitions_def=arrival_partitions,
               metadata={TABLE_KEY: "embeddings", ROWS_KEY: {"item_kind": [kind]}})
        def _stage(context: AssetExecutionContext):
            RAN.append(name)
        return _stage

    assets = [media_assets, stage("scene_embeddings", "scene"), stage("text_embeddings", "segment")]
    checks = build_checks(assets)
    names = {(k.asset_key.to_user_string(), k.name) for c in checks for k in c.check_keys}
    assert {("scene_embeddings", "check_embeddings_contract"), ("text_embeddings", "check_embeddings_contract")} <= names
    scene = [{**r, "item_kind": "scene", "model_id": "clip@1"} for r in _vectors(mid, 3, 512)]
    scene[0]["vector"] = scene[0]["vector"][:500]  # broken: only the scene stage's rows
    # (the real text_embeddings stage of _ingest may have written segment vectors already)
    real = res["lake"].read("embeddings", filter=pads.field("item_kind") == "segment").num_rows
    res["lake"].replace("embeddings", scene + _vectors(mid, 3, 384))
    result = _run(instance, res, partition, assets, checks)
    evals = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
             if e.check_name == "check_embeddings_contract"}
    assert not evals["scene_embeddings"].passed and evals["text_embeddings"].passed
    assert evals["text_embeddings"].metadata["rows_checked"].value == 3 + real


def test_stage_metadata_cost_and_pushgateway(monkeypatch, tmp_path):
    """A stage's numbers (CPU cost per media-minute) pushed to a Pushgateway over HTTP (a
    local server standing where the gateway would) and written for the textfile collector."""
    import http.server
    import threading

    from prometheus_client.parser import text_string_to_metric_families

    from mediaintel_dagster.assets.stage import stage_metadata
    from mediaintel_dagster.monitoring.metrics import record_stage

    pushed = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            pushed.append((self.path, self.rfile.read(int(self.headers["Content-Length"])).decode()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MEDIAINTEL_METRICS", "prometheus")
    monkeypatch.setenv("MEDIAINTEL_PROMETHEUS_PUSHGATEWAY", f"127.0.0.1:{server.server_port}")
    monkeypatch.setenv("MEDIAINTEL_PROMETHEUS_TEXTFILE_DIR", str(tmp_path))
    monkeypatch.delenv("MEDIAINTEL_PROMETHEUS_PORT", raising=False)
    try:
        meta = stage_metadata(window_media_count=3, processed=2, skipped_done=1, failed=0, rows=40,
                              media_seconds=120.0, wall_seconds=10.0, delta_version=7, model_id="fw@int8",
                              cpu_seconds=3.0, gpu_seconds=0.5)
        record_stage("transcript_segments", "p", meta)  # what the skeleton does after building them
    finally:
        server.shutdown()
    assert meta["cpu_seconds_per_media_minute"] == 1.5 and meta["gpu_seconds_per_media_minute"] == 0.25
    assert meta["media_seconds_per_wall_second"] == 12.0
    path, body = pushed[0]
    assert path == "/metrics/job/mediaintel/asset/transcript_segments"
    samples = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples["mediaintel_stage_cpu_seconds_per_media_minute"] == 1.5
    assert samples["mediaintel_stage_media_processed"] == 2
    filed = (tmp_path / "mediaintel_transcript_segments.prom").read_text()
    assert 'mediaintel_stage_rows_written{asset="transcript_segments"} 40.0' in filed
