"""`make bench` end to end on a tiny corpus: the corpus carries its truth, the pipeline and the
plain-script yardstick run in their own processes, the stages' numbers and the quality on the
truth come back, and the report is written. (Speed itself is the bench's to print, not a test's.)"""

from __future__ import annotations

import json

import av
import pytest

from mediaintel_dagster.bench import perf
from mediaintel_dagster.bench.perf_corpus import Spec, build


def test_corpus_is_fixed_and_carries_its_truth(tmp_path):
    spec = Spec(videos=1, minutes=0.4, audio=1, short=1)
    folder, truth = build(tmp_path, spec)
    again, truth2 = build(tmp_path, spec)
    assert again == folder and truth2 == truth, "built once, then reused"
    assert sorted(truth) == ["long/audio-00.m4a", "long/video-00.mp4", "short/clip-00.mp4"]
    video = truth["long/video-00.mp4"]
    with av.open(str(folder / "long/video-00.mp4")) as c:
        assert c.streams.video and c.streams.audio
        assert abs(c.duration / 1e6 - video["duration_s"]) < 0.3
    kinds = {t["kind"] for t in video["transitions"]}
    assert kinds and kinds <= {"cut", "dissolve", "fade"}
    assert video["captions"] and video["speech"].count(" ") > 10
    frames = [t["frame"] for t in video["transitions"]]
    assert frames == sorted(frames) and frames[-1] < video["duration_s"] * video["fps"]


@pytest.mark.slow
def test_bench_runs_pipeline_and_yardstick(tmp_path, models_dir, monkeypatch):
    monkeypatch.setenv("MEDIAINTEL_MODELS", str(models_dir))
    monkeypatch.setenv("MEDIAINTEL_HOME", str(tmp_path / "home"))
    out, raw = tmp_path / "perf.md", tmp_path / "perf.json"
    rc = perf.main(["--videos", "1", "--minutes", "0.4", "--audio", "0", "--short", "0", "--parts", "long",
                    "--runs", "pipeline,script", "--corpus", str(tmp_path / "bench"), "--out", str(out),
                    "--json", str(raw)])
    assert rc == 0
    res = json.loads(raw.read_text())["results"]["long"]["runs"]
    pipe, script = res["pipeline"], res["script"]
    assert pipe["exit_code"] == 0, "nothing lost on the corpus"
    stages = pipe["stages"]
    assert {"scenes", "transcript_segments", "ocr_text", "text_embeddings", "index_entries"} <= set(stages)
    assert all(s["compute_s"] <= s["wall_s"] + 0.05 for s in stages.values()), stages
    assert 0 < pipe["compute_s"] < pipe["wall_s"] and pipe["orchestration_s"] > 0
    q = pipe["quality"]
    assert q["media"] == 1 and q["wer"] is not None and q["wer"] < 0.2, q
    assert q["cut_f1"] > 0.5 and q["ocr_caption_words"] > 0.5 and q["search_mrr"] >= 0.5, q
    assert script["facts"]["segments"] > 0 and script["facts"]["scenes"] > 0
    report = out.read_text()
    assert "| pipeline |" in report and "| script |" in report and "Orchestration:" in report
    assert "## Targets" in report and "real time" in report
    # the report can be written again from the raw numbers
    again = tmp_path / "again.md"
    assert perf.main(["--report-only", str(raw), "--out", str(again)]) == 0
    assert again.read_text().split("\n", 3)[3] == report.split("\n", 3)[3]
