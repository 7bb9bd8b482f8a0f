"""Quality numbers of a table's rows for run metadata the UI plots (and metrics export):
ASR confidence, OCR confidence, embedding norms, language mix."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
from dagster import MetadataValue


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    return round(float(np.mean(vals)), 4) if vals else None


def table_stats(table: str, rows: pa.Table) -> dict:
    """Numeric metadata for ``rows`` of ``table`` (keys absent when there is nothing to say)."""
    out: dict = {}
    if rows.num_rows == 0:
        return out
    if table == "transcript_segments":
        lp = rows.column("avg_logprob").to_pylist()
        out["asr_avg_logprob_mean"] = _mean(lp)
        # exp(avg_logprob): the mean per-token probability, a 0..1 "ASR confidence".
        out["asr_confidence_mean"] = _mean(math.exp(v) for v in lp if v is not None and math.isfinite(v))
        langs = Counter(v for v in rows.column("language").to_pylist() if v)
        if langs:
            out["languages"] = MetadataValue.json(dict(langs.most_common()))
    elif table == "ocr_text":
        conf = rows.column("confidence").to_pylist()
        out["ocr_confidence_mean"] = _mean(conf)
        finite = [v for v in conf if v is not None and math.isfinite(v)]
        if finite:
            out["ocr_confidence_min"] = round(min(finite), 4)
    elif table == "embeddings":
        from .rules import vector_norms

        per_model = {}
        all_norms = []
        for model_id, norms in vector_norms(rows).items():
            finite = norms[np.isfinite(norms)]
            if len(finite):
                per_model[model_id] = {"n": int(len(finite)), "mean": round(float(finite.mean()), 4),
                                       "min": round(float(finite.min()), 4), "max": round(float(finite.max()), 4)}
                all_norms.append(finite)
        if all_norms:
            cat = np.concatenate(all_norms)
            out["embedding_norm_mean"] = round(float(cat.mean()), 4)
            out["embedding_norm_min"] = round(float(cat.min()), 4)
            out["embedding_norm_max"] = round(float(cat.max()), 4)
            out["embedding_norms_by_model"] = MetadataValue.json(per_model)
    elif table == "media":
        out["media_seconds_checked"] = round(sum(v for v in rows.column("duration_s").to_pylist() if v), 3)
    return {k: v for k, v in out.items() if v is not None}
