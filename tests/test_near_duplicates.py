"""Near-duplicates: keyframe fingerprints, ordered alignment, and the two stages through real
Dagster runs (media, scenes, scene_embeddings on the declared fallback, keyframe_hashes,
near_duplicates) on generated copies of one base video and on distractors that share only
a black opening, a logo and title-card template, or nothing.

The media are made once for the module (bench/near_duplicates.py makes them, as the
benchmark does on a larger set); the pure tests build hash sequences by hand.
"""

import random
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance, materialize
from PIL import Image

from mediaintel_dagster.assets.clip import scene_embeddings
from mediaintel_dagster.assets.media import media_assets
from mediaintel_dagster.assets.near_duplicates import forget_duplicates_of, keyframe_hashes, near_duplicate_clusters, \
    near_duplicates
from mediaintel_dagster.assets.scenes import scenes
from mediaintel_dagster.bench.near_duplicates import card, decode, make_corpus, shapes_canvas, variant_frames, \
    write_video
from mediaintel_dagster.media.samples import make_audio, make_image
from mediaintel_dagster.media.fingerprints import Item, MatchParams, align, hamming, item_distance, judge, \
    keyframe_print
from conftest import pipeline_resources, set_home, window_of

ASSETS = [media_assets, scenes, scene_embeddings, keyframe_hashes, near_duplicates]
VARIANTS = ("reencode", "crop10", "letterbox", "trim20", "speed125", "embedded", "exact")
DISTRACTORS = {"black_open": 1, "template": 1, "station": 2, "unrelated": 1}


def _run(h, models_dir, window, assets=ASSETS, force=False):
    names = {a.op.name for a in assets}
    ops = {"scenes": {"config": {"detector_mode": "cheap"}}}
    if force:
        ops["near_duplicates"] = {"config": {"force": True}}
    res = materialize(assets, partition_key=window, resources=pipeline_resources(h, models_dir),
                      instance=DagsterInstance.ephemeral(),
                      run_config={"ops": {k: v for k, v in ops.items() if k in names}})
    assert res.success
    return res


def _meta(res, step):
    return {k: v.value for k, v in res.asset_materializations_for_node(step)[0].metadata.items()}


@pytest.fixture(scope="module")
def nd(tmp_path_factory, models_dir):
    h = tmp_path_factory.mktemp("near_duplicates") / "mi"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAINTEL_SHARDS", "1")  # one window: one run sees every file
        inbox = set_home(mp, h, models_dir) / "inbox"
        corpus = make_corpus(inbox, bases=1, distractors=DISTRACTORS, variants=VARIANTS, seed=11)
        # Media without a sequence: an image (one keyframe) and speech (none) go through untouched.
        make_image(inbox / "poster.png", "GRAND OPENING", size=(320, 180))
        make_audio(inbox / "speech.wav", "testing one two three")
        windows = {window_of(p) for p in inbox.iterdir()}
        assert len(windows) == 1
        (window,) = windows
        first = _run(h, models_dir, window)
        lake = pipeline_resources(h, models_dir)["lake"]
        yield {"h": h, "inbox": inbox, "window": window, "corpus": corpus, "lake": lake, "first": first,
               "mp": mp, "models_dir": models_dir}


def _ids(lake):
    """file name -> media_id (both names of the exact copy)."""
    return {Path(r["source_uri"]).name: r["media_id"] for r in lake.read("media_sources").to_pylist()}


def _pairs(lake):
    return {frozenset((r["media_id"], r["duplicate_of"])) for r in lake.read("near_duplicates").to_pylist()
            if r["method"] == "keyframe_sequence"}


# ---- through Dagster ------------------------------------------------------------------------

def test_each_variant_pairs_with_its_base(nd):
    ids, pairs = _ids(nd["lake"]), _pairs(nd["lake"])
    base = ids["base0.mp4"]
    for v in VARIANTS:
        if v == "exact":
            continue
        assert frozenset((ids[f"base0_{v}.mp4"], base)) in pairs, f"{v} copy not paired with its base"
    rows = {r["media_id"]: r for r in nd["lake"].read("near_duplicates").to_pylist()
            if r["duplicate_of"] == base and r["method"] == "keyframe_sequence"}
    # What the alignment says about the copies, in the base's time: a 1.25x copy runs 0.8 s per base second,
    # a copy inside a longer video starts later in it, the trimmed copy lies inside the base.
    speed = rows[ids["base0_speed125.mp4"]]
    assert 1.1 < speed["speed_ratio"] < 1.45  # t(base) = ratio * t(copy) + offset
    assert rows[ids["base0_embedded.mp4"]]["offset_s"] < -2.0  # the base starts 3 s into the longer video
    assert rows[ids["base0_trim20.mp4"]]["relation"] in ("copy", "contained_in")
    assert all(0.5 <= r["score"] <= 1.0 and r["matched_keyframes"] >= 2 for r in rows.values())
    # Every row names both files, and one row per (media, other media, method, other location).
    every = nd["lake"].read("near_duplicates").to_pylist()
    assert all(r["source_uri"] and r["duplicate_source_uri"] for r in every)
    keys = [(r["media_id"], r["duplicate_of"], r["method"], r["duplicate_source_uri"]) for r in every]
    assert len(keys) == len(set(keys))
    first = {r["media_id"]: r["source_uri"] for r in nd["lake"].read("media").to_pylist()}
    assert all(r["duplicate_source_uri"] == first[r["duplicate_of"]] and r["source_uri"] == first[r["media_id"]]
               for r in every if r["method"] == "keyframe_sequence")


def test_distractors_pair_with_nothing(nd):
    ids, pairs = _ids(nd["lake"]), _pairs(nd["lake"])
    distractors = {n: mid for n, mid in ids.items() if n.startswith("distractor_")}
    assert len(distractors) == sum(DISTRACTORS.values())
    for name, mid in distractors.items():
        assert not [p for p in pairs if mid in p], f"{name} paired: {[p for p in pairs if mid in p]}"
    # The shared opening and cards were seen: black is low-information, the cards are not (the
    # pair test and the rarity weights keep them from making pairs, not a blind spot).
    kh = nd["lake"].read("keyframe_hashes").to_pylist()
    black = [r for r in kh if r["media_id"] == distractors["distractor_black_open0.mp4"] and r["keyframe_s"] < 1.0]
    assert black and all(not r["informative"] and r["low_info_reason"] == "near_black" for r in black)
    station = {r["hash"] for r in kh if r["media_id"] == distractors["distractor_station0.mp4"]}
    assert station & {r["hash"] for r in kh if r["media_id"] == distractors["distractor_station1.mp4"]}, \
        "the station videos share their cards"


def test_every_media_is_written_and_nothing_is_quarantined(nd):
    lake, ids = nd["lake"], _ids(nd["lake"])
    assert lake.read("quarantine").to_pylist() == []
    latest = lake.latest_audit(["keyframe_hashes", "near_duplicates"], sorted(set(ids.values())))
    assert {mid for (a, mid), r in latest.items() if a == "near_duplicates" and r["status"] == "written"} == set(ids.values())
    rows = lake.read("near_duplicates").to_pylist()
    assert not [r for r in rows if ids["poster.png"] in (r["media_id"], r["duplicate_of"])
                or ids["speech.wav"] in (r["media_id"], r["duplicate_of"])]
    kh = lake.read("keyframe_hashes").to_pylist()
    assert len([r for r in kh if r["media_id"] == ids["poster.png"]]) == 1
    assert not [r for r in kh if r["media_id"] == ids["speech.wav"]]


def test_exact_copies_from_media_sources(nd):
    ids, lake = _ids(nd["lake"]), nd["lake"]
    assert ids["base0.mp4"] == ids["copy_of_base0.mp4"]
    exact = [r for r in lake.read("near_duplicates").to_pylist() if r["method"] == "exact_bytes"]
    assert len(exact) == 1
    (row,) = exact
    assert row["media_id"] == row["duplicate_of"] == ids["base0.mp4"] and row["score"] == 1.0
    assert {Path(row["source_uri"]).name, Path(row["duplicate_source_uri"]).name} == {"base0.mp4",
                                                                                       "copy_of_base0.mp4"}


def test_letterbox_bars_are_cut_before_hashing(nd):
    ids, lake = _ids(nd["lake"]), nd["lake"]
    kh = lake.read("keyframe_hashes").to_pylist()
    boxed = [r for r in kh if r["media_id"] == ids["base0_letterbox.mp4"] and r["informative"]]
    assert boxed and all(r["bar_top"] >= 20 and r["bar_bottom"] >= 20 for r in boxed)
    assert all(abs(r["content_height"] - 180) <= 4 for r in boxed)
    plain = [r for r in kh if r["media_id"] == ids["base0.mp4"]]
    assert all(r["bar_top"] == 0 and r["bar_bottom"] == 0 for r in plain)


def test_clusters_have_one_canonical(nd):
    ids = _ids(nd["lake"])
    clusters = near_duplicate_clusters(nd["lake"])
    assert len(clusters) == 1, [c["size"] for c in clusters]
    (c,) = clusters
    members = {m["media_id"] for m in c["members"]}
    family = {ids["base0.mp4"]} | {ids[f"base0_{v}.mp4"] for v in VARIANTS if v != "exact"}
    assert members == family
    assert [m["method"] for m in c["members"]].count("canonical") == 1
    assert c["members"][0]["media_id"] == c["canonical_media_id"]
    # The biggest picture, then the longest: the full-size copy inside the longer video.
    assert c["canonical_media_id"] == ids["base0_embedded.mp4"]
    base = next(m for m in c["members"] if m["media_id"] == ids["base0.mp4"])
    assert {Path(s).name for s in base["sources"]} == {"base0.mp4", "copy_of_base0.mp4"}


def test_rerun_is_idempotent(nd):
    lake = nd["lake"]

    def table():
        return sorted((r["media_id"], r["duplicate_of"], r["method"], r["score"], r["matched_keyframes"],
                       r["duplicate_source_uri"]) for r in lake.read("near_duplicates").to_pylist())

    before, version = table(), lake.version("near_duplicates")
    res = _run(nd["h"], nd["models_dir"], nd["window"], assets=[near_duplicates])
    meta = _meta(res, "near_duplicates")
    assert meta["media_processed"] == 0 and meta["media_skipped_done"] > 0
    assert lake.version("near_duplicates") == version
    res = _run(nd["h"], nd["models_dir"], nd["window"], assets=[near_duplicates], force=True)
    assert _meta(res, "near_duplicates")["media_processed"] == meta["media_skipped_done"]
    assert table() == before


def test_a_later_media_meets_the_whole_lake(nd):
    """A copy that arrives after the others is compared with media processed earlier; only it is processed."""
    inbox, lake = nd["inbox"], nd["lake"]
    write_video(inbox / "late_resize50.mp4", variant_frames("resize50", decode(inbox / "base0.mp4")))
    assert window_of(inbox / "late_resize50.mp4") == nd["window"]
    res = _run(nd["h"], nd["models_dir"], nd["window"])
    assert _meta(res, "near_duplicates")["media_processed"] == 1
    ids = _ids(lake)
    assert frozenset((ids["late_resize50.mp4"], ids["base0.mp4"])) in _pairs(lake)
    (c,) = near_duplicate_clusters(lake)
    assert ids["late_resize50.mp4"] in {m["media_id"] for m in c["members"]}


def test_forgetting_a_media_removes_the_pairs_others_hold_with_it(nd):
    lake, ids = nd["lake"], _ids(nd["lake"])
    gone = ids["base0.mp4"]  # every copy holds a pair with the base
    before = lake.read("near_duplicates").to_pylist()
    naming = [r for r in before if r["duplicate_of"] == gone and r["media_id"] != gone]
    assert len(naming) >= len(VARIANTS) - 1
    assert forget_duplicates_of(lake, [gone]) == len(naming)
    after = lake.read("near_duplicates").to_pylist()
    assert not [r for r in after if r["duplicate_of"] == gone and r["media_id"] != gone]
    assert len(after) == len(before) - len(naming)
    assert forget_duplicates_of(lake, [gone]) == 0


# ---- pure: fingerprints ----------------------------------------------------------------------

def test_fingerprint_survives_letterbox_resize_and_crop():
    pic = Image.fromarray(shapes_canvas(5)[:180, :320])
    ref = keyframe_print(pic)
    boxed = Image.new("RGB", (320, 240))
    boxed.paste(pic, (0, 30))
    small = pic.resize((160, 90))
    cropped = pic.crop((16, 9, 304, 171))
    other = keyframe_print(Image.fromarray(shapes_canvas(6)[:180, :320]))
    lb = keyframe_print(boxed)
    assert (lb["bar_top"], lb["bar_bottom"]) == (30, 30) and lb["content_height"] == 180

    def dist(a, b):
        return item_distance(Item(0, a["hashes"]), Item(0, b["hashes"]))

    for fp in (lb, keyframe_print(small), keyframe_print(cropped)):
        assert dist(ref, fp) <= MatchParams().strict_bits
    assert dist(ref, other) > MatchParams().loose_bits
    assert not keyframe_print(Image.fromarray(card("black")))["informative"]
    assert keyframe_print(Image.fromarray(card("title")))["informative"]


# ---- pure: alignment on synthetic hash sequences ----------------------------------------------

def _rand_hash(rng):
    return rng.getrandbits(64)


def _seq(rng, n, step=1.0, start=0.0):
    return [Item(start + k * step, [h, h, h]) for h in (_rand_hash(rng) for _ in range(n)) for k in [0]]


def _times(items, step=1.0, start=0.0):
    return [Item(start + k * step, x.hashes, x.informative) for k, x in enumerate(items)]


def _noisy(items, rng, bits=4):
    out = []
    for x in items:
        flip = sum(1 << b for b in rng.sample(range(64), bits))
        out.append(Item(x.t, [h ^ flip for h in x.hashes], x.informative))
    return out


def test_alignment_of_speed_change_trim_and_embedding():
    rng = random.Random(3)
    a = _times(_seq(rng, 10))
    p = MatchParams()
    faster = _noisy(_times(a, step=0.8), rng)  # 1.25x speed
    al = align(a, faster)
    assert judge(al) and len(al.pairs) == 10 and abs(al.speed_ratio - 0.8) < 1e-6
    trimmed = _noisy(_times(a[2:], start=0.0), rng)  # the first 20 % cut off
    al = align(a, trimmed)
    assert judge(al) and al.coverage_b == 1.0 and abs(al.coverage_a - 0.8) < 1e-6 and al.relation == "copy"
    assert abs(al.offset_s - (-2.0)) < 1e-6
    longer = _times(_seq(rng, 6) + _noisy(a, rng) + _seq(rng, 8))  # inside a longer video
    al = align(a, longer)
    assert judge(al) and al.coverage_a == 1.0 and al.coverage_b < 0.5 and al.relation == "contained_in"
    assert abs(al.offset_s - 6.0) < 1e-6
    assert judge(align(longer, a)) and align(longer, a).relation == "contains"
    # Too noisy to match: hashes 20 bits apart are different pictures.
    assert not judge(align(a, _noisy(a, rng, bits=20), params=p))


def test_alignment_needs_order_and_more_than_one_frame():
    rng = random.Random(4)
    a = _times(_seq(rng, 8))
    shuffled = list(a)
    random.Random(1).shuffle(shuffled)
    al = align(a, _times(shuffled))
    assert len(al.pairs) < 8  # the chain keeps only the matches in order
    # Reversed: one keyframe in order at most, never a duplicate.
    assert not judge(align(a, _times(a[::-1])))
    # One shared keyframe (a title card) in front of different content.
    b = _times([a[0]] + _seq(rng, 7))
    al = align(a, b)
    assert len(al.pairs) == 1 and not judge(al)
    # Two shared keyframes (logo card and title card) of eight: too little of either media.
    b = _times(a[:2] + _seq(rng, 6))
    al = align(a, b)
    assert al.evidence == 2 and not judge(al)


def test_low_information_keyframes_never_count():
    rng = random.Random(5)
    a = _times(_seq(rng, 4))
    black = 0
    a_dark = [Item(x.t, [black] * 3, informative=False) for x in a]
    b_dark = [Item(x.t, [black] * 3, informative=False) for x in a]
    assert not judge(align(a_dark, b_dark)) and align(a_dark, b_dark).pairs == []
    # Black keyframes between real ones neither help nor hurt the coverage.
    mixed = _times([a[0], a_dark[0], a[1], a_dark[1], a[2], a[3]])
    al = align(mixed, _times(a))
    assert judge(al) and al.coverage_a == 1.0 and al.coverage_b == 1.0


def test_a_shared_intro_then_different_content_is_contradicted():
    rng = random.Random(7)
    intro = _seq(rng, 2)  # a logo card and a title card
    a = _times(intro + _seq(rng, 1))
    b = _times(intro + _seq(rng, 1))
    al = align(a, b)
    # Two thirds of each aligned, but where the timelines overlap the third keyframes differ.
    assert al.evidence == 2 and al.coverage == 2 / 3
    assert al.contradictions_a == al.contradictions_b == 1 and not judge(al)
    # The intro alone (a clip of A's first seconds) lies inside A: nothing of it contradicts.
    al = align(a, _times(intro))
    assert al.contradiction == 0 and judge(al) and al.relation == "contains"
    # Missed keyframes that are the same picture, only noisier, do not contradict.
    c = _times(_noisy(a[:2], rng) + _noisy(a[2:], rng, bits=14))
    al = align(a, c)
    assert len(al.pairs) == 2 and al.contradiction == 0 and judge(al)


def test_rarity_weights_discount_shared_keyframes():
    rng = random.Random(6)
    a = _times(_seq(rng, 4))
    b = _times(a[:3])  # the first three keyframes of four: passes unweighted
    assert judge(align(a, b))
    # Those keyframes are shared by many other media (a station's cards): they weigh little.
    assert not judge(align(a, b, weights=[0.25, 0.25, 0.25, 1.0]))
    assert hamming(0, (1 << 64) - 1) == 64
    assert np.isclose(align(a, a).coverage, 1.0)


def test_synthetic_copies_precision_recall():
    """Many random sequences and their copies, distractors sharing a prefix: every copy found, no false pair."""
    rng = random.Random(8)
    bases = [_times(_seq(rng, rng.randint(4, 9))) for _ in range(12)]
    prefix = _seq(rng, 2)
    tp = fn = fp = 0
    for n, a in enumerate(bases):
        copies = [_noisy(_times(a, step=0.8), rng), _noisy(_times(a[1:]), rng),
                  _times(_seq(rng, 3) + _noisy(a, rng) + _seq(rng, 2))]
        for c in copies:
            ok = judge(align(a, c))
            tp, fn = tp + ok, fn + (not ok)
        for m, other in enumerate(bases):
            if m != n:
                fp += judge(align(a, other))
        fp += judge(align(_times(prefix + a[:1] + _seq(rng, 5)), _times(prefix + _seq(rng, 5))))
    assert fn == 0 and fp == 0, (tp, fn, fp)
