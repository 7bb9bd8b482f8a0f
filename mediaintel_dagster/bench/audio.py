"""Benchmark: does the transcript stage add anything on top of faster-whisper?

    python -m mediaintel_dagster.bench.audio [--file F] [--minutes N] [--repeats R]
                                             [--decode-minutes M] [--no-decode]

On the same audio (``--file``, or an N-minute synthetic speech loop encoded as AAC), in
fresh processes so that peak RSS is each path's own:

- stage:  the `transcript_segments` asset materialized on a real Dagster instance and
          lakehouse (decode with PyAV, transcription, Delta write, audit rows), model
          loaded before the clock starts, as in a long-running process;
- direct: ``WhisperModel(...).transcribe(path, same settings)`` with every segment consumed
          (faster-whisper decodes the file itself).

It prints each real-time factor (audio seconds per wall second, best of ``--repeats``),
stage/direct (target >= 0.95), and peak RSS of each process. Then it decodes an
M-minute file (default 20) with the stage's decoder and with faster-whisper's
``decode_audio``, each in a fresh process, and prints their peak RSS: the decode's share
of memory measured apart from transcription.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PARAGRAPH = (
    "Good evening and welcome to the news. The city council met today to discuss the new park. "
    "Residents asked for more trees, a playground and better lighting along the river. "
    "In sports, the home team won their third match in a row. The weather tomorrow will be "
    "cloudy in the morning with sunshine in the afternoon. Thank you for watching, and good night."
)


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB: VmHWM, which starts afresh at
    exec (getrusage's ru_maxrss carries the parent's peak over fork+exec on Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_speech_loop(path: Path, minutes: float, rate: int = 16000) -> Path:
    """An AAC file of ``minutes`` of espeak-ng speech (one paragraph, repeated)."""
    import av

    from ..media.samples import _add_audio_stream, _AudioFeeder, _resample, synthesize_speech

    pcm, src_rate = synthesize_speech(PARAGRAPH)
    one = _resample(pcm, src_rate, rate)
    gap = np.zeros(rate // 2, dtype=np.int16)
    unit = np.concatenate([one, gap])
    n = int(minutes * 60 * rate)
    signal = np.tile(unit, n // unit.size + 1)[:n]
    with av.open(str(path), "w") as container:
        stream = _add_audio_stream(container, "aac", "fltp", rate, 64000)
        stream.codec_context.open()
        _AudioFeeder(container, stream, signal, "fltp", rate).finish()
    return path


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "mediaintel_dagster.bench.audio", "--child", *args],
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the child processes -------------------------------------------------------------------
def child_direct(file: str, settings: str) -> dict:
    # Only faster-whisper is imported here (no Dagster, no torch): the direct path's own memory.
    from faster_whisper import WhisperModel

    cfg = json.loads(settings)
    model = WhisperModel(cfg["model_path"], device=cfg["device"], compute_type=cfg["compute_type"],
                         cpu_threads=cfg["cpu_threads"])
    loaded = current_rss_mb()
    t0 = time.perf_counter()
    segments, info = model.transcribe(file, **cfg["options"])
    segs = list(segments)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "audio_s": info.duration, "segments": len(segs), "rss_after_load_mb": loaded,
            "peak_rss_mb": rss_mb(), "text": " ".join(s.text.strip() for s in segs)[:200]}


def child_stage(file: str, home: str) -> dict:
    os.environ.update({"MEDIAINTEL_HOME": home, "MEDIAINTEL_LAKE": f"{home}/lake", "DAGSTER_HOME": f"{home}/dagster",
                       "MEDIAINTEL_INBOX": f"{home}/inbox"})
    Path(f"{home}/dagster").mkdir(parents=True, exist_ok=True)
    from dagster import DagsterInstance, materialize

    from ..assets import media_assets, transcript_segments
    from ..resources import LakehouseResource, LocalInboxResource, WhisperResource

    inbox = Path(home) / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / Path(file).name
    if not target.exists():
        os.link(file, target) if os.stat(file).st_dev == os.stat(inbox).st_dev else target.symlink_to(file)
    resources = {"lake": LakehouseResource(), "inbox": LocalInboxResource(settle_seconds=0.0),
                 "whisper": WhisperResource()}
    instance = DagsterInstance.ephemeral()
    key = str(next(iter(resources["inbox"].list_files())).partition_key())
    assert materialize([media_assets], partition_key=key, resources=resources, instance=instance).success
    resources["whisper"].load()  # a warm process: the model is loaded before the clock starts
    loaded = current_rss_mb()
    t0 = time.perf_counter()
    res = materialize([transcript_segments], partition_key=key, resources=resources, instance=instance,
                      run_config={"ops": {"transcript_segments": {"config": {"force": True}}}})
    wall = time.perf_counter() - t0
    assert res.success
    meta = res.asset_materializations_for_node("transcript_segments")[0].metadata
    rows = LakehouseResource().read("transcript_segments").to_pylist()
    return {"wall_s": wall, "asset_wall_s": meta["wall_seconds"].value, "audio_s": meta["media_seconds"].value,
            "segments": len(rows), "rss_after_load_mb": loaded, "peak_rss_mb": rss_mb(),
            "text": " ".join(r["text"] for r in sorted(rows, key=lambda r: r["segment_index"]))[:200]}


def child_decode(file: str, which: str) -> dict:
    if which == "stage":
        from ..media.audio import decode_audio
    else:
        from faster_whisper.audio import decode_audio
    base = current_rss_mb()
    t0 = time.perf_counter()
    samples = decode_audio(file)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "audio_s": samples.size / 16000, "array_mb": samples.nbytes / 2**20,
            "rss_before_mb": base, "peak_rss_mb": rss_mb()}


# ---- the driver ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--file", help="audio or video file to transcribe (default: a synthetic speech loop)")
    p.add_argument("--minutes", type=float, default=1.0, help="length of the synthetic speech loop")
    p.add_argument("--repeats", type=int, default=2, help="runs of each path; the best is reported")
    p.add_argument("--decode-minutes", type=float, default=20.0, help="length of the file for the decode-memory test")
    p.add_argument("--no-decode", action="store_true", help="skip the decode-memory test")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        kind, *rest = a.child
        result = {"direct": child_direct, "stage": child_stage, "decode": child_decode}[kind](*rest)
        print(json.dumps(result))
        return

    from ..resources.whisper import WhisperResource

    with tempfile.TemporaryDirectory(prefix="mi-bench-audio-") as tmp:
        tmp = Path(tmp)
        models = os.environ.get("MEDIAINTEL_MODELS") or str(tmp / "models")
        os.environ["MEDIAINTEL_MODELS"] = models
        file = a.file
        if not file:
            file = str(make_speech_loop(tmp / f"speech_{a.minutes:g}min.m4a", a.minutes))
        w = WhisperResource()
        settings = json.dumps({"model_path": w.model_path(),  # assembled once, outside the timings
                               "device": w.resolved_device(), "compute_type": w.resolved_compute_type(),
                               "cpu_threads": w.cpu_threads, "options": w.transcribe_options()})
        print(f"file: {file}\nmodel: {w.model_id} device={w.resolved_device()} cpu_threads={w.cpu_threads} "
              f"options: {w.transcribe_options()}")
        runs: dict[str, list[dict]] = {"direct": [], "stage": []}
        for i in range(a.repeats):
            for kind in ("direct", "stage"):  # interleaved, so machine load hits both alike
                r = _child([kind, file, settings if kind == "direct" else str(tmp / f"home-{kind}-{i}")])
                runs[kind].append(r)
                print(f"  {kind:6s} run {i + 1}: {r['wall_s']:.2f} s wall for {r['audio_s']:.1f} s audio, "
                      f"{r['segments']} segments, peak RSS {r['peak_rss_mb']:.0f} MB")
        best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
        rtf = {k: best[k]["audio_s"] / best[k]["wall_s"] for k in best}
        print(f"\nreal-time factor (audio s per wall s, best of {a.repeats}):")
        print(f"  faster-whisper direct: {rtf['direct']:.2f}x   peak RSS {best['direct']['peak_rss_mb']:.0f} MB "
              f"(after model load {best['direct']['rss_after_load_mb']:.0f} MB)")
        print(f"  transcript stage:      {rtf['stage']:.2f}x   peak RSS {best['stage']['peak_rss_mb']:.0f} MB "
              f"(after model load {best['stage']['rss_after_load_mb']:.0f} MB; asset body "
              f"{best['stage']['asset_wall_s']:.2f} s of {best['stage']['wall_s']:.2f} s materialize)")
        print(f"  stage / direct: {rtf['stage'] / rtf['direct']:.3f}  (target >= 0.95)")
        print(f"  direct text: {best['direct']['text'][:120]}...\n  stage text:  {best['stage']['text'][:120]}...")

        if not a.no_decode:
            long = make_speech_loop(tmp / f"speech_{a.decode_minutes:g}min.m4a", a.decode_minutes)
            print(f"\ndecode {a.decode_minutes:g} min ({long.stat().st_size / 2**20:.1f} MB AAC) to 16 kHz mono float32, "
                  "fresh process each:")
            for which in ("stage", "faster-whisper"):
                r = _child(["decode", str(long), which])
                print(f"  {which:15s} {r['wall_s']:.1f} s, array {r['array_mb']:.0f} MB, RSS before "
                      f"{r['rss_before_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB "
                      f"(+{r['peak_rss_mb'] - r['rss_before_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
