"""Retrieval quality of `mediaintel search`: vector-only, keyword-only and hybrid, side by side.

    python -m mediaintel_dagster.bench.retrieval [--folder DIR]

Ten generated media with known topics go through the whole pipeline (speech through
Whisper, captions through OCR, both through MiniLM and the index): four videos with
captions and narration, three speech-only recordings, three silent captioned videos. Each
topic has two queries: a paraphrase that shares no content word with the media (vector
search's strength) and a pair of the media's own words (keyword search's). A query's
relevant items are those of its topic's media. Printed: recall@1, recall@5 and MRR per
mode, over all queries and per query type.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Topic:
    name: str
    speech: str | None
    captions: tuple[str, ...]
    paraphrase: str
    keywords: str


TOPICS = (
    Topic("volcano", "The volcano erupted last night and ash covered the nearby villages.",
          ("VOLCANO ALERT", "ASH CLOUD"), "lava and smoke pouring from a mountain", "volcano ash"),
    Topic("election", "Voters lined up early to choose a new mayor for the city.",
          ("ELECTION DAY", "POLLS OPEN"), "citizens casting ballots", "mayor voters"),
    Topic("football", "The striker scored twice and the team won the championship final.",
          ("CHAMPIONS", "FINAL SCORE"), "a soccer player kicking goals", "striker championship"),
    Topic("baking", "Add the flour and sugar, then bake the cake for thirty minutes.",
          ("BAKING CLASS", "CAKE RECIPE"), "making a dessert in the oven", "flour sugar"),
    Topic("markets", "Shares fell sharply as investors worried about rising interest rates.",
          (), "stock prices dropping on wall street", "investors shares"),
    Topic("rocket", "The rocket launched from the coast carrying a new weather satellite.",
          (), "a spacecraft lifting off into orbit", "rocket satellite"),
    Topic("traffic", "A crash on the highway caused long delays for morning commuters.",
          (), "car accident on the motorway", "highway commuters"),
    Topic("health", None, ("HEALTH TIPS", "DRINK MORE WATER", "SLEEP EIGHT HOURS"),
          "advice about staying well and getting rest", "water sleep"),
    Topic("concert", None, ("LIVE CONCERT", "ORCHESTRA TONIGHT", "SYMPHONY NUMBER NINE"),
          "classical musicians performing on stage", "orchestra symphony"),
    Topic("safari", None, ("SAFARI PARK", "ELEPHANTS AND LIONS", "OPEN DAILY"),
          "wild animals in africa", "elephants lions"),
)
MODES = ("vector", "keyword", "hybrid")


def make_corpus(folder: Path) -> dict[str, Path]:
    """The topics' media in ``folder``: {topic name: path}."""
    from ..media.samples import Shot, make_audio, make_video

    folder.mkdir(parents=True, exist_ok=True)
    styles = ("stripes", "checker", "gradient", "circles", "noise")
    out = {}
    for n, t in enumerate(TOPICS):
        color = (40 + 20 * n % 200, 200 - 15 * n % 180, 90 + 30 * n % 160)
        if t.captions:
            shots = [Shot(2.4, c, style=styles[(n + i) % len(styles)], color=color) for i, c in enumerate(t.captions)]
            out[t.name] = make_video(folder / f"{t.name}.mp4", shots, speech=t.speech, size=(480, 270),
                                     rate_wpm=160)["path"]
        else:
            out[t.name] = make_audio(folder / f"{t.name}.wav", t.speech, sample_rate=16000, silence_s=0.3)
    return out


def evaluate(media_of: dict[str, str], search_fn, k: int = 5) -> dict:
    """recall@1, recall@k and MRR of each mode, overall and per query type.
    ``media_of``: topic -> media_id; ``search_fn(query, mode) -> [media_id of each hit]``."""
    out: dict = {}
    for mode in MODES:
        per_type: dict[str, list[int | None]] = {"paraphrase": [], "keywords": []}
        for t in TOPICS:
            for qtype in per_type:
                ranked = search_fn(getattr(t, qtype), mode)
                rank = next((i for i, mid in enumerate(ranked, 1) if mid == media_of[t.name]), None)
                per_type[qtype].append(rank)
        out[mode] = {name: _metrics(ranks, k) for name, ranks in
                     (("all", per_type["paraphrase"] + per_type["keywords"]), *per_type.items())}
    return out


def _metrics(ranks: list[int | None], k: int) -> dict:
    n = max(1, len(ranks))
    return {"recall@1": round(sum(1 for r in ranks if r == 1) / n, 3),
            f"recall@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / n, 3),
            "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 3), "queries": len(ranks)}


def lake_search_fn(depth: int = 20, **resources):
    """``search_fn`` over the lakehouse and index (resources as search_page takes them)."""
    from ..search import RETRIEVERS, search_page

    def fn(query: str, mode: str) -> list[str]:
        retrievers = RETRIEVERS if mode == "hybrid" else (mode,)
        return [h.media_id for h in search_page(query, k=depth, retrievers=retrievers, **resources).hits]

    return fn


def table(results: dict, k: int = 5) -> str:
    lines = [f"| mode | queries | recall@1 | recall@{k} | MRR | paraphrase MRR | keywords MRR |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for mode, r in results.items():
        a = r["all"]
        lines.append(f"| {mode} | {a['queries']} | {a['recall@1']:.3f} | {a[f'recall@{k}']:.3f} | {a['mrr']:.3f} | "
                     f"{r['paraphrase']['mrr']:.3f} | {r['keywords']['mrr']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="work folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = Path(args.folder or tempfile.mkdtemp(prefix="mediaintel-retrieval-"))
    os.environ.setdefault("MEDIAINTEL_HOME", str(work / "home"))
    from ..cli import process
    from ..resources import LakehouseResource

    t0 = time.perf_counter()
    paths = make_corpus(work / "media")
    summary = process([str(p) for p in paths.values()], quiet=True)
    lake = LakehouseResource()
    by_uri = {r["source_uri"]: r["media_id"] for r in lake.read("media_sources").to_pylist()}
    media_of = {name: by_uri[str(Path(p).absolute())] for name, p in paths.items()}
    results = evaluate(media_of, lake_search_fn())
    print(table(results))
    print(json.dumps({"results": results, "pipeline_exit_code": summary["exit_code"],
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
