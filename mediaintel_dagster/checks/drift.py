"""Drift: does this window's data look like the recent past? (WARN-severity checks)

A partition (arrival date x shard) is compared with a REFERENCE WINDOW: the rows of the
media that arrived on the previous ``MEDIAINTEL_DRIFT_REFERENCE_DAYS`` dates (default 7),
all shards, excluding the partition's own media. Why the previous dates and not a fixed
baseline: content changes slowly (a new channel, a new language market) and a fixed
baseline would warn forever after a legitimate change; a trailing window warns on the
day of a sudden change, which is what an operator needs to look at. Why all shards:
shards are hash buckets of source URIs, so one shard of one day is a small sample and the
other shards are the same population.

Measures (thresholds in docs/trust.md, "Configuration"):
- language mix: total variation distance between the language shares of segments;
- ASR confidence: shift of the mean avg_logprob (nats), with the KS statistic reported;
- embedding centroid: cosine distance between the mean unit vectors, per model_id;
- OCR confidence: shift of the mean confidence.
Too little data on either side (fewer than ``MEDIAINTEL_DRIFT_MIN_ROWS`` rows) passes
with a note instead of warning on noise.
"""

# No `from __future__ import annotations`: Dagster reads the check functions' signatures.

import datetime as dt
from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    MultiPartitionKey,
)

from .. import config
from ..partitions import DATE_DIM, SHARD_DIM, split_key
from ..resources.lakehouse import LakehouseResource
from .decorator import partitioned_check, reused_result, written_fingerprint
from .keys import FINGERPRINT_KEY


def _env_float(name: str, default: float) -> float:
    return config.get_float(name)


# ---- the measures (pure functions) ---------------------------------------------------

def language_shares(languages) -> dict[str, float]:
    counts = Counter(v for v in languages if v)
    total = sum(counts.values())
    return {k: c / total for k, c in counts.items()} if total else {}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """Half the L1 distance between two distributions: 0 same, 1 disjoint."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (max distance between the empirical CDFs)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if not len(a) or not len(b):
        return 0.0
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))))


def centroid_cosine_distance(current, reference) -> float:
    """1 - cos(mean of unit vectors now, mean of unit vectors in the reference)."""
    def centroid(vs):
        m = np.asarray(vs, dtype=np.float64)
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        return m.mean(axis=0)
    c, r = centroid(current), centroid(reference)
    denom = np.linalg.norm(c) * np.linalg.norm(r)
    return float(1.0 - (c @ r) / denom) if denom > 0 else 1.0


class DriftResult:
    def __init__(self, drifted: bool, score: float | None, threshold: float, note: str = "", **extra):
        self.drifted, self.score, self.threshold, self.note, self.extra = drifted, score, threshold, note, extra

    def metadata(self) -> dict:
        meta = {"threshold": self.threshold, **self.extra}
        if self.score is not None:
            meta["score"] = round(self.score, 4)
        if self.note:
            meta["note"] = self.note
        return meta


def _min_rows() -> int:
    return config.get_int("MEDIAINTEL_DRIFT_MIN_ROWS")


def language_drift(current: pa.Table, reference: pa.Table, threshold: float | None = None) -> DriftResult:
    threshold = _env_float("MEDIAINTEL_DRIFT_LANGUAGE_TVD", 0.3) if threshold is None else threshold
    p = language_shares(current.column("language").to_pylist())
    q = language_shares(reference.column("language").to_pylist())
    extra = {"current_shares": MetadataValue.json({k: round(v, 3) for k, v in sorted(p.items())}),
             "reference_shares": MetadataValue.json({k: round(v, 3) for k, v in sorted(q.items())}),
             "current_rows": current.num_rows, "reference_rows": reference.num_rows}
    if current.num_rows < _min_rows() or reference.num_rows < _min_rows():
        return DriftResult(False, None, threshold, "too few segments to compare", **extra)
    tvd = total_variation(p, q)
    return DriftResult(tvd > threshold, tvd, threshold, **extra)


def _numeric_shift(current: pa.Table, reference: pa.Table, column: str, threshold: float) -> DriftResult:
    a = np.array([v for v in current.column(column).to_pylist() if v is not None], float)
    b = np.array([v for v in reference.column(column).to_pylist() if v is not None], float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    extra = {"current_rows": int(len(a)), "reference_rows": int(len(b))}
    if len(a) < _min_rows() or len(b) < _min_rows():
        return DriftResult(False, None, threshold, "too few rows to compare", **extra)
    shift = float(a.mean() - b.mean())
    extra.update(current_mean=round(float(a.mean()), 4), reference_mean=round(float(b.mean()), 4),
                 ks_statistic=round(ks_statistic(a, b), 4))
    return DriftResult(abs(shift) > threshold, abs(shift), threshold, **extra)


def asr_confidence_drift(current: pa.Table, reference: pa.Table, threshold: float | None = None) -> DriftResult:
    threshold = _env_float("MEDIAINTEL_DRIFT_LOGPROB_SHIFT", 0.25) if threshold is None else threshold
    return _numeric_shift(current, reference, "avg_logprob", threshold)


def ocr_confidence_drift(current: pa.Table, reference: pa.Table, threshold: float | None = None) -> DriftResult:
    threshold = _env_float("MEDIAINTEL_DRIFT_OCR_CONFIDENCE_SHIFT", 0.15) if threshold is None else threshold
    return _numeric_shift(current, reference, "confidence", threshold)


def embedding_centroid_drift(current: pa.Table, reference: pa.Table, threshold: float | None = None) -> DriftResult:
    """Per model_id (vectors of two models never mix); drifted if any model's centroid moved."""
    threshold = _env_float("MEDIAINTEL_DRIFT_CENTROID_COSINE", 0.2) if threshold is None else threshold

    def by_model(t):
        out: dict[str, list] = {}
        for m, v in zip(t.column("model_id").to_pylist(), t.column("vector").to_pylist()):
            if m is not None and v:
                out.setdefault(m, []).append(v)
        return out

    cur, ref = by_model(current), by_model(reference)
    per_model, worst = {}, None
    for m, vs in sorted(cur.items()):
        rs = ref.get(m, [])
        dims = {len(v) for v in vs} | {len(v) for v in rs}
        if len(vs) < _min_rows() or len(rs) < _min_rows() or len(dims) != 1:
            per_model[m] = None
            continue
        d = centroid_cosine_distance(vs, rs)
        per_model[m] = round(d, 4)
        worst = d if worst is None else max(worst, d)
    extra = {"by_model": MetadataValue.json(per_model)}
    if worst is None:
        return DriftResult(False, None, threshold, "too few vectors of a model to compare", **extra)
    return DriftResult(worst > threshold, worst, threshold, **extra)


# table -> [(check name, measure)]
DRIFTS: dict[str, list[tuple[str, Callable[[pa.Table, pa.Table], DriftResult]]]] = {
    "transcript_segments": [("language_mix", language_drift), ("asr_confidence", asr_confidence_drift)],
    "ocr_text": [("ocr_confidence", ocr_confidence_drift)],
    "embeddings": [("centroid_shift", embedding_centroid_drift)],
}


# ---- windows -----------------------------------------------------------------------

def reference_partitions(partition: str, days: int | None = None) -> list[str]:
    """The partition keys of the reference window: the previous ``days`` dates, every shard."""
    days = config.get_int("MEDIAINTEL_DRIFT_REFERENCE_DAYS") if days is None else days
    date, _ = split_key(partition)
    d0 = dt.date.fromisoformat(date)
    return [str(MultiPartitionKey({DATE_DIM: (d0 - dt.timedelta(days=i)).isoformat(), SHARD_DIM: str(s)}))
            for i in range(1, days + 1) for s in range(config.shard_count())]


def _media_of(lake: LakehouseResource, partitions: list[str]) -> set[str]:
    flt = pads.field("arrival_partition").isin(partitions)
    return set(lake.read("media_sources", columns=["media_id"], filter=flt).column("media_id").to_pylist())


def windows(lake: LakehouseResource, table: str, partition: str, days: int | None = None) -> tuple[pa.Table, pa.Table]:
    """(the partition's rows, the reference window's rows) of ``table``."""
    current_ids = _media_of(lake, [str(partition)])
    ref_ids = _media_of(lake, reference_partitions(partition, days)) - current_ids
    return (lake.read_keys(table, "media_id", sorted(current_ids)),
            lake.read_keys(table, "media_id", sorted(ref_ids)))


def drift_checks_for(asset_key, table: str, partitions_def=None) -> list:
    key = AssetKey.from_coercible(asset_key)
    return [_drift_check(key, table, name, fn, partitions_def) for name, fn in DRIFTS.get(table, [])]


def _drift_check(key: AssetKey, table: str, name: str, fn, partitions_def=None):
    @partitioned_check(
        partitions_def,
        asset=key,
        name=f"check_{table}_{name}_drift",
        description=(f"Drift of `{table}` ({name.replace('_', ' ')}) against the previous dates' media "
                     "(MEDIAINTEL_DRIFT_REFERENCE_DAYS, default 7). WARN only: it flags, it never blocks."),
        blocking=False,
    )
    def _check(context: AssetCheckExecutionContext, lake: LakehouseResource) -> AssetCheckResult:
        # Reused while the window's rows are unchanged. The reference window (earlier dates)
        # may have changed meanwhile (a backfill); a forced run, or new rows here, re-judges.
        fp = written_fingerprint(context, key, lake, table)
        reused = reused_result(context, key, fp)
        if reused is not None:
            return reused
        current, reference = windows(lake, table, context.partition_key)
        res = fn(current, reference)
        if res.drifted:
            context.log.warning(f"{table} {name} drift: score {res.score:.3f} > {res.threshold}")
        return AssetCheckResult(
            passed=not res.drifted,
            severity=AssetCheckSeverity.WARN,
            metadata={**res.metadata(), **({FINGERPRINT_KEY: fp} if fp else {})},
            description=res.note or None,
        )

    return _check
