"""The stage skeleton: one retry rule from the error codes, model identity that is the same
on every machine, fallback routing recorded and upgraded, and a no-op window that loads
nothing and reuses its checks' results."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pyarrow.dataset as pads
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from mediaintel_dagster.assets import media_assets, ocr_text, scenes, transcript_segments
from mediaintel_dagster.assets.clip import SCENE_EMBEDDINGS
from mediaintel_dagster.assets.stage import plan, should_retry
from mediaintel_dagster.assets.stage_config import StageConfig
from mediaintel_dagster.assets.transcripts import TRANSCRIPTS
from mediaintel_dagster.definitions import build_defs
from mediaintel_dagster.media.errors import ErrorCode, MediaError
from mediaintel_dagster.media.samples import Shot, make_audio, make_image, make_video
from mediaintel_dagster.resources import (ClipResource, LakehouseResource, LocalInboxResource, ObjectStoreResource,
                                          OcrResource, WhisperResource)
from mediaintel_dagster.resources.clip import FALLBACK_MODEL_ID
from conftest import REPO, window_of


def test_retry_rule():
    # transient: retryable errors until max_attempts, permanent ones wait for a change
    assert should_retry("transient", ["unreadable"], attempts=1, max_attempts=3)
    assert should_retry("transient", ["unreadable"], attempts=2, max_attempts=3)
    assert not should_retry("transient", ["unreadable"], attempts=3, max_attempts=3)
    assert not should_retry("transient", ["truncated"], attempts=1, max_attempts=3)
    assert should_retry("transient", ["corrupt", "missing_keyframe"], attempts=1, max_attempts=3), \
        "one retryable part is worth a retry"
    assert should_retry("always", ["not_media"], attempts=99, max_attempts=3)
    assert not should_retry("never", ["unreadable"], attempts=1, max_attempts=3)
    with pytest.raises(ValueError, match="retry="):
        should_retry("sometimes", ["unreadable"], 1, 3)
    with pytest.raises(ValueError, match="unknown quarantine error type"):
        should_retry("transient", ["I/O trouble"], 1, 3)
    assert should_retry("transient", ["ocr_failed"], 1, 3), "a value older releases wrote reads as model_failed"


def test_error_codes_are_one_enumeration():
    values = [c.value for c in ErrorCode]
    assert len(values) == len(set(values))
    assert all(isinstance(c.retryable, bool) and c.meaning for c in ErrorCode)
    assert MediaError(ErrorCode.TRUNCATED, "x").error_type == "truncated"
    assert MediaError("unreadable", "x").retryable and not MediaError("not_media", "x").retryable
    with pytest.raises(ValueError, match="unknown quarantine error type 'I/O trouble'"):
        MediaError("I/O trouble", "free text is not an error type")
    readme = (REPO / "README.md").read_text()
    assert all(f"`{v}`" in readme for v in values), "the README lists every error type"


def test_model_identity_is_the_same_on_cpu_and_gpu(home):
    """One configuration, resolved on a CPU and on a (simulated) GPU: same model_id, same
    code versions, and a media the CPU transcribed is done for the GPU's done-check."""
    cpu, gpu = WhisperResource(device="cpu"), WhisperResource(device="cuda")
    assert cpu.model_id == gpu.model_id == "faster-whisper/base@auto"
    assert (cpu.runtime()["device"], cpu.runtime()["compute_type"]) == ("cpu", "int8")
    assert (gpu.runtime()["device"], gpu.runtime()["compute_type"]) == ("cuda", "float16")
    assert WhisperResource(compute_type="int8").model_id == "faster-whisper/base@int8", \
        "pinning the precision is a deliberate change: another id"

    def versions(defs):
        graph = defs.resolve_asset_graph()
        return {k.to_user_string(): graph.get(k).code_version for k in graph.materializable_asset_keys}

    assert versions(build_defs({"whisper": cpu})) == versions(build_defs({"whisper": gpu}))

    wav = make_audio(home / "inbox" / "hello.wav", "hello from the central processing unit")
    lake = LakehouseResource(root=str(home / "lake"))
    res = materialize([media_assets, transcript_segments], partition_key=window_of(wav), instance=DagsterInstance.ephemeral(),
                      resources={"lake": lake, "inbox": LocalInboxResource(settle_seconds=0), "whisper": cpu})
    assert res.success
    media = lake.window_media(window_of(wav), columns=list(TRANSCRIPTS.media_columns))
    row, = lake.read("audit_log", filter=pads.field("asset") == "transcript_segments").to_pylist()
    assert (row["model_id"], row["model_requested"], row["device"], row["compute_type"]) == \
           ("faster-whisper/base@auto", "faster-whisper/base@auto", "cpu", "int8")
    assert row["model_route"] is None
    for resource in (gpu, cpu):
        p = plan(lake, TRANSCRIPTS, media, code_version=TRANSCRIPTS.code_version, model_id=resource.model_id,
                 config=StageConfig())
        assert p.done == [media[0]["media_id"]] and not p.todo, resource.device

    # ... and what a GPU pod wrote is done for the CPU (its audit row, as the pod writes it)
    pod = {k: v for k, v in row.items() if k != "at"}  # stamped now, after the CPU's row
    lake.audit([{**pod, "run_id": "gpu-pod", "device": "cuda", "compute_type": "float16"}])
    p = plan(lake, TRANSCRIPTS, media, code_version=TRANSCRIPTS.code_version, model_id=cpu.model_id,
             config=StageConfig())
    assert p.done == [media[0]["media_id"]]


def test_fallback_is_a_recorded_route_and_is_upgraded(lake):
    clip = ClipResource()  # no CLIP weights on this machine
    assert clip.model_id == "open_clip/ViT-B-32@laion2b_s34b_b79k", "the configured model, not the machine's"
    served, why = clip.route()
    assert served == FALLBACK_MODEL_ID and "not on this machine" in why
    assert ClipResource(fallback="none").route() == (clip.model_id, None)

    base = {"asset": SCENE_EMBEDDINGS.name, "status": "written", "rows": 2,
            "code_version": SCENE_EMBEDDINGS.code_version, "model_requested": clip.model_id}
    lake.audit([{"asset": "scenes", "media_id": m, "status": "written", "code_version": "scenes@1"} for m in "ab"],
               at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    lake.audit([{**base, "media_id": "a", "model_id": FALLBACK_MODEL_ID, "model_route": why},
                {**base, "media_id": "b", "model_id": clip.model_id}])
    media = [{"media_id": "a"}, {"media_id": "b"}]

    def due(served_here):
        return [m["media_id"] for m in plan(lake, SCENE_EMBEDDINGS, media, code_version=SCENE_EMBEDDINGS.code_version,
                                            model_id=clip.model_id, config=StageConfig(),
                                            served_model=lambda: served_here).todo]

    assert due(FALLBACK_MODEL_ID) == [], "without weights: the fallback's rows stand, the real model's are kept"
    assert due(clip.model_id) == ["a"], "weights installed: the fallback's rows are redone by the real model"


def test_retry_rule_in_runs(home):
    """A missing keyframe (retryable) is retried by the next runs until max_attempts, with
    the attempts counted in `quarantine`; retry='never' holds it at once."""
    video = home / "inbox" / "two.mp4"
    make_video(video, [Shot(2.0, "FIRST", style="gradient"),
                                                    Shot(2.0, "SECOND", style="checker")], size=(320, 180))
    lake = LakehouseResource(root=str(home / "lake"))
    objects = ObjectStoreResource(root=str(home / "objects"))
    resources = {"lake": lake, "inbox": LocalInboxResource(settle_seconds=0), "objects": objects, "ocr": OcrResource()}
    window = window_of(video)
    instance = DagsterInstance.ephemeral()

    def run(assets, **ocr_config):
        res = materialize(assets, partition_key=window, resources=resources, instance=instance,
                          run_config={"ops": {"ocr_text": {"config": ocr_config}}} if ocr_config else None)
        assert res.success
        return res.asset_materializations_for_node("ocr_text")[0].metadata

    run([media_assets, scenes, ocr_text])
    keyframe = lake.read("scenes", filter=pads.field("scene_index") == 1).column("keyframe_uri")[0].as_py()
    (home / "objects").joinpath(keyframe.split("/objects/", 1)[1]).unlink()

    def quarantined():
        rows = lake.read("quarantine", filter=pads.field("stage") == "ocr_text").to_pylist()
        return [(r["error_type"], r["attempts"], r["retryable"]) for r in rows]

    meta = run([ocr_text], force=True)
    assert quarantined() == [("missing_keyframe", 1, True)] and meta["media_failed"].value == 1
    assert run([ocr_text])["media_processed"].value == 1 and quarantined() == [("missing_keyframe", 2, True)]
    assert run([ocr_text])["media_processed"].value == 1 and quarantined() == [("missing_keyframe", 3, True)]
    meta = run([ocr_text])
    assert meta["media_processed"].value == 0 and meta["still_quarantined"].value == 1, "3 attempts: held"
    assert quarantined() == [("missing_keyframe", 3, True)]
    assert run([ocr_text], retry="always")["media_processed"].value == 1, "retry='always' tries again"
    assert run([ocr_text], retry="never")["still_quarantined"].value == 1
    status = [r["status"] for r in sorted(lake.read("audit_log", filter=pads.field("asset") == "ocr_text").to_pylist(),
                                          key=lambda r: r["at"])]
    assert status == ["written"] + ["partial"] * 4, status


def test_noop_window_loads_nothing_and_reuses_checks(home):
    """A rerun with everything done: no model loaded, no Great Expectations imported, every
    check's result reused from the previous run (the rows it judged did not change)."""
    inbox = home / "inbox"
    make_video(inbox / "clip.mp4", [Shot(1.0, "HELLO", style="gradient")], speech="hello", size=(320, 180))
    make_image(inbox / "card.png", "CARD", size=(200, 120))
    first = subprocess.run([sys.executable, "-m", "mediaintel_dagster.cli", "process", "-q", str(inbox)],
                           capture_output=True, text=True, timeout=600, cwd=REPO)
    assert first.returncode == 0, first.stderr[-3000:]
    code = (
        "import json, sys\n"
        "from mediaintel_dagster import cli\n"
        "from mediaintel_dagster.resources.models import loaded_models\n"
        f"summary = cli.process([{str(inbox)!r}], quiet=True)\n"
        "heavy = ['torch', 'great_expectations', 'faster_whisper', 'ctranslate2', 'sentence_transformers',\n"
        "         'open_clip', 'rapidocr_onnxruntime', 'onnxruntime']\n"
        "print(json.dumps({'summary': summary, 'imported': [m for m in heavy if m in sys.modules],\n"
        "                  'models': [k[0] for k in loaded_models() if k[0] not in ('resolve_device', 'model_id', 'route')]}))\n"
    )
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert second.returncode == 0, second.stderr[-3000:]
    out = json.loads(second.stdout.strip().splitlines()[-1])
    assert out["summary"]["failed"] == [] and out["summary"]["runs"] >= 1
    assert out["imported"] == [] and out["models"] == [], out

    from mediaintel_dagster.instance import get_instance

    instance = get_instance()
    last_run = instance.get_runs(limit=1)[0]
    evaluations = [e.dagster_event.event_specific_data for e in instance.all_logs(last_run.run_id)
                   if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert evaluations and all("reused_from_run" in ev.metadata for ev in evaluations), \
        [ev.asset_check_key.name for ev in evaluations if "reused_from_run" not in ev.metadata]
    assert all(ev.passed for ev in evaluations)
    media = [e for e in instance.all_logs(last_run.run_id) if e.dagster_event and e.dagster_event.is_step_materialization
             and e.dagster_event.asset_key == AssetKey("media")]
    assert media and media[0].dagster_event.event_specific_data.materialization.metadata["new_media"].value == 0


def test_parallel_media_keep_order_context_and_quarantine():
    """A per-media stage with ``parallel`` computes media on worker threads: outcomes come back
    in the window's order, each media sees its own CURRENT_INPUT, and one media's exception
    quarantines that media only."""
    import threading
    import time as _time

    from mediaintel_dagster.assets.stage import CURRENT_INPUT, Outcome, Stage, _compute

    seen = {}

    def compute(run, m):
        _time.sleep(0.3 if m["media_id"] == "a" else 0.05)  # the first media finishes last
        seen[m["media_id"]] = (threading.current_thread().name, CURRENT_INPUT.get())
        if m["media_id"] == "c":
            raise MediaError(ErrorCode.DECODE_ERROR, "c: broken")
        return Outcome(m["media_id"], rows=[{"media_id": m["media_id"]}])

    stage = Stage(name="probe_parallel", table="scenes", code_version="t@1", description="t", group="t",
                  compute=compute, parallel=lambda run: 2)

    class Run:
        pass

    run = Run()
    run.stage, run.log = stage, __import__("logging").getLogger("test")
    todo = [{"media_id": x, "source_uri": f"/in/{x}.mp4"} for x in "abcd"]
    t0 = _time.perf_counter()
    out = list(_compute(run, todo))
    wall = _time.perf_counter() - t0
    assert [o.media_id for o in out] == list("abcd"), "the window's order, not the finishing order"
    assert [o.error is None for o in out] == [True, True, False, True]
    assert out[2].error.code is ErrorCode.DECODE_ERROR
    assert {seen[x][1] for x in "abcd"} == {f"/in/{x}.mp4" for x in "abcd"}, "each media names its own file"
    assert len({seen[x][0] for x in "abcd"}) == 2 and all(n.startswith("probe_parallel") for n, _ in seen.values())
    assert wall < 0.3 + 0.05 * 3, f"b, c and d ran while a slept ({wall:.2f}s)"
    # one at a time: the same outcomes, on the calling thread
    serial = Stage(name="s", table="scenes", code_version="t@1", description="t", group="t", compute=compute)
    run.stage = serial
    assert [(o.media_id, o.error is None) for o in _compute(run, todo)] == [(o.media_id, o.error is None) for o in out]


def test_whisper_workers_share_the_cores():
    on_cpu = WhisperResource(device="cpu", workers=0, cpu_threads=0)
    import os

    cores = os.cpu_count() or 1
    assert on_cpu.resolved_workers() == min(4, cores) and on_cpu.parallel_media() == min(4, cores)
    assert on_cpu.resolved_cpu_threads() == max(1, cores // min(4, cores))
    assert WhisperResource(device="cpu", workers=1).resolved_cpu_threads() == cores
    assert WhisperResource(device="cuda", workers=3).resolved_workers() == 1, "a GPU batches instead"
    assert not WhisperResource(device="cpu", batch_size=0).batched
    assert not WhisperResource(device="cpu", batch_size=8, vad_filter=False).batched, "batching cuts at VAD pauses"
    opts = WhisperResource(device="cpu", batch_size=8).transcribe_options()
    assert opts["batch_size"] == 8 and "vad_parameters" not in opts
    assert WhisperResource(device="cpu").runtime()["workers"] == on_cpu.resolved_workers()


def _small_filesystem(path, size: str = "16m"):
    """A tmpfs of ``size`` at ``path`` (root only), so a test can fill a disk for real."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"a full disk needs a filesystem of its own: `mount -t tmpfs` refused "
                    f"({r.stderr.strip() or r.returncode}); run as root to test it")
    return path


def _fill(path) -> "object":
    """Fill the filesystem of ``path`` to its last byte; the filler file, to delete later."""
    filler = path / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
    return filler


@pytest.mark.parametrize("full", ["objects", "lake"])
def test_a_full_disk_fails_the_step_cleanly_and_the_rerun_loses_nothing(home, full):
    """A full disk under the keyframe store (mid-compute) or under the lake (mid-commit): the
    step fails with one line naming the error and the file, nothing is quarantined (the
    media are not at fault), every table stays readable at its version; once space is freed
    the rerun writes every row once."""
    import os
    import shutil

    vol = _small_filesystem(home / "vol")
    try:
        video = home / "inbox" / "two.mp4"
        make_video(video, [Shot(1.0, "FIRST", style="gradient"), Shot(1.0, "SECOND", style="checker")],
                   size=(320, 180))
        lake = LakehouseResource(root=str(vol / "lake" if full == "lake" else home / "lake"))
        objects = ObjectStoreResource(root=str(vol / "objects" if full == "objects" else home / "objects"))
        resources = {"lake": lake, "inbox": LocalInboxResource(settle_seconds=0), "objects": objects}
        window = window_of(video)
        instance = DagsterInstance.ephemeral()
        assert materialize([media_assets], partition_key=window, resources=resources, instance=instance).success
        tables = ["media", "media_sources", "audit_log"]
        before = {t: lake.version(t) for t in tables}

        filler = _fill(vol)
        res = materialize([scenes], partition_key=window, resources=resources, instance=instance,
                          raise_on_error=False)
        assert not res.success
        (failure,) = [e for e in res.all_events if e.is_step_failure]
        message = failure.event_specific_data.error.message
        assert "No space left on device" in message and "two.mp4" in message, message
        assert {t: lake.version(t) for t in tables} == before
        for t in tables:
            lake.read(t)  # readable: no half-written commit
        assert lake.version("quarantine") is None or lake.read("quarantine").num_rows == 0

        os.unlink(filler)
        assert materialize([scenes], partition_key=window, resources=resources, instance=instance).success
        rows = lake.read("scenes").to_pylist()
        assert sorted(r["scene_index"] for r in rows) == [0, 1], rows
        assert all(objects.exists(r["keyframe_uri"]) for r in rows)
        audit = lake.read("audit_log", filter=pads.field("asset") == "scenes").to_pylist()
        assert [a["status"] for a in audit] == ["written"], audit
        assert lake.version("quarantine") is None or lake.read("quarantine").num_rows == 0
    finally:
        subprocess.run(["umount", "-l", str(vol)], check=False)
        shutil.rmtree(vol, ignore_errors=True)


@pytest.mark.parametrize("fault", ["transient", "bug"])
def test_a_transient_step_failure_is_retried_and_a_bug_is_not(home, monkeypatch, fault):
    """The scenes commit fails once with an I/O error (injected into the lake resource: the
    fault is a stand-in, the job, executor and retry are Dagster's own), and the step is
    retried after a backoff and writes its rows once; a ValueError (a bug) fails the step at
    once, said not transient, with no retry."""
    import errno

    from dagster import DagsterEventType

    from mediaintel_dagster.jobs import step_retry_policy

    assert step_retry_policy() is not None and step_retry_policy().max_retries == 2
    image = home / "inbox" / "poster.png"
    make_image(image, "GRAND OPENING", size=(320, 180))
    lake = LakehouseResource(root=str(home / "lake"))
    resources = {"lake": lake, "inbox": LocalInboxResource(settle_seconds=0),
                 "objects": ObjectStoreResource(root=str(home / "objects"))}
    replace, calls = LakehouseResource.replace, []

    def flaky(self, table, *args, **kwargs):
        if table == "scenes":
            calls.append(table)
            if len(calls) == 1:
                raise (OSError(errno.EIO, "Input/output error") if fault == "transient"
                       else ValueError("a bug in the stage"))
        return replace(self, table, *args, **kwargs)

    monkeypatch.setattr(LakehouseResource, "replace", flaky)
    job = build_defs(resources).resolve_job_def("ingest_job")
    res = job.execute_in_process(partition_key=window_of(image), instance=DagsterInstance.ephemeral(),
                                 raise_on_error=False,
                                 asset_selection=[AssetKey(k) for k in ("media", "media_sources", "scenes", "keyframes")])
    events = [e for e in res.all_events if e.step_key == "scenes"]
    retried = [e for e in events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    if fault == "transient":
        assert res.success and len(retried) == 1 and calls == ["scenes", "scenes"]
        assert [r["scene_index"] for r in lake.read("scenes").to_pylist()] == [0]
        assert [a["status"] for a in lake.read("audit_log", filter=pads.field("asset") == "scenes").to_pylist()] \
            == ["written"]
    else:
        assert not res.success and not retried and calls == ["scenes"]
        (failure,) = [e for e in events if e.is_step_failure]
        assert "ValueError: a bug in the stage (not transient: not retried)" in failure.event_specific_data.error.message


def test_which_step_failures_are_transient():
    import errno

    from botocore.exceptions import ClientError, EndpointConnectionError
    from deltalake.exceptions import CommitFailedError

    from mediaintel_dagster.assets.stage import is_transient

    def aws(status, code):
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    def wrapped(inner):
        try:
            try:
                raise inner
            except Exception as exc:
                raise RuntimeError("the stage's write failed") from exc
        except RuntimeError as outer:
            return outer

    for exc in [OSError(errno.ENOSPC, "No space left on device"), TimeoutError("read timed out"),
                ConnectionResetError(), MemoryError(), CommitFailedError("lost the race"),
                EndpointConnectionError(endpoint_url="http://s3"), aws(503, "SlowDown"), aws(429, "Throttling"),
                wrapped(aws(500, "InternalError"))]:
        assert is_transient(exc), exc
    for exc in [ValueError("bad config"), KeyError("media_id"), TypeError(), aws(403, "AccessDenied"),
                aws(404, "NoSuchBucket"), wrapped(ValueError("a bug"))]:
        assert not is_transient(exc), exc
