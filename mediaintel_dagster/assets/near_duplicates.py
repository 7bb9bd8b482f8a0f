"""Near-duplicate stages: keyframe fingerprints -> `keyframe_hashes`; pairs of media showing
the same content -> `near_duplicates`; and ``near_duplicate_clusters`` over the pairs.

Which media a `near_duplicates` row belongs to: the media it was computed for, `media_id`.
When a media is due, it is compared with every media in the lakehouse that has
`keyframe_hashes` rows (any window), and its rows (media_id = it, duplicate_of = the other)
replace its old ones; a rerun with nothing changed writes nothing (done-check) and a forced
one writes the same rows. A media that arrives later meets the earlier ones when *it* is
processed, so its row holds the pair and the earlier media's rows are not rewritten: the
duplicate graph is the union of both directions (``near_duplicate_clusters`` reads it so).
A new location of the same bytes (a `media_sources` row) makes the media due again, which
refreshes its 'exact_bytes' rows.
"""

# No `from __future__ import annotations`: Dagster reads the compute function's annotations.

import hashlib
from collections import defaultdict

import numpy as np
import pyarrow.dataset as pads

from ..media.errors import ErrorCode, MediaError
from ..media.fingerprints import Item, MatchParams, align, from_hex, hex64, judge, keyframe_print
from ..media.image_features import FALLBACK_MODEL_ID
from ..media.keyframes import open_keyframe_pil
from ..resources.lakehouse import utcnow
from .scenes import scenes_by_media
from .stage import Outcome, Stage, StageRun

KEYFRAME_HASHES_CODE_VERSION = "keyframe_hashes@1"
NEAR_DUPLICATES_CODE_VERSION = "near_duplicates@1"
PARAMS = MatchParams()
_HASH_COLUMNS = ("hash", "hash_90", "hash_80")
_CORNER_COLUMNS = ("hash_tl", "hash_tr", "hash_bl", "hash_br")


# ---- keyframe_hashes ------------------------------------------------------------------------

def keyframe_hashes_of(run: StageRun, m: dict) -> Outcome:
    """Fingerprints of one media's keyframes: the representative one of each shot and its extras."""
    mid = m["media_id"]
    scenes = scenes_by_media(run.lake, [mid]).get(mid, [])
    rows, errors, ok = [], [], []
    for s in scenes:
        frames = [(0, s["keyframe_s"], s["keyframe_uri"])]
        frames += [(n, t, u) for n, (t, u) in enumerate(zip(s.get("extra_keyframe_s") or [],
                                                            s.get("extra_keyframe_uris") or []), 1)]
        for n, t, uri in frames:
            try:
                fp = keyframe_print(open_keyframe_pil(uri))
            except MediaError as err:
                errors.append((uri, err))
                continue
            ok.append(uri)
            h, corners = fp.pop("hashes"), fp.pop("corner_hashes")
            rows.append({"media_id": mid, "scene_index": s["scene_index"], "keyframe_n": n, "keyframe_s": t,
                         "keyframe_uri": uri, **dict(zip(_HASH_COLUMNS, (hex64(x) for x in h))),
                         **dict(zip(_CORNER_COLUMNS, (hex64(x) for x in corners))), **fp,
                         "code_version": KEYFRAME_HASHES_CODE_VERSION})
    run.stats["keyframes_hashed"] += len(rows)
    run.stats["keyframes_low_information"] += sum(not r["informative"] for r in rows)
    run.stats["keyframes_with_bars"] += sum(bool(r["bar_top"] or r["bar_bottom"] or r["bar_left"] or r["bar_right"])
                                            for r in rows)
    return Outcome(mid, rows=rows, item_errors=errors, ok_items=ok, media_seconds=m.get("duration_s") or 0.0,
                   note=f"{sum(r['informative'] for r in rows)} informative of {len(rows)} keyframes")


KEYFRAME_HASHES = Stage(
    name="keyframe_hashes", table="keyframe_hashes", code_version=KEYFRAME_HASHES_CODE_VERSION, group="visual",
    description=(
        "One row per keyframe of each video or image (the shot's representative keyframe, keyframe_n 0, and its "
        "extra ones): 64-bit perceptual hashes (pHash, 16 hex digits) of the picture after cutting off black "
        "letterbox/pillarbox bars, at centred crops keeping 100 %, 90 % and 80 % of each side (hash, hash_90, "
        "hash_80; a cropped copy meets its source at a neighbouring crop) and at corner crops keeping 90 % "
        "(hash_tl, hash_tr, hash_bl, hash_br; for copies cropped unevenly), the bars found, and whether the "
        "keyframe carries information (near-black, near-uniform and edgeless keyframes, such as black openings "
        "and fades, are flagged with low_info_reason and never count as duplicate evidence). Read from the "
        "keyframe JPEGs the scenes step wrote; near_duplicates compares these rows across the whole lakehouse. "
        "Delta table `keyframe_hashes`."
    ),
    compute=keyframe_hashes_of, deps=("scenes", "keyframes"), after=("scenes",),
    media_columns=("media_id", "source_uri", "kind", "has_video", "duration_s"),
)
keyframe_hashes = KEYFRAME_HASHES.asset()


# ---- near_duplicates --------------------------------------------------------------------------

class LakePrints:
    """Every media's keyframe fingerprints in the lakehouse, read once per run, with a
    vectorised Hamming search over all of them (numpy popcount; about 50 ms per searched
    keyframe against a million stored ones, see docs/near_duplicates.md)."""

    def __init__(self, lake=None, rows: dict | None = None):
        """From the lake's `keyframe_hashes`, or from ``rows`` (those columns as lists)."""
        if rows is None:
            cols = ["media_id", "scene_index", "keyframe_n", "keyframe_s", "informative", *_HASH_COLUMNS,
                    *_CORNER_COLUMNS]
            rows = lake.read("keyframe_hashes", columns=cols).to_pydict()
        d = rows
        self.media = np.asarray(d["media_id"], dtype=object)
        self.informative = np.asarray([bool(x) for x in d["informative"]], dtype=bool)
        self.hashes = [np.asarray([from_hex(h) for h in d[c]], dtype=np.uint64) for c in _HASH_COLUMNS]
        # Rows written without corner hashes (or handed in without them) are compared centred only.
        self.corners = [np.asarray([from_hex(h) if h else 0 for h in d[c]], dtype=np.uint64)
                        for c in _CORNER_COLUMNS] if all(d.get(c) for c in _CORNER_COLUMNS) else []
        self.rows = d
        self._items: dict[str, list[Item]] = {}
        self._by_media: dict[str, list[int]] = defaultdict(list)
        for n, mid in enumerate(d["media_id"]):
            self._by_media[mid].append(n)
        self.vectors: dict[tuple, np.ndarray] = {}

    def media_ids(self) -> set:
        return set(self._by_media)

    def items(self, media_id: str) -> list[Item]:
        if media_id not in self._items:
            d = self.rows
            idx = sorted(self._by_media.get(media_id, []), key=lambda n: (d["keyframe_s"][n], d["keyframe_n"][n]))
            self._items[media_id] = [
                Item(t=float(d["keyframe_s"][n] or 0.0), hashes=[int(self.hashes[k][n]) for k in range(3)],
                     corners=[int(c[n]) for c in self.corners], informative=bool(d["informative"][n]),
                     vector=self.vectors.get((media_id, d["scene_index"][n])) if d["keyframe_n"][n] == 0 else None,
                     key=(d["scene_index"][n], d["keyframe_n"][n]))
                for n in idx]
        return self._items[media_id]

    def near(self, item: Item, bits: int) -> np.ndarray:
        """Row numbers of informative keyframes within ``bits`` of ``item``: the crops that
        ``fingerprints.item_distance`` compares, over every keyframe of the lake at once."""
        best = None
        q = [np.uint64(h) for h in item.hashes]
        for i in range(3):
            for j in range(max(0, i - 1), min(3, i + 2)):
                d = np.bitwise_count(self.hashes[j] ^ q[i])
                best = d if best is None else np.minimum(best, d)
        for c in self.corners:
            best = np.minimum(best, np.bitwise_count(c ^ q[0]))
        for c in item.corners:
            best = np.minimum(best, np.bitwise_count(self.hashes[0] ^ np.uint64(c)))
        return np.nonzero((best <= bits) & self.informative)[0]

    def load_vectors(self, lake, media_ids) -> None:
        """Scene embeddings of these media: one model per media, a real model before the fallback."""
        ids = sorted(set(media_ids))
        if not ids:
            return
        t = lake.read("embeddings", columns=["media_id", "item_index", "model_id", "vector"],
                      filter=(pads.field("item_kind") == "scene") & pads.field("media_id").isin(ids))
        by_model: dict[str, dict] = defaultdict(dict)
        for r in t.to_pylist():
            by_model[r["media_id"]].setdefault(r["model_id"], {})[r["item_index"]] = r["vector"]
        for mid, models in by_model.items():
            model = sorted(models, key=lambda x: (x == FALLBACK_MODEL_ID, x))[0]
            for idx, vec in models[model].items():
                v = np.asarray(vec, dtype=np.float32)
                n = float(np.linalg.norm(v))
                self.vectors[(mid, idx)] = (v / n if n > 0 else v)
        self._items.clear()


def find_duplicates(prints: LakePrints, media_id: str, params: MatchParams = PARAMS, rarity: bool = True) -> list[dict]:
    """The media of the lake showing the same content as ``media_id``, with the alignment.

    Candidates are the media with any informative keyframe within ``loose_bits`` of one of
    ours. Each is aligned without weights; a candidate that fails is a media that shares
    only some keyframes with us (a logo card, a title-card template, one stock shot), and
    each of our keyframes it matched loses weight (1 / (1 + such media)). The candidates
    that passed are aligned again with those weights and must pass again.
    """
    a = prints.items(media_id)
    if not any(x.informative for x in a):
        return []
    hits: dict[str, set] = defaultdict(set)
    for i, x in enumerate(a):
        if x.informative:
            for n in prints.near(x, params.loose_bits):
                other = prints.media[n]
                if other != media_id:
                    hits[other].add(i)
    if not hits:
        return []
    lonely = np.zeros(len(a))
    passed = []
    for other in sorted(hits):
        al = align(a, prints.items(other), params=params)
        if judge(al, params):
            passed.append(other)
        else:
            for i in al.matched_a:
                lonely[i] += 1
    if not rarity:
        return [{"duplicate_of": o, "alignment": align(a, prints.items(o), params=params)} for o in passed]
    weights = 1.0 / (1.0 + lonely)
    out = []
    for other in passed:
        al = align(a, prints.items(other), weights=weights, params=params)
        if judge(al, params):
            out.append({"duplicate_of": other, "alignment": al})
    return out


def near_duplicates_of(run: StageRun, todo: list[dict]):
    """Each due media against every media in the lakehouse (one read of `keyframe_hashes`)."""
    lake = run.lake
    prints = LakePrints(lake)
    ids = [m["media_id"] for m in todo]
    # Candidates first, from hashes alone, so embeddings are read for those media only.
    want = set(ids)
    for mid in ids:
        for x in prints.items(mid):
            if x.informative:
                want.update(prints.media[n] for n in prints.near(x, PARAMS.loose_bits))
    prints.load_vectors(lake, want)
    sources = defaultdict(list)
    for r in lake.read_keys("media_sources", "media_id", ids, columns=["media_id", "source_uri", "seen_at"]).to_pylist():
        sources[r["media_id"]].append(r)
    now = utcnow()
    run.stats["lake_keyframes"] = len(prints.media)
    run.stats["lake_media_with_keyframes"] = len(prints.media_ids())
    found: dict[str, Outcome] = {}
    for m in todo:
        mid = m["media_id"]
        try:
            rows = []
            first = m.get("source_uri")
            for s in sorted(sources.get(mid, []), key=lambda r: (r["seen_at"], r["source_uri"])):
                if s["source_uri"] != first:
                    rows.append({"media_id": mid, "duplicate_of": mid, "method": "exact_bytes", "score": 1.0,
                                 "relation": "same_bytes", "source_uri": first,
                                 "duplicate_source_uri": s["source_uri"]})
            run.stats["exact_copies"] += len(rows)
            for dup in find_duplicates(prints, mid):
                al = dup["alignment"]
                rows.append({"media_id": mid, "duplicate_of": dup["duplicate_of"], "method": "keyframe_sequence",
                             "score": round(al.coverage, 4), "relation": al.relation,
                             "matched_keyframes": len(al.pairs), "evidence": round(al.evidence, 4),
                             "coverage": round(al.coverage_a, 4), "duplicate_coverage": round(al.coverage_b, 4),
                             "mean_hash_distance": al.mean_distance, "contradiction": round(al.contradiction, 4),
                             "speed_ratio": al.speed_ratio,
                             "offset_s": al.offset_s, "source_uri": first})
                run.stats["near_duplicate_pairs"] += 1
            for r in rows:
                r.update(code_version=NEAR_DUPLICATES_CODE_VERSION, computed_at=now)
        except Exception as exc:  # noqa: BLE001 - one media's failure quarantines it, not the run
            found[mid] = Outcome(mid, error=MediaError(ErrorCode.DECODE_ERROR, f"{type(exc).__name__}: {exc}"))
            continue
        found[mid] = Outcome(mid, rows=rows, media_seconds=m.get("duration_s") or 0.0,
                             note=f"{len(rows)} duplicate row(s)")
    # Where each duplicate is, from one read of `media`: a row says which file to look at.
    others = sorted({r["duplicate_of"] for o in found.values() for r in o.rows if r["method"] == "keyframe_sequence"})
    where = {r["media_id"]: r["source_uri"]
             for r in lake.read_keys("media", "media_id", others, columns=["media_id", "source_uri"]).to_pylist()}
    for o in found.values():
        for r in o.rows:
            if r["method"] == "keyframe_sequence":
                r["duplicate_source_uri"] = where.get(r["duplicate_of"])
        yield o


def summarize(run: StageRun, rows) -> dict:
    if not rows.num_rows:
        return {}
    methods = rows.column("method").to_pylist()
    return {"exact_bytes_rows": methods.count("exact_bytes"), "keyframe_sequence_rows": methods.count("keyframe_sequence")}


NEAR_DUPLICATES = Stage(
    name="near_duplicates", table="near_duplicates", code_version=NEAR_DUPLICATES_CODE_VERSION, group="visual",
    description=(
        "Pairs of media showing the same content, each due media compared with every media in the lakehouse. "
        "'exact_bytes': the same bytes found at another location (media_id = duplicate_of, one row per further "
        "`media_sources` location, duplicate_source_uri). 'keyframe_sequence': a re-encoded, resized, cropped, "
        "letterboxed, trimmed or sped-up copy, or a copy inside a longer video, found by aligning the two media's "
        "keyframe hashes (and, where both have them, scene embeddings) in order: enough distinct informative "
        "keyframes must align, at a steady speed, covering at least half of one of the two media; keyframes "
        "that many otherwise unrelated media share (logo cards, title templates) count for little, and black or "
        "plain ones not at all. Columns: score (aligned share of the more covered media), relation ('copy', "
        "'contained_in', 'contains'), matched_keyframes, evidence, coverage, duplicate_coverage, speed_ratio and "
        "offset_s (t(duplicate_of) = speed_ratio * t(media_id) + offset_s). A row belongs to media_id (the media "
        "being processed); the other direction is the other media's row. Delta table `near_duplicates`."
    ),
    compute=near_duplicates_of, batch=True, deps=("keyframe_hashes", "scene_embeddings", "media_sources"),
    after=("keyframe_hashes", "scene_embeddings", "media_sources"),
    media_columns=("media_id", "source_uri", "kind", "has_video", "duration_s"), summarize=summarize,
)
near_duplicates = NEAR_DUPLICATES.asset()


def forget_duplicates_of(lake, media_ids) -> int:
    """Remove the pairs other media hold with these media (a takedown: ``lake.delete_media``
    removes a media's own rows, keyed by media_id, but not the rows of the media it was
    paired with, which name it and its location). Those media's other rows stay; returns
    the rows removed."""
    ids = sorted(set(media_ids))
    if not ids or lake.delta_table("near_duplicates") is None:
        return 0
    naming = lake.read("near_duplicates", columns=["media_id"], filter=pads.field("duplicate_of").isin(ids))
    owners = sorted(set(naming.column("media_id").to_pylist()) - set(ids))
    if not owners:
        return 0
    rows = lake.read("near_duplicates", filter=pads.field("media_id").isin(owners))
    keep = rows.filter(~pads.field("duplicate_of").isin(ids)) if rows.num_rows else rows
    lake.replace("near_duplicates", keep, keys=[(o,) for o in owners], writer="near_duplicates")
    return rows.num_rows - keep.num_rows


# ---- clusters ------------------------------------------------------------------------------------

def near_duplicate_clusters(lake) -> list[dict]:
    """Groups of media showing the same content, from `near_duplicates` (both directions of
    every pair), with a canonical media each: the one with the biggest picture (inside any
    black bars), then the longest, then the earliest ingested, then the smallest media_id.
    A media held at several locations with no other copy is a cluster of one media.

    Each cluster: cluster_id (a digest of its members), canonical_media_id, size and
    members (media_id, source_uri, sources, duration_s, picture width/height, and method,
    score and relation of the member's strongest pair in the cluster, or 'canonical').
    Pairs naming a media no longer in `media` are left out.
    """
    rows = lake.read("near_duplicates").to_pylist()
    media = {r["media_id"]: r for r in lake.read(
        "media", columns=["media_id", "source_uri", "duration_s", "display_width", "display_height", "width",
                          "height", "ingested_at"]).to_pylist()}
    parent: dict[str, str] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges: dict[str, list] = defaultdict(list)
    exact: dict[str, set] = defaultdict(set)
    for r in rows:
        a, b = r["media_id"], r["duplicate_of"]
        if a not in media or b not in media:
            continue
        if r["method"] == "exact_bytes" or a == b:
            exact[a].add(r["duplicate_source_uri"])
            find(a)
            continue
        parent[find(a)] = find(b)
        edges[a].append(r)
        edges[b].append({**r, "media_id": b, "duplicate_of": a})
    picture = {}
    kh = lake.read("keyframe_hashes", columns=["media_id", "content_width", "content_height"],
                   filter=pads.field("media_id").isin(sorted(parent))) if parent else None
    if kh is not None:
        areas = defaultdict(list)
        for r in kh.to_pylist():
            areas[r["media_id"]].append((r["content_width"] or 0) * (r["content_height"] or 0))
        picture = {mid: float(np.median(v)) for mid, v in areas.items()}
    groups: dict[str, list] = defaultdict(list)
    for mid in parent:
        groups[find(mid)].append(mid)
    out = []
    for members in groups.values():
        if len(members) < 2 and not exact.get(members[0]):
            continue

        def rank(mid):
            m = media[mid]
            area = picture.get(mid) or (m.get("display_width") or m.get("width") or 0) * (
                m.get("display_height") or m.get("height") or 0)
            at = m.get("ingested_at")
            return (-area, -(m.get("duration_s") or 0.0), at.timestamp() if at else float("inf"), mid)

        members.sort(key=rank)
        canonical = members[0]
        listed = []
        for mid in members:
            m = media[mid]
            best = max(edges.get(mid, []), key=lambda r: (r["duplicate_of"] == canonical, r["score"] or 0.0),
                       default=None)
            listed.append({
                "media_id": mid, "source_uri": m["source_uri"], "sources": [m["source_uri"], *sorted(exact.get(mid, ()))],
                "duration_s": m.get("duration_s"), "picture_area": picture.get(mid),
                "method": "canonical" if mid == canonical else best["method"],
                "score": 1.0 if mid == canonical else best["score"],
                "relation": None if mid == canonical else best["relation"],
                "paired_with": None if mid == canonical else best["duplicate_of"],
            })
        cid = hashlib.sha256("\x00".join(sorted(members)).encode()).hexdigest()[:16]
        out.append({"cluster_id": cid, "canonical_media_id": canonical, "size": len(members), "members": listed})
    out.sort(key=lambda c: (-c["size"], c["canonical_media_id"]))
    return out


__all__ = ["KEYFRAME_HASHES", "NEAR_DUPLICATES", "LakePrints", "find_duplicates", "forget_duplicates_of",
           "keyframe_hashes", "near_duplicate_clusters", "near_duplicates"]
