"""Benchmark: the whole pipeline, every stage on, against a plain script (`make bench`).

    python -m mediaintel_dagster.bench.perf [--videos 10 --minutes 2 --audio 2 --short 6]
        [--repeats 1] [--variant NAME:ENV=VALUE,...] [--out docs/perf.md]

It builds a fixed corpus once (bench/perf_corpus.py: narrated videos with cuts, dissolves,
fades and captions, audio-only files, short clips; each with its truth) and runs, side by
side, each in a fresh process (cold: imports and model loads are paid, as a user pays them):

- pipeline:   ``mediaintel process`` on the corpus, on a new embedded lakehouse and Dagster
              instance; per stage, from the runs' own metadata: media-seconds per wall-second,
              wall and CPU seconds, the compute function's seconds, peak RSS; and the
              orchestration overhead: wall time minus the stages' compute time (run start,
              planning, Delta writes, checks, the CLI's start);
- script:     the plain-script yardstick: the same models with the same settings on the same
              files, no Dagster, no lakehouse (PySceneDetect for shots, a middle keyframe per
              shot, RapidOCR, the image embedder, faster-whisper reading the file itself,
              MiniLM), its facts kept in memory;
- scenedetect: PySceneDetect's CLI (``detect-content list-scenes``) on every video;
- whisper:    faster-whisper called directly with its defaults on every file with sound.

With ``--repeats N`` the runs are interleaved (pipeline, script, pipeline, ...) and the median
is reported. Each ``--variant`` adds a pipeline run with environment overrides (an
optimization against its baseline, in the same run), e.g. ``--variant seq-asr:MEDIAINTEL_WHISPER_BATCH_SIZE=0``.

Quality on the corpus's truth, per pipeline run: WER of the transcripts, transition F1 (cuts
and gradual), the share of caption words OCR read, and search rank (MRR of each media's
caption words as a query). It prints the ratios and writes a Markdown report (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .perf_corpus import Spec, build

MODEL_STAGES = ("scenes", "transcript_segments", "ocr_text", "scene_embeddings", "text_embeddings", "index_entries")


# ---- measuring a child process ---------------------------------------------------------------

def _usage() -> dict:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = None
    with open("/proc/self/status") as f:  # VmHWM starts afresh at exec (ru_maxrss does not)
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return {"cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, "peak_rss_mb": peak}


def run_child(kind: str, *args: str, env: dict | None = None) -> dict:
    """``kind`` in a fresh interpreter; its JSON answer (last line of stdout) with the wall time."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mediaintel_dagster.bench.perf", "--child", kind, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench child {kind} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1])
    out["process_wall_s"] = round(wall, 2)
    return out


# ---- the pipeline ------------------------------------------------------------------------------

def child_pipeline(folder: str, home: str, truth_file: str) -> dict:
    os.environ["MEDIAINTEL_HOME"] = home
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.pop("MEDIAINTEL_LAKE", None)
    t = time.perf_counter()
    from ..cli import process

    summary = process([folder], quiet=True)
    wall = time.perf_counter() - t
    out = {"wall_s": round(wall, 2), **_usage(), "exit_code": summary["exit_code"], "runs": summary["runs"],
           "stages": stage_numbers(), "checks_s": check_seconds()}
    out["quality"] = quality(json.loads(Path(truth_file).read_text()), folder)
    return out


def stage_numbers() -> dict:
    """Per stage, summed over the runs: what each stage's materializations report."""
    from dagster import DagsterEventType, DagsterInstance

    from ..instance import get_instance

    instance: DagsterInstance = get_instance()
    stages: dict[str, dict] = {}
    for rec in instance.get_run_records():
        for e in instance.all_logs(rec.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            m = e.dagster_event.event_specific_data.materialization
            md = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
            if "wall_seconds" not in md or m.asset_key.to_user_string() == "media_sources":
                continue  # media_sources repeats the ingest step's numbers
            s = stages.setdefault(m.asset_key.to_user_string(), {"wall_s": 0.0, "compute_s": 0.0, "cpu_s": 0.0,
                                                                 "media_s": 0.0, "peak_rss_mb": 0.0, "runs": 0})
            s["runs"] += 1
            s["wall_s"] += float(md.get("wall_seconds") or 0)
            s["compute_s"] += float(md.get("compute_seconds") or md.get("wall_seconds") or 0)
            s["cpu_s"] += float(md.get("cpu_seconds") or 0)
            s["media_s"] += float(md.get("media_seconds") or 0)
            s["peak_rss_mb"] = max(s["peak_rss_mb"], float(md.get("peak_rss_mb") or 0))
    return {k: {kk: round(vv, 2) if isinstance(vv, float) else vv for kk, vv in v.items()} for k, v in stages.items()}


def check_seconds() -> float:
    """Seconds the runs spent in asset-check steps (STEP_START to STEP_SUCCESS or FAILURE):
    the part of the orchestration overhead that is the checks' own work."""
    from dagster import DagsterEventType

    from ..instance import get_instance

    instance = get_instance()
    total = 0.0
    ends = {DagsterEventType.STEP_SUCCESS.value, DagsterEventType.STEP_FAILURE.value}
    for rec in instance.get_run_records():
        started: dict[str, float] = {}
        for e in instance.all_logs(rec.dagster_run.run_id):
            if not e.dagster_event or not e.step_key or "_check_" not in e.step_key:
                continue
            kind = e.dagster_event.event_type_value
            if kind == DagsterEventType.STEP_START.value:
                started[e.step_key] = e.timestamp
            elif kind in ends and e.step_key in started:
                total += e.timestamp - started.pop(e.step_key)
    return round(total, 2)


def quality(truth: dict, folder: str) -> dict:
    """The pipeline's facts against the corpus's truth (see the module docstring)."""
    from .speech import wer
    from .transitions import f1, score
    from ..resources import LakehouseResource

    lake = LakehouseResource()
    base = Path(folder).resolve().parent
    by_uri = {r["source_uri"]: r["media_id"] for r in lake.read("media_sources").to_pylist()}
    media_of = {k: by_uri.get(str(base / k)) for k in truth if str(base / k) in by_uri}
    segs = lake.read("transcript_segments").to_pylist()
    scenes = lake.read("scenes").to_pylist()
    ocr = lake.read("ocr_text").to_pylist()
    refs, hyps, tp = [], [], {"cut": [0, 0, 0], "gradual": [0, 0, 0]}
    caption_words = caption_read = 0
    for key, mid in media_of.items():
        t = truth[key]
        if t["speech"]:
            text = " ".join(s["text"] for s in sorted((s for s in segs if s["media_id"] == mid),
                                                      key=lambda s: s["start_s"]))
            refs.append(t["speech"])
            hyps.append(text)
        if t["kind"] == "video":
            fps = t["fps"]
            pred = [{"kind": s["transition"] or "cut", "frame": round(s["start_s"] * fps)}
                    for s in scenes if s["media_id"] == mid and s["scene_index"] > 0]
            for cat, (a, b, c) in score(pred, t["transitions"]).items():
                tp[cat] = [tp[cat][0] + a, tp[cat][1] + b, tp[cat][2] + c]
            read = " ".join(r["text"] for r in ocr if r["media_id"] == mid).upper().split()
            caption_words += len(t["captions"])
            caption_read += sum(w in read for w in t["captions"])
    out = {"media": len(media_of),
           "wer": round(wer(" ".join(refs), " ".join(hyps)), 4) if refs else None,
           "cut_f1": round(f1(*tp["cut"]), 3), "gradual_f1": round(f1(*tp["gradual"]), 3),
           "ocr_caption_words": round(caption_read / caption_words, 3) if caption_words else None}
    out["search_mrr"] = _search_mrr(truth, media_of)
    return out


def _search_mrr(truth: dict, media_of: dict) -> float | None:
    """Mean reciprocal rank of the first media that shows a caption, the caption as the query
    ("harbor 41"), over each video's captions. Topic words alone are no test: the narration
    of other videos says "harbor" too."""
    from ..search import search_page

    shows: dict[str, set] = {}
    for key, mid in media_of.items():
        for line in truth[key].get("caption_lines") or []:
            shows.setdefault(line, set()).add(mid)
    ranks = []
    for line, mids in sorted(shows.items()):
        hits = [h.media_id for h in search_page(line.lower(), k=10).hits]
        first = next((i for i, h in enumerate(hits) if h in mids), None)
        ranks.append(0.0 if first is None else 1.0 / (first + 1))
    return round(statistics.fmean(ranks), 3) if ranks else None


# ---- the plain-script yardstick ------------------------------------------------------------------

def child_script(folder: str) -> dict:
    """The same models, settings and files as the pipeline, in a plain loop: no Dagster, no
    lakehouse. What someone would write by hand, and what the pipeline must not lose to."""
    t = time.perf_counter()
    import av
    import numpy as np
    from PIL import Image
    from scenedetect import ContentDetector, detect

    from ..resources import ClipResource, OcrResource, TextEmbedderResource, WhisperResource

    # faster-whisper's plain call, with the stage's decoding settings (beam, VAD, thresholds): the
    # sequential decoder, as a script written by hand calls it (the pipeline batches).
    whisper = WhisperResource(batch_size=0)
    ocr, clip, text = OcrResource(), ClipResource(), TextEmbedderResource()
    facts = {"scenes": 0, "ocr_lines": 0, "image_vectors": 0, "segments": 0, "text_vectors": 0}
    media_s = 0.0
    keyframe_dir = Path(tempfile.mkdtemp(prefix="yardstick-"))
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        with av.open(str(path)) as c:
            has_video, has_audio = bool(c.streams.video), bool(c.streams.audio)
            media_s += (c.duration or 0) / 1e6
        texts = []
        if has_video:
            scenes = detect(str(path), ContentDetector()) or []
            mids = [(a.get_seconds() + b.get_seconds()) / 2 for a, b in scenes] or [0.0]
            images = []
            with av.open(str(path)) as c:
                s = c.streams.video[0]
                for i, m in enumerate(mids):
                    c.seek(int(m / s.time_base), stream=s)
                    frame = next(f for f in c.decode(s) if f.time is None or f.time >= m - 0.05)
                    img = frame.to_image()
                    img.save(keyframe_dir / f"{path.stem}-{i}.jpg", quality=90)
                    images.append(img)
            facts["scenes"] += len(mids)
            for img in images:
                bgr = np.asarray(img.convert("RGB"))[:, :, ::-1].copy()
                lines = ocr.read(bgr)
                facts["ocr_lines"] += len(lines)
                texts += [ln.text for ln in lines]
            facts["image_vectors"] += len(clip.embedder().embed(images))
        if has_audio:
            segments, _ = whisper.load().transcribe(str(path), **whisper.transcribe_options())
            segs = [s.text.strip() for s in segments]
            facts["segments"] += len(segs)
            texts += segs
        if texts:
            facts["text_vectors"] += len(text.embed(texts))
    shutil.rmtree(keyframe_dir, ignore_errors=True)
    return {"wall_s": round(time.perf_counter() - t, 2), **_usage(), "media_s": round(media_s, 2), "facts": facts}


def child_scenedetect(folder: str) -> dict:
    from .scenes import cli

    t = time.perf_counter()
    media_s, cuts = 0.0, 0
    import av

    for path in sorted(Path(folder).rglob("*.mp4")):
        with av.open(str(path)) as c:
            media_s += (c.duration or 0) / 1e6
        found, _, _ = cli(str(path))
        cuts += len(found)
    return {"wall_s": round(time.perf_counter() - t, 2), **_usage(), "media_s": round(media_s, 2), "cuts": cuts}


def child_whisper(folder: str, truth_file: str) -> dict:
    """faster-whisper alone, with its defaults (beam 5, no VAD), on every file with sound."""
    t = time.perf_counter()
    from faster_whisper import WhisperModel

    from .speech import wer
    from ..resources import WhisperResource

    w = WhisperResource()
    model = WhisperModel(w.model_path(), device=w.resolved_device(), compute_type=w.resolved_compute_type())
    truth = json.loads(Path(truth_file).read_text())
    base = Path(folder).resolve().parent
    refs, hyps, media_s = [], [], 0.0
    for key, item in sorted(truth.items()):
        path = base / key
        if not item["speech"] or not str(path).startswith(str(Path(folder).resolve())):
            continue
        segments, info = model.transcribe(str(path))
        hyps.append(" ".join(s.text for s in segments))
        refs.append(item["speech"])
        media_s += info.duration
    return {"wall_s": round(time.perf_counter() - t, 2), **_usage(), "media_s": round(media_s, 2),
            "wer": round(wer(" ".join(refs), " ".join(hyps)), 4) if refs else None}


CHILDREN = {"pipeline": child_pipeline, "script": child_script, "scenedetect": child_scenedetect,
            "whisper": child_whisper}


# ---- the report -------------------------------------------------------------------------------------

def media_seconds(truth: dict, folder: Path, part: str) -> float:
    import av

    total = 0.0
    for key in truth:
        if key.startswith(part + "/"):
            with av.open(str(folder / key)) as c:
                total += (c.duration or 0) / 1e6
    return total


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarize(name: str, runs: list[dict], media_s: float) -> dict:
    wall = _median(runs, "wall_s")
    out = {"name": name, "runs": len(runs), "wall_s": round(wall, 1), "wall_all": [r["wall_s"] for r in runs],
           "process_wall_s": round(_median(runs, "process_wall_s"), 1),
           "cpu_s": round(_median(runs, "cpu_s"), 1), "peak_rss_mb": round(max(r["peak_rss_mb"] or 0 for r in runs)),
           "media_s": round(media_s, 1), "realtime_x": round(media_s / wall, 2)}
    if "stages" in runs[0]:
        mid = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
        out["stages"] = mid["stages"]
        compute = sum(s["compute_s"] for k, s in mid["stages"].items())
        out["compute_s"] = round(compute, 1)
        out["orchestration_s"] = round(mid["wall_s"] - compute, 1)
        out["orchestration_pct"] = round(100 * (mid["wall_s"] - compute) / mid["wall_s"], 1)
        out["checks_s"] = mid.get("checks_s")
        out["quality"] = mid["quality"]
        out["exit_code"] = mid["exit_code"]
    for k in ("wer", "cuts", "facts"):
        if k in runs[0]:
            out[k] = runs[0][k]
    return out


def markdown(results: dict, spec: Spec, args, machine: str) -> str:
    lines = ["# Performance: the pipeline against a plain script", "",
             f"`make bench` (`python -m mediaintel_dagster.bench.perf`), {getattr(args, 'date', None) or time.strftime('%Y-%m-%d')}, on {machine}.",
             f"Corpus: {spec.videos} narrated videos of {spec.minutes:g} min ({spec.size[0]}x{spec.size[1]}, "
             f"{spec.fps} fps, cuts, dissolves, fades, captions) and {spec.audio} audio files of {spec.minutes:g} min "
             f"(`long`), and {spec.short} short clips of 8-15 s (`short`). Every run is a fresh process (cold); "
             f"{args.repeats} interleaved run(s) each, median shown.", ""]
    lines += targets(results)
    for part, res in results.items():
        lines += [f"## {part}: {res['media_s']:.0f} media-seconds", "",
                  "| run | wall s | media-s per wall-s | CPU s | peak RSS MB | vs script |",
                  "| --- | --- | --- | --- | --- | --- |"]
        script = res["runs"].get("script")
        for name, r in res["runs"].items():
            ratio = f"{r['wall_s'] / script['wall_s']:.2f}x" if script and name != "script" else ""
            lines.append(f"| {name} | {r['wall_s']} | {r['realtime_x']} | {r['cpu_s']} | {r['peak_rss_mb']} | "
                         f"{ratio} |")
        for name, r in res["runs"].items():
            if "stages" not in r:
                continue
            lines += ["", f"### {part} / {name}: per stage", "",
                      f"Orchestration: {r['orchestration_s']} s of {r['wall_s']} s "
                      f"({r['orchestration_pct']} %): wall time minus the stages' compute time"
                      + (f"; of it, the asset checks' steps took {r['checks_s']} s, and the rest (imports, "
                         f"run starts, step events) {round(r['orchestration_s'] - r['checks_s'], 1)} s"
                         if r.get("checks_s") is not None else "") + ".", "",
                      "| stage | runs | media-s per wall-s | wall s | compute s | CPU s | peak RSS MB |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for st, s in r["stages"].items():
                rate = f"{s['media_s'] / s['wall_s']:.1f}" if s["wall_s"] and s["media_s"] else ""
                lines.append(f"| {st} | {s['runs']} | {rate} | {s['wall_s']} | {s['compute_s']} | {s['cpu_s']} | "
                             f"{s['peak_rss_mb']:.0f} |")
            q = r["quality"]
            lines += ["", f"Quality: WER {q['wer']}, cut F1 {q['cut_f1']}, gradual F1 {q['gradual_f1']}, "
                          f"caption words read {q['ocr_caption_words']}, caption search MRR {q['search_mrr']} "
                          f"(exit code {r['exit_code']})."]
        extra = [f"faster-whisper alone (defaults): WER {r['wer']}" for n, r in res["runs"].items() if n == "whisper"]
        if extra:
            lines += ["", *extra]
        lines.append("")
    return "\n".join(lines)


def _quality_no_worse(q: dict, base: dict) -> bool:
    """WER no higher (0.002 slack: one word in 500), transition F1, caption words and search
    MRR no lower than the baseline's."""
    return (q["wer"] is None or base["wer"] is None or q["wer"] <= base["wer"] + 0.002) and all(
        (q[k] or 0) >= (base[k] or 0) - 1e-9 for k in ("cut_f1", "gradual_f1", "ocr_caption_words", "search_mrr"))


def targets(results: dict) -> list[str]:
    """Issue 14's targets, each with the figure that meets or misses it."""
    long, short = results.get("long", {}).get("runs", {}), results.get("short", {}).get("runs", {})
    rows = []

    def row(what, got, ok):
        rows.append(f"| {what} | {got} | {'met' if ok else '**missed**'} |")

    p, s = long.get("pipeline"), long.get("script")
    if p:
        row("long corpus, default settings: >= 3x real time", f"{p['realtime_x']}x", p["realtime_x"] >= 3)
        if s:
            r = p["wall_s"] / s["wall_s"]
            row("long corpus: wall time <= 1.0x the plain script's", f"{r:.2f}x", r <= 1.0)
        row("long corpus: orchestration <= 5 % of wall time", f"{p['orchestration_pct']} %", p["orchestration_pct"] <= 5)
        best = max((r for n, r in long.items() if n.startswith("pipeline")), key=lambda r: r["realtime_x"])
        ok = _quality_no_worse(best["quality"], p["quality"])
        row(f"long corpus, fastest optimization ({best['name']}): >= 5x real time, quality no worse",
            f"{best['realtime_x']}x, quality {'no worse' if ok else 'worse'}", best["realtime_x"] >= 5 and ok)
    if short.get("pipeline"):
        sp = short["pipeline"]
        row("short clips, default settings: >= 1.5x real time", f"{sp['realtime_x']}x", sp["realtime_x"] >= 1.5)
    if not rows:
        return []
    return ["## Targets", "", "| target | measured | |", "| --- | --- | --- |", *rows, "",
            "Quality is the run's own: WER on the narration, transition F1, the share of caption words OCR "
            "read and the MRR of a caption searched as text (`quality()`); \"no worse\" allows one word in "
            "500 of WER. Variants (`pipeline[...]`) are the default pipeline with one setting changed.", ""]


def machine() -> str:
    import platform

    cores = os.cpu_count()
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 2**20
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    # Sessions get other CPUs under the same "2 cores" (the same run took 519 s on one and 108 s
    # on another): the model name says which figures can be compared.
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.machine()} ({cpu}), {cores} cores, {mem:.0f} GB, load {load:.1f} at start"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--videos", type=int, default=10)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--audio", type=int, default=2)
    p.add_argument("--short", type=int, default=6)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--parts", default="long,short", help="which parts of the corpus: long, short")
    p.add_argument("--runs", default="pipeline,script,scenedetect,whisper",
                   help="which runs, comma-separated: pipeline, script, scenedetect, whisper")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME:ENV=VALUE[,ENV=VALUE]: one more pipeline run with these settings")
    p.add_argument("--corpus", default=None, help="where the corpus is built (default $MEDIAINTEL_HOME/bench)")
    p.add_argument("--gpu", action="store_true",
                   help="the GPU path: needs CUDA; Whisper float16 batched by 16, TransNetV2 on every frame")
    p.add_argument("--out", default="docs/perf.md")
    p.add_argument("--json", default=None, help="also write the raw numbers here")
    p.add_argument("--report-only", default=None, help="write --out from a --json file of an earlier run")
    args, rest = p.parse_known_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](*rest)))
        return 0
    if args.report_only:
        raw = json.loads(Path(args.report_only).read_text())
        spec = Spec(**{k: (tuple(v) if k == "size" else v) for k, v in raw["spec"].items()})
        Path(args.out).write_text(markdown(raw["results"], spec, argparse.Namespace(repeats=raw["repeats"], date=raw.get("date")),
                                           raw["machine"]))
        return 0

    from .. import config

    base_env = {}
    machine_line = machine()
    if args.gpu:
        from ..media.device import detect_device

        if detect_device() != "cuda":
            print("bench --gpu: no CUDA device on this machine (torch.cuda.is_available() is False)", file=sys.stderr)
            return 2
        import torch

        machine_line += f", GPU {torch.cuda.get_device_name(0)}"
        # float16 comes with device auto; a GPU takes far bigger batches than 2 cores.
        base_env["MEDIAINTEL_WHISPER_BATCH_SIZE"] = "16"
    spec = Spec(videos=args.videos, minutes=args.minutes, audio=args.audio, short=args.short)
    root = Path(args.corpus or (config.home() / "bench"))
    t = time.perf_counter()
    folder, truth = build(root, spec)
    print(f"corpus {folder} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    truth_file = str(folder / "truth.json")
    runs = [r for r in args.runs.split(",") if r]
    variants = [("pipeline", {})] if "pipeline" in runs else []
    for v in args.variant:
        name, _, assigns = v.partition(":")
        variants.append((f"pipeline[{name}]", dict(a.split("=", 1) for a in assigns.split(",") if a)))
    models = str(Path(config.models_root()).resolve())
    results = {}
    for part in [x for x in args.parts.split(",") if x]:
        part_dir = str(folder / part)
        collected: dict[str, list[dict]] = {}
        for rep in range(args.repeats):
            for name, env in variants:
                home = tempfile.mkdtemp(prefix="mediaintel-bench-")
                try:
                    r = run_child("pipeline", part_dir, home, truth_file,
                                  env={"MEDIAINTEL_MODELS": models, **base_env, **env})
                finally:
                    shutil.rmtree(home, ignore_errors=True)
                collected.setdefault(name, []).append(r)
                print(f"{part} {name} #{rep + 1}: {r['wall_s']} s", file=sys.stderr)
            for name in ("script", "scenedetect", "whisper"):
                if name not in runs or (name == "scenedetect" and part == "short" and rep):
                    continue
                a = (part_dir, truth_file) if name == "whisper" else (part_dir,)
                r = run_child(name, *a, env={"MEDIAINTEL_MODELS": models, **base_env})
                collected.setdefault(name, []).append(r)
                print(f"{part} {name} #{rep + 1}: {r['wall_s']} s", file=sys.stderr)
        media_s = media_seconds(truth, folder, part)
        results[part] = {"media_s": media_s, "runs": {
            n: summarize(n, rs, rs[0].get("media_s") or media_s) for n, rs in collected.items()}}
    for part, res in results.items():
        script = res["runs"].get("script")
        for name, r in res["runs"].items():
            line = f"{part:5s} {name:28s} {r['wall_s']:7.1f} s  {r['realtime_x']:5.2f}x real time"
            if script and name != "script":
                line += f"  {r['wall_s'] / script['wall_s']:.2f}x the script's wall time"
            if "orchestration_pct" in r:
                line += f"  orchestration {r['orchestration_pct']}%  quality {json.dumps(r['quality'])}"
            print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(markdown(results, spec, args, machine_line))
        print(f"report: {args.out}", file=sys.stderr)
    if args.json:
        from dataclasses import asdict

        Path(args.json).write_text(json.dumps({"spec": asdict(spec), "repeats": args.repeats, "machine": machine_line,
                                               "date": time.strftime("%Y-%m-%d"),
                                               "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
