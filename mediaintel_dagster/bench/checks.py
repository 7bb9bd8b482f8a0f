"""How long the trust checks take: the Great Expectations import, and one evaluation of
each table's rules on a window of synthetic rows, with both engines.

    python -m mediaintel_dagster.bench.checks [--media 100]

Prints seconds and rows per second; ratios, not pass/fail.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..checks.rules import RuleContext, evaluate
from ..lake.schemas import to_arrow


def window(media: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    mrows, scenes, segs, ocr, emb = [], [], [], [], []
    for m in range(media):
        mid = f"{m:016x}"
        dur = 60.0
        mrows.append({"media_id": mid, "sha256": mid + "0" * 48, "source_uri": f"/in/{mid}.mp4", "size_bytes": 10,
                      "kind": "video", "duration_s": dur, "width": 640, "height": 360, "fps": 25.0,
                      "sample_rate": 16000, "channels": 1, "code_version": "media@1"})
        cuts = np.linspace(0, dur, 21)
        for i in range(20):
            scenes.append({"media_id": mid, "scene_index": i, "start_s": cuts[i], "end_s": cuts[i + 1],
                           "keyframe_s": (cuts[i] + cuts[i + 1]) / 2})
            ocr.append({"media_id": mid, "scene_index": i, "line_index": 0, "text": "SALE", "confidence": 0.9,
                        "model_id": "rapidocr@1"})
        for i in range(30):
            segs.append({"media_id": mid, "segment_index": i, "start_s": 2.0 * i, "end_s": 2.0 * i + 1.9,
                         "text": "words", "language": "en", "avg_logprob": -0.3, "model_id": "whisper@1"})
        vecs = rng.normal(size=(30, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        emb += [{"media_id": mid, "item_kind": "segment", "item_index": i, "model_id": "minilm@1",
                 "vector": v.tolist()} for i, v in enumerate(vecs)]
    return mrows, {"media": mrows, "scenes": scenes, "transcript_segments": segs, "ocr_text": ocr, "embeddings": emb}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--media", type=int, default=100)
    args = p.parse_args(argv)
    t = time.perf_counter()
    from ..checks import ge

    ge.context()
    print(f"great_expectations import + ephemeral context: {time.perf_counter() - t:.2f} s")
    mrows, tables = window(args.media)
    ctx = RuleContext.from_env(mrows)
    for table, rows in tables.items():
        data = to_arrow(table, rows)
        for engine in ("arrow", "ge"):
            t = time.perf_counter()
            findings = evaluate(table, data, ctx, engine=engine)
            s = time.perf_counter() - t
            print(f"{table:20s} {engine:5s} {data.num_rows:6d} rows {s:7.3f} s {data.num_rows / s:10.0f} rows/s "
                  f"findings={len(findings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
