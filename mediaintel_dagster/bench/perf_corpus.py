"""The fixed corpus of `make bench` (bench/perf.py): narrated videos with hard and gradual
transitions and captions, audio-only files and short clips, each with its truth (the words
spoken, the transitions, the caption words), built the same way on every machine.

Everything is drawn from a seeded generator, so the same spec gives the same files; the
corpus is built once into a folder named after its spec and reused while its truth file
is there.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ..media.samples import STYLES, Shot, make_audio
from ..media.transition_samples import Join, make_transition_video

VERSION = 3

# Caption words: one topic per media, so a caption query has one right answer.
TOPICS = [
    ("HARBOR", "FERRY"), ("COUNCIL", "BUDGET"), ("MARATHON", "RUNNERS"), ("ORCHARD", "HARVEST"),
    ("GLACIER", "CLIMATE"), ("MUSEUM", "GALLERY"), ("STADIUM", "FINALS"), ("BAKERY", "PASTRY"),
    ("AIRPORT", "TERMINAL"), ("VOLCANO", "ERUPTION"), ("LIBRARY", "READING"), ("HOSPITAL", "NURSES"),
    ("FACTORY", "WORKERS"), ("THEATER", "PREMIERE"), ("RAILWAY", "STATION"), ("FOREST", "WILDFIRE"),
]
# Plain English sentences, about 14 words each, read at 150 words a minute.
SENTENCES = [
    "Good evening and welcome to the late news from the city and the surrounding valley.",
    "The city council met this afternoon to discuss the budget for the coming year.",
    "Residents asked for more trees, a new playground and better lighting along the river.",
    "In sports, the home team won their third match in a row on Saturday night.",
    "The coach thanked the fans for their patience during a long and difficult season.",
    "The weather tomorrow will be cloudy in the morning with sunshine in the afternoon.",
    "A light breeze from the west will keep the temperature pleasant near the coast.",
    "Scientists have found a small planet orbiting a distant star in our galaxy.",
    "The planet is slightly larger than the Earth and may have water on its surface.",
    "Farmers in the north expect a good harvest after a warm and rainy summer.",
    "The new public library opens next Monday, and every child receives a free book.",
    "Traffic on the main bridge was slow this morning because of road repairs.",
    "The museum will show paintings from the last century in a new gallery upstairs.",
    "Thousands of runners took part in the marathon despite the cold and the wind.",
    "The airport plans a second terminal to handle the growing number of travelers.",
    "Doctors and nurses at the hospital received an award for their work this winter.",
    "A small bakery on the market square has sold the same bread for fifty years.",
    "The railway company promised faster trains between the two largest cities.",
    "Firefighters worked through the night to stop the wildfire near the forest.",
    "The theater opens its season with a premiere of a play about a family farm.",
    "Workers at the factory voted to accept the new contract by a large majority.",
    "The ferry across the harbor will run every twenty minutes during the festival.",
    "Students from the local school planted two hundred trees along the old canal.",
    "Prices at the market went up slightly this month, mostly for fruit and vegetables.",
    "The mayor said the new park should be ready before the end of next summer.",
    "Volunteers cleaned the beach on Sunday and collected more than a ton of plastic.",
    "The orchestra will play a free concert in the park on the first day of spring.",
    "Engineers tested a new bridge design that can carry twice the usual weight.",
    "That is all for tonight. Thank you for watching, and have a good evening.",
]
WORDS_PER_MINUTE = 150


@dataclass(frozen=True)
class Spec:
    """What the corpus holds: ``videos`` narrated videos and ``audio`` audio-only files of
    ``minutes`` each, and ``short`` short clips (8 to 15 s)."""

    videos: int = 10
    minutes: float = 2.0
    audio: int = 2
    short: int = 6
    size: tuple[int, int] = (640, 360)
    fps: int = 25

    def key(self) -> str:
        text = json.dumps({**asdict(self), "version": VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def _narration(rng: random.Random, seconds: float) -> str:
    words, out = 0, []
    target = seconds * WORDS_PER_MINUTE / 60.0 * 0.92  # espeak's pauses between sentences
    pool = list(SENTENCES)
    while words < target:
        rng.shuffle(pool)
        for s in pool:
            out.append(s)
            words += len(s.split())
            if words >= target:
                break
    return " ".join(out)


def _shots_and_joins(rng: random.Random, seconds: float, topic: tuple[str, str], lo: float, hi: float):
    shots, joins, total, n = [], [], 0.0, 0
    while total < seconds:
        d = min(rng.uniform(lo, hi), max(2.0, seconds - total))
        caption = None
        if n % 2 == 0:  # every other shot carries a caption with the media's topic words
            caption = f"{topic[n // 2 % 2]} {rng.randint(10, 99)}"
        color = tuple(rng.randint(30, 230) for _ in range(3))
        shots.append(Shot(d, caption, style=STYLES[(n * 3 + rng.randint(0, 6)) % len(STYLES)], color=color))
        total += d
        n += 1
    for _ in shots[1:]:
        r = rng.random()
        joins.append(Join("cut") if r < 0.6 else Join("dissolve", 1.0) if r < 0.8 else Join("fade", 1.0))
    return shots, joins


def _video(folder: Path, name: str, rng: random.Random, seconds: float, topic, spec: Spec, lo: float, hi: float) -> dict:
    shots, joins = _shots_and_joins(rng, seconds, topic, lo, hi)
    speech = _narration(rng, seconds)
    made = make_transition_video(folder / f"{name}.mp4", shots, joins, size=spec.size, fps=spec.fps, crf=23,
                                 speech=speech)
    captions = sorted({w for s in shots if s.text for w in s.text.split()})
    lines = sorted({s.text for s in shots if s.text})
    return {"kind": "video", "file": f"{folder.name}/{name}.mp4", "duration_s": made["duration_s"], "fps": spec.fps,
            "speech": speech, "captions": captions, "caption_lines": lines, "topic": list(topic),
            "transitions": [{k: t[k] for k in ("kind", "frame", "start", "end")} for t in made["transitions"]]}


def build(root: Path, spec: Spec = Spec()) -> tuple[Path, dict]:
    """The corpus folder for ``spec`` under ``root`` (``long/`` and ``short/``) and its truth
    (file -> what it holds), built on first use."""
    folder = Path(root) / f"corpus-{spec.key()}"
    truth_file = folder / "truth.json"
    if truth_file.is_file():
        return folder, json.loads(truth_file.read_text())
    rng = random.Random(20261201)
    truth: dict[str, dict] = {}
    seconds = spec.minutes * 60.0
    long_dir, short_dir = folder / "long", folder / "short"
    long_dir.mkdir(parents=True, exist_ok=True)
    short_dir.mkdir(parents=True, exist_ok=True)
    t = 0
    for i in range(spec.videos):
        item = _video(long_dir, f"video-{i:02d}", rng, seconds, TOPICS[t % len(TOPICS)], spec, 3.0, 12.0)
        truth[item["file"]] = item
        t += 1
    for i in range(spec.audio):
        text = _narration(rng, seconds)
        path = make_audio(long_dir / f"audio-{i:02d}.m4a", text, sample_rate=44100, silence_s=1.0)
        truth[f"long/{path.name}"] = {"kind": "audio", "file": f"long/{path.name}", "speech": text,
                                      "duration_s": None, "captions": [], "transitions": []}
    for i in range(spec.short):
        item = _video(short_dir, f"clip-{i:02d}", rng, rng.uniform(8.0, 15.0), TOPICS[t % len(TOPICS)], spec,
                      3.0, 6.0)
        truth[item["file"]] = item
        t += 1
    truth_file.write_text(json.dumps(truth, indent=1))
    return folder, truth
