"""What "good rows" means for each lakehouse table, as data plus a few rule functions.

A ``TableSpec`` says, for one contract table: which columns identify a row (non-null and
unique together), which must be non-null, which value ranges and value sets hold, and
which table-specific rules apply (scenes tile the media's duration, segments are in time
order, embedding dimension and norm per model_id, ...). Everything here works on Arrow
tables and plain values, so it is unit-tested without Dagster; ``checks.factory`` turns a
spec into Dagster asset checks and evaluates the simple expectations with Great
Expectations (``checks.ge``) and the rules below with Arrow/numpy.

Rules take the rows to check and a ``RuleContext`` (the media rows of the window, for
durations; the tolerances and allowed sets from configuration) and return ``Finding``s,
an empty list when the rows are fine.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import config

# Whisper's language codes (faster_whisper.tokenizer._LANGUAGE_CODES, copied so that a
# check never imports the ASR stack).
WHISPER_LANGUAGES = frozenset(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he "
    "hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne "
    "nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk "
    "ur uz vi yi yo zh yue".split()
)
MEDIA_KINDS = ("video", "audio", "image")
ITEM_KINDS = ("scene", "segment", "ocr")
# index_entries.backend: the vector backends (resources/lance_index.py, pinecone_index.py) and
# the keyword index's (copied, like the languages, so that a check never imports a backend).
KEYWORD_BACKEND = "lancedb-fts"
INDEX_BACKENDS = ("lancedb", "pinecone", KEYWORD_BACKEND)
LOW_INFO_REASONS = ("near_black", "near_uniform", "low_edges")  # media/fingerprints.py
DUPLICATE_METHODS = ("exact_bytes", "keyframe_sequence")
DUPLICATE_RELATIONS = ("same_bytes", "copy", "contained_in", "contains")
EXAMPLES = 5  # failing values shown per finding

# The real models' vector lengths, all unit norm (the stages normalise their vectors):
# model_id -> dim. A key matches the model_id itself or the model_id with any "@<tag>"
# (package version, pretrained tag, checkpoint hash), so `open_clip/ViT-B-32@laion2b_s34b_b79k`
# and a local `open_clip/ViT-B-32@sha256:...` are both 512, but `ViT-B-32-quickgelu` is not
# held to it. MEDIAINTEL_EMBEDDING_DIMS / MEDIAINTEL_UNIT_NORM_MODELS add to and override these.
KNOWN_EMBEDDING_DIMS: dict[str, int] = {
    "sentence-transformers/all-MiniLM-L6-v2": 384,  # text_embeddings (resources/text_embedder.py)
    "open_clip/ViT-B-32": 512,  # scene_embeddings with CLIP weights (resources/clip.py)
    "mediaintel/image-features-v1": 512,  # scene_embeddings' declared fallback without them
}


def _known(model_id: str, table: dict) -> str | None:
    """The key of ``table`` naming ``model_id`` (itself, or it with an "@<tag>")."""
    if model_id in table:
        return model_id
    base = model_id.split("@", 1)[0]
    return base if base in table else None


@dataclass(frozen=True)
class Finding:
    """One broken rule: which, how many rows, a few examples for the UI."""

    rule: str
    message: str
    count: int
    examples: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"rule": self.rule, "message": self.message, "count": self.count, "examples": self.examples}


@dataclass
class RuleContext:
    """What rules need besides the rows: media durations and configured limits."""

    durations: dict[str, float | None] = field(default_factory=dict)  # media_id -> duration_s
    fps: dict[str, float | None] = field(default_factory=dict)
    # media_id -> (first, last) second of the picture, when it does not span the whole media
    # (a sound track that starts earlier or ends later than the video)
    video_spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    media_ids: set[str] | None = None  # media known to `media` (referential rule)
    time_tolerance_s: float = 0.25
    languages: frozenset[str] = WHISPER_LANGUAGES
    embedding_dims: dict[str, int] = field(default_factory=dict)  # configured: model_id (or prefix) -> dim
    unit_norm_models: tuple[str, ...] = ()  # configured model_id prefixes whose vectors must have norm 1
    known_dims: dict[str, int] = field(default_factory=lambda: dict(KNOWN_EMBEDDING_DIMS))  # unit norm too
    reference_dims: dict[str, int] = field(default_factory=dict)  # model_id -> the length the table holds
    norm_tolerance: float = 0.01

    @classmethod
    def from_env(cls, media_rows: list[dict] | None = None, **overrides) -> RuleContext:
        """Limits from the environment (docs/trust.md, "Configuration"), durations from media rows."""
        env = {k: config.get(k) for k in ("MEDIAINTEL_CHECK_TIME_TOLERANCE_S", "MEDIAINTEL_ALLOWED_LANGUAGES",
                                         "MEDIAINTEL_EMBEDDING_DIMS", "MEDIAINTEL_UNIT_NORM_MODELS")}
        kw: dict = {"time_tolerance_s": float(env["MEDIAINTEL_CHECK_TIME_TOLERANCE_S"])}
        if env.get("MEDIAINTEL_ALLOWED_LANGUAGES"):
            kw["languages"] = frozenset(x.strip() for x in env["MEDIAINTEL_ALLOWED_LANGUAGES"].split(",") if x.strip())
        if env.get("MEDIAINTEL_EMBEDDING_DIMS"):
            kw["embedding_dims"] = {
                k.strip(): int(v) for k, v in (x.rsplit("=", 1) for x in env["MEDIAINTEL_EMBEDDING_DIMS"].split(",") if "=" in x)
            }
        if env.get("MEDIAINTEL_UNIT_NORM_MODELS"):
            kw["unit_norm_models"] = tuple(x.strip() for x in env["MEDIAINTEL_UNIT_NORM_MODELS"].split(",") if x.strip())
        kw.update(overrides)
        ctx = cls(**kw)
        for r in media_rows or []:
            ctx.durations[r["media_id"]] = r.get("duration_s")
            ctx.fps[r["media_id"]] = r.get("fps")
            if r.get("video_end_s") is not None:
                ctx.video_spans[r["media_id"]] = (r.get("video_start_s") or 0.0, r["video_end_s"])
        if media_rows is not None and ctx.media_ids is None:
            ctx.media_ids = {r["media_id"] for r in media_rows}
        return ctx

    def tolerance(self, media_id: str) -> float:
        """Slack for times at the media's end: the configured seconds, or 3 frames if longer
        (decoders and the container's duration disagree by a frame or an audio packet)."""
        fps = self.fps.get(media_id) or 0.0
        return max(self.time_tolerance_s, 3.0 / fps if fps > 0 else 0.0)

    def expected_dim(self, model_id: str) -> int | None:
        """Configured (exact, then prefix), else a known model's, else what the table holds."""
        if model_id in self.embedding_dims:
            return self.embedding_dims[model_id]
        for prefix, dim in self.embedding_dims.items():
            if model_id.startswith(prefix):
                return dim
        known = _known(model_id, self.known_dims)
        if known is not None:
            return self.known_dims[known]
        return self.reference_dims.get(model_id)

    def unit_norm(self, model_id: str) -> bool:
        return (any(model_id.startswith(p) for p in self.unit_norm_models)
                or _known(model_id, self.known_dims) is not None)


Rule = Callable[[pa.Table, RuleContext], list[Finding]]


@dataclass(frozen=True)
class TableSpec:
    """Declarative checks of one contract table (see ``SPECS``)."""

    table: str
    keys: tuple[str, ...]  # non-null, and unique together
    not_null: tuple[str, ...] = ()
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # inclusive
    value_sets: dict[str, tuple] = field(default_factory=dict)  # static allowed values
    rules: tuple[Rule, ...] = ()
    blocking: bool = True  # bad rows must not flow on to the stages downstream
    description: str = ""


# ---- the simple expectations, evaluated with Arrow (GE evaluates the same in checks.ge) --

def expectation_list(spec: TableSpec, ctx: RuleContext | None = None) -> list[dict]:
    """The spec's simple expectations as plain dicts (one list, two engines: GE and Arrow)."""
    out: list[dict] = []
    for col in dict.fromkeys(spec.keys + spec.not_null):
        out.append({"kind": "not_null", "column": col})
    if len(spec.keys) == 1:
        out.append({"kind": "unique", "column": spec.keys[0]})
    elif spec.keys:
        out.append({"kind": "compound_unique", "columns": list(spec.keys)})
    for col, (lo, hi) in spec.ranges.items():
        out.append({"kind": "between", "column": col, "min": lo, "max": hi})
    sets = dict(spec.value_sets)
    if spec.table == "transcript_segments":
        sets["language"] = tuple(sorted((ctx or RuleContext()).languages))
    for col, values in sets.items():
        out.append({"kind": "in_set", "column": col, "values": list(values)})
    return out


def _examples(values) -> list:
    out = []
    for v in values[:EXAMPLES]:
        out.append(None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    return out


def evaluate_expectations_arrow(rows: pa.Table, expectations: list[dict]) -> list[Finding]:
    """The simple expectations on Arrow: the engine unit tests and GE-less runs use."""
    findings = []
    for e in expectations:
        kind = e["kind"]
        if kind == "compound_unique":
            cols = e["columns"]
            if rows.num_rows == 0 or any(c not in rows.column_names for c in cols):
                continue
            keys = list(zip(*(rows.column(c).to_pylist() for c in cols)))
            dup = [k for k, n in Counter(keys).items() if n > 1]
            if dup:
                n = sum(Counter(keys)[k] for k in dup)
                findings.append(Finding(f"unique:{'+'.join(cols)}", f"{n} rows share a key ({', '.join(cols)})",
                                        n, [list(k) for k in dup[:EXAMPLES]]))
            continue
        col = e["column"]
        if col not in rows.column_names:
            findings.append(Finding(f"{kind}:{col}", f"column {col} is missing", rows.num_rows))
            continue
        arr = rows.column(col)
        if kind == "not_null":
            n = arr.null_count
            if n:
                findings.append(Finding(f"not_null:{col}", f"{n} rows have a null {col}", n))
        elif kind == "unique":
            vals = [v for v in arr.to_pylist() if v is not None]
            counts = Counter(vals)
            dup = [v for v, c in counts.items() if c > 1]
            if dup:
                n = sum(counts[v] for v in dup)
                findings.append(Finding(f"unique:{col}", f"{n} rows share a {col}", n, _examples(dup)))
        elif kind == "between":
            lo, hi = e.get("min"), e.get("max")
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            vals = pc.cast(arr, pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(vals)  # NaN or infinite is never in range
                if lo is not None:
                    bad |= vals < lo
                if hi is not None:
                    bad |= vals > hi
            bad &= valid  # nulls are the not_null expectation's business
            n = int(bad.sum())
            if n:
                findings.append(Finding(f"between:{col}", f"{n} rows have {col} outside [{lo}, {hi}]", n,
                                        _examples(vals[bad].tolist())))
        elif kind == "in_set":
            allowed = set(e["values"])
            bad = [v for v in arr.to_pylist() if v is not None and v not in allowed]
            if bad:
                findings.append(Finding(f"in_set:{col}", f"{len(bad)} rows have a {col} outside the allowed set",
                                        len(bad), _examples(sorted(set(bad)))))
    return findings


# ---- table rules -------------------------------------------------------------------

def _by_media(rows: pa.Table, order: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows.to_pylist():
        if r.get("media_id") is not None:
            out[r["media_id"]].append(r)
    for mid in out:
        out[mid].sort(key=lambda r: (r.get(order) is None, r.get(order)))
    return out


def rule_media_id_is_sha_prefix(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """media_id is the first 16 hex digits of sha256 (same bytes, same media)."""
    bad = [r["media_id"] for r in rows.select(["media_id", "sha256"]).to_pylist()
           if r["media_id"] and r["sha256"] and r["sha256"][:16] != r["media_id"]]
    return [Finding("media_id_is_sha256_prefix", f"{len(bad)} media_id(s) are not their sha256's first 16 digits",
                    len(bad), bad[:EXAMPLES])] if bad else []


def rule_media_streams(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """A video has width, height and fps; audio and video have a duration."""
    bad = []
    for r in rows.to_pylist():
        if r.get("kind") == "video" and not (r.get("width") and r.get("height") and r.get("fps")):
            bad.append(r["media_id"])
        elif r.get("kind") in ("video", "audio") and not (r.get("duration_s") or 0) > 0:
            bad.append(r["media_id"])
    return [Finding("streams_consistent", f"{len(bad)} media lack the facts of their kind", len(bad),
                    bad[:EXAMPLES])] if bad else []


def references_media(table: str) -> Rule:
    """A rule: every row of ``table`` belongs to a media row (no orphans that search or a
    join would serve for content the lake no longer has)."""

    def rule(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
        if ctx.media_ids is None:
            return []
        bad = sorted({m for m in rows.column("media_id").to_pylist() if m is not None and m not in ctx.media_ids})
        return [Finding("media_exists", f"{len(bad)} media_id(s) in {table} have no media row", len(bad),
                        bad[:EXAMPLES])] if bad else []

    rule.__name__ = f"rule_{table}_reference_media"
    rule.__doc__ = f"Every {table} row points at a media row."
    return rule


# media_sources rows point at a media row (content probed or being probed).
rule_sources_reference_media = references_media("media_sources")


def _interval_rules(rows: pa.Table, ctx: RuleContext, index: str, what: str) -> list[Finding]:
    """start <= end, and both inside [0, the media's duration (+ tolerance)]."""
    inverted, past_end, unknown = [], [], []
    for mid, items in _by_media(rows, index).items():
        dur = ctx.durations.get(mid)
        if mid not in ctx.durations and ctx.media_ids is not None:
            unknown.append(mid)
        for r in items:
            s, e = r.get("start_s"), r.get("end_s")
            if s is None or e is None:
                continue
            if s > e:
                inverted.append([mid, r.get(index), s, e])
            if dur is not None and dur > 0 and e > dur + ctx.tolerance(mid):
                past_end.append([mid, r.get(index), e, dur])
    out = []
    if inverted:
        out.append(Finding("start_before_end", f"{len(inverted)} {what} end before they start", len(inverted),
                           inverted[:EXAMPLES]))
    if past_end:
        out.append(Finding("inside_media", f"{len(past_end)} {what} end after their media ends", len(past_end),
                           past_end[:EXAMPLES]))
    if unknown:
        out.append(Finding("media_exists", f"{len(unknown)} media_id(s) have no media row", len(unknown),
                           unknown[:EXAMPLES]))
    return out


def rule_scene_intervals(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    out = _interval_rules(rows, ctx, "scene_index", "scenes")
    bad = [[r["media_id"], r["scene_index"], r["keyframe_s"]] for r in rows.to_pylist()
           if None not in (r.get("keyframe_s"), r.get("start_s"), r.get("end_s"))
           and not (r["start_s"] - 1e-6 <= r["keyframe_s"] <= r["end_s"] + 1e-6)]
    if bad:
        out.append(Finding("keyframe_in_scene", f"{len(bad)} keyframes lie outside their scene", len(bad),
                           bad[:EXAMPLES]))
    return out


def rule_scenes_cover_media(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """A media's scenes, in scene_index order, tile [0, duration]: the first starts at 0, each
    starts where the previous ended (no overlap, no gap beyond the tolerance), the last ends
    at the duration. Where the picture spans less than the media (``video_start_s`` and
    ``video_end_s``: sound that starts earlier or ends later), the scenes tile that span.
    Media without a positive duration (images) are not checked here."""
    overlaps, gaps, ends = [], [], []
    for mid, items in _by_media(rows, "scene_index").items():
        dur = ctx.durations.get(mid)
        tol = ctx.tolerance(mid)
        items = [r for r in items if r.get("start_s") is not None and r.get("end_s") is not None]
        if not items:
            continue
        for prev, cur in zip(items, items[1:]):
            if cur["start_s"] < prev["end_s"] - 1e-6:
                overlaps.append([mid, prev["scene_index"], cur["scene_index"], prev["end_s"], cur["start_s"]])
            elif cur["start_s"] - prev["end_s"] > tol:
                gaps.append([mid, prev["scene_index"], cur["scene_index"], prev["end_s"], cur["start_s"]])
        if dur is not None and dur > 0:
            first, last = ctx.video_spans.get(mid, (0.0, dur))  # scenes tile the picture's span
            if abs(items[0]["start_s"] - first) > tol or abs(items[-1]["end_s"] - last) > tol:
                ends.append([mid, items[0]["start_s"], items[-1]["end_s"], last])
    out = []
    if overlaps:
        out.append(Finding("no_overlap", f"{len(overlaps)} scene pairs overlap", len(overlaps), overlaps[:EXAMPLES]))
    if gaps:
        out.append(Finding("no_gap", f"{len(gaps)} gaps between consecutive scenes", len(gaps), gaps[:EXAMPLES]))
    if ends:
        out.append(Finding("covers_duration", f"{len(ends)} media whose scenes do not span 0..duration", len(ends),
                           ends[:EXAMPLES]))
    return out


def rule_segment_intervals(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    return _interval_rules(rows, ctx, "segment_index", "segments")


def rule_segments_in_time_order(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """In segment_index order, segments start no earlier than the previous one started and
    do not overlap it (Whisper's segments follow each other)."""
    bad = []
    for mid, items in _by_media(rows, "segment_index").items():
        items = [r for r in items if r.get("start_s") is not None and r.get("end_s") is not None]
        for prev, cur in zip(items, items[1:]):
            if cur["start_s"] < prev["start_s"] or cur["start_s"] < prev["end_s"] - ctx.time_tolerance_s:
                bad.append([mid, prev["segment_index"], cur["segment_index"], prev["start_s"], cur["start_s"]])
    return [Finding("time_order", f"{len(bad)} segments start before their predecessor ends", len(bad),
                    bad[:EXAMPLES])] if bad else []


def rule_ocr_text_not_blank(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    bad = [[r["media_id"], r["scene_index"]] for r in rows.select(["media_id", "scene_index", "text"]).to_pylist()
           if r["text"] is not None and not r["text"].strip()]
    return [Finding("text_not_blank", f"{len(bad)} OCR lines are blank", len(bad), bad[:EXAMPLES])] if bad else []


def rule_entry_ids(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """entry_id is ``media_id:item_kind:item_index:model_id`` (resources/vector_index.py): the id
    the backend holds is the id the lake names, so a rerun overwrites and a removal finds it."""
    bad = []
    for r in rows.select(["entry_id", "media_id", "item_kind", "item_index", "model_id"]).to_pylist():
        if None in r.values():
            continue  # the not_null expectations say so
        if r["entry_id"] != f"{r['media_id']}:{r['item_kind']}:{r['item_index']}:{r['model_id']}":
            bad.append(r["entry_id"])
    return [Finding("entry_id_deterministic", f"{len(bad)} entry_id(s) are not media_id:item_kind:item_index:model_id",
                    len(bad), bad[:EXAMPLES])] if bad else []


def rule_entry_dims(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """A vector entry has its vector's length, one per model; a keyword entry has none."""
    bad = []
    dims: dict[tuple, set] = defaultdict(set)
    for r in rows.select(["entry_id", "backend", "model_id", "dim"]).to_pylist():
        keyword = r["backend"] == KEYWORD_BACKEND
        if keyword != (r["dim"] is None) or (r["dim"] is not None and r["dim"] < 1):
            bad.append([r["entry_id"], r["backend"], r["dim"]])
        elif r["dim"] is not None:
            dims[(r["backend"], r["model_id"])].add(r["dim"])
    mixed = [[b, m, sorted(d)] for (b, m), d in dims.items() if len(d) > 1]
    out = []
    if bad:
        out.append(Finding("dim_matches_backend", f"{len(bad)} entries have a dim their backend does not hold "
                           "(vectors: >= 1; keyword: null)", len(bad), bad[:EXAMPLES]))
    if mixed:
        out.append(Finding("dim_per_model", f"{len(mixed)} models are indexed at several dims", len(mixed),
                           mixed[:EXAMPLES]))
    return out


HASH_COLUMNS = ("hash", "hash_90", "hash_80", "hash_tl", "hash_tr", "hash_bl", "hash_br")


def rule_hashes_are_64_bit(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """Every fingerprint is 16 lower-case hex digits (a 64-bit pHash; media/fingerprints.py)."""
    hexdigits = set("0123456789abcdef")
    bad = []
    cols = [c for c in HASH_COLUMNS if c in rows.column_names]
    for r in rows.select(["media_id", "scene_index", "keyframe_n", *cols]).to_pylist():
        for c in cols:
            v = r[c]
            if v is not None and (len(v) != 16 or not set(v) <= hexdigits):
                bad.append([r["media_id"], r["scene_index"], r["keyframe_n"], c, v])
    return [Finding("hash_64_bit", f"{len(bad)} hashes are not 16 hex digits", len(bad), bad[:EXAMPLES])] if bad else []


def rule_low_info_has_reason(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """A keyframe that is no evidence says why, and only such a keyframe has a reason."""
    bad = [[r["media_id"], r["scene_index"], r["keyframe_n"], r["informative"], r["low_info_reason"]]
           for r in rows.select(["media_id", "scene_index", "keyframe_n", "informative", "low_info_reason"]).to_pylist()
           if r["informative"] is not None and r["informative"] == (r["low_info_reason"] is not None)]
    return [Finding("low_info_reason", f"{len(bad)} keyframes' informative flag and reason disagree", len(bad),
                    bad[:EXAMPLES])] if bad else []


def rule_duplicate_pairs(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """An exact_bytes row is one content at another location (media_id == duplicate_of, score 1);
    a keyframe_sequence row pairs two different media."""
    bad = []
    for r in rows.select(["media_id", "duplicate_of", "method", "score"]).to_pylist():
        if r["method"] == "exact_bytes" and (r["media_id"] != r["duplicate_of"] or r["score"] != 1.0):
            bad.append([r["media_id"], r["duplicate_of"], r["method"], r["score"]])
        elif r["method"] == "keyframe_sequence" and r["media_id"] == r["duplicate_of"]:
            bad.append([r["media_id"], r["duplicate_of"], r["method"], r["score"]])
    return [Finding("pair_consistent", f"{len(bad)} duplicate rows contradict their method", len(bad),
                    bad[:EXAMPLES])] if bad else []


def vector_norms(rows: pa.Table) -> dict[str, np.ndarray]:
    """model_id -> the L2 norms of its vectors (rows whose vectors share the model's usual length)."""
    out = {}
    for model_id, vecs in _vectors_by_model(rows).items():
        lengths = Counter(len(v) for v in vecs)
        dim = lengths.most_common(1)[0][0]
        mat = np.array([v for v in vecs if len(v) == dim], dtype=np.float64)
        out[model_id] = np.linalg.norm(mat, axis=1) if len(mat) else np.array([])
    return out


def _vectors_by_model(rows: pa.Table) -> dict[str, list[list[float]]]:
    out: dict[str, list] = defaultdict(list)
    for m, v in zip(rows.column("model_id").to_pylist(), rows.column("vector").to_pylist()):
        if m is not None and v is not None:
            out[m].append(v)
    return out


def rule_embedding_dimension(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """Per model_id every vector has one length: the configured one, else the known model's
    (``KNOWN_EMBEDDING_DIMS``), else the length the table already holds for that model
    (``reference_dims``, filled by the check), else the length most of these rows have. A
    null or empty vector is a failure too."""
    bad = []
    empty = sum(1 for v in rows.column("vector").to_pylist() if not v)
    for model_id, vecs in _vectors_by_model(rows).items():
        lengths = Counter(len(v) for v in vecs)
        expected = ctx.expected_dim(model_id) or lengths.most_common(1)[0][0]
        wrong = {n: c for n, c in lengths.items() if n != expected}
        if wrong:
            bad.append({"model_id": model_id, "expected": expected, "found": wrong})
    out = []
    if bad:
        n = sum(sum(b["found"].values()) for b in bad)
        out.append(Finding("dimension_per_model", f"{n} vectors have the wrong dimension for their model_id", n, bad[:EXAMPLES]))
    if empty:
        out.append(Finding("vector_present", f"{empty} rows have a null or empty vector", empty))
    return out


def rule_embedding_norm(rows: pa.Table, ctx: RuleContext) -> list[Finding]:
    """Vectors are finite and non-zero; known models and those named in ``unit_norm_models``
    have norm 1."""
    bad = []
    for model_id, vecs in _vectors_by_model(rows).items():
        for i, v in enumerate(vecs):
            arr = np.asarray(v, dtype=np.float64)
            norm = float(np.linalg.norm(arr)) if np.all(np.isfinite(arr)) else float("nan")
            unit = ctx.unit_norm(model_id)
            if not math.isfinite(norm) or norm < 1e-6 or (unit and abs(norm - 1.0) > ctx.norm_tolerance):
                bad.append([model_id, i, None if math.isnan(norm) else round(norm, 6)])
    return [Finding("norm_per_model", f"{len(bad)} vectors are not finite, zero, or off unit norm", len(bad),
                    bad[:EXAMPLES])] if bad else []


SPECS: dict[str, TableSpec] = {
    "media": TableSpec(
        "media", keys=("media_id",), not_null=("sha256", "source_uri", "size_bytes", "kind", "code_version"),
        ranges={"size_bytes": (1, None), "duration_s": (0.0, None), "width": (1, None), "height": (1, None),
                "fps": (0.0, 1000.0), "sample_rate": (1, None), "channels": (1, None)},
        value_sets={"kind": MEDIA_KINDS},
        rules=(rule_media_id_is_sha_prefix, rule_media_streams),
        description="one row per media_id; media_id = sha256[:16]; sizes, durations, dimensions in range",
    ),
    "media_sources": TableSpec(
        "media_sources", keys=("source_uri",), not_null=("media_id", "seen_at", "arrival_partition"),
        ranges={"size_bytes": (1, None)},
        rules=(rule_sources_reference_media,),
        description="one row per location; every location points at a media row",
    ),
    "scenes": TableSpec(
        "scenes", keys=("media_id", "scene_index"), not_null=("start_s", "end_s", "keyframe_s"),
        ranges={"scene_index": (0, None), "start_s": (0.0, None), "end_s": (0.0, None), "keyframe_s": (0.0, None)},
        rules=(rule_scene_intervals, rule_scenes_cover_media),
        description="scenes tile each media's duration without overlap or gap; keyframes inside their scene",
    ),
    "transcript_segments": TableSpec(
        "transcript_segments", keys=("media_id", "segment_index"),
        not_null=("start_s", "end_s", "text", "language", "model_id"),
        ranges={"segment_index": (0, None), "start_s": (0.0, None), "end_s": (0.0, None), "avg_logprob": (None, 0.0)},
        rules=(rule_segment_intervals, rule_segments_in_time_order),
        description="segments in time order inside the media; avg_logprob <= 0; language in the allowed set",
    ),
    "ocr_text": TableSpec(
        "ocr_text", keys=("media_id", "scene_index", "line_index"), not_null=("text", "confidence", "model_id"),
        ranges={"confidence": (0.0, 1.0), "scene_index": (0, None), "line_index": (0, None)},
        rules=(rule_ocr_text_not_blank,),
        description="OCR lines with confidence in [0, 1] and non-blank text",
    ),
    "embeddings": TableSpec(
        "embeddings", keys=("media_id", "item_kind", "item_index", "model_id"), not_null=("vector",),
        ranges={"item_index": (0, None)},
        value_sets={"item_kind": ITEM_KINDS},
        rules=(rule_embedding_dimension, rule_embedding_norm),
        description="one vector per item and model; one dimension per model_id; finite, non-zero norms",
    ),
    "index_entries": TableSpec(
        "index_entries", keys=("entry_id", "backend"),
        not_null=("media_id", "item_kind", "item_index", "model_id", "namespace", "indexed_at"),
        ranges={"item_index": (0, None), "dim": (1, None)},
        value_sets={"item_kind": ITEM_KINDS, "backend": INDEX_BACKENDS},
        rules=(references_media("index_entries"), rule_entry_ids, rule_entry_dims),
        description=("one row per entry served, per backend; entry_id = media_id:item_kind:item_index:model_id; "
                     "vector entries have one dim per model, keyword entries none; every entry's media exists"),
    ),
    "keyframe_hashes": TableSpec(
        "keyframe_hashes", keys=("media_id", "scene_index", "keyframe_n"),
        not_null=("keyframe_s", "hash", "informative"),
        ranges={"scene_index": (0, None), "keyframe_n": (0, None), "keyframe_s": (0.0, None),
                "luma_mean": (0.0, 255.0), "luma_std": (0.0, 255.0), "edge_density": (0.0, 1.0),
                "content_width": (1, None), "content_height": (1, None),
                "bar_top": (0, None), "bar_bottom": (0, None), "bar_left": (0, None), "bar_right": (0, None)},
        value_sets={"low_info_reason": LOW_INFO_REASONS},
        rules=(references_media("keyframe_hashes"), rule_hashes_are_64_bit, rule_low_info_has_reason),
        description=("one row per keyframe; 64-bit hashes as 16 hex digits; a keyframe that is no evidence "
                     "says why; luma and edge statistics in range"),
    ),
    "near_duplicates": TableSpec(
        "near_duplicates", keys=("media_id", "duplicate_of", "method", "duplicate_source_uri"),
        not_null=("score", "relation", "source_uri", "computed_at"),
        ranges={"score": (0.0, 1.0), "coverage": (0.0, 1.0), "duplicate_coverage": (0.0, 1.0),
                "contradiction": (0.0, 1.0), "mean_hash_distance": (0.0, 64.0), "matched_keyframes": (0, None),
                "evidence": (0.0, None), "speed_ratio": (0.0, None)},
        value_sets={"method": DUPLICATE_METHODS, "relation": DUPLICATE_RELATIONS},
        rules=(references_media("near_duplicates"), rule_duplicate_pairs),
        description=("one row per (media, duplicate, method, location); score, coverages and contradiction "
                     "in [0, 1]; exact_bytes rows are the media's own other locations"),
    ),
}


def evaluate(table: str, rows: pa.Table, ctx: RuleContext, engine: str = "arrow") -> list[Finding]:
    """Every finding for ``rows`` of ``table``: the simple expectations (Arrow or GE) + rules."""
    spec = SPECS[table]
    expectations = expectation_list(spec, ctx)
    if engine == "ge":
        from .ge import evaluate_expectations_ge

        findings = evaluate_expectations_ge(rows, expectations, name=table)
    else:
        findings = evaluate_expectations_arrow(rows, expectations)
    for rule in spec.rules:
        findings.extend(rule(rows, ctx))
    return findings
