"""Turn the table specs into Dagster asset checks, attached to whichever stages are present.

``build_checks(assets)`` looks at the assets of the code location and, for every asset
whose key is a contract table with a spec (media, media_sources, scenes,
transcript_segments, ocr_text, embeddings), adds one BLOCKING contract check, plus the
WARN-severity drift checks of that table (``checks.drift``). A new stage gets its checks
by being in ``build_defs``'s asset list: nothing else to wire.

A check is partitioned like its asset and reads, for its partition (arrival window), the
rows of the window's media (``window_media``) from the lakehouse, plus any row with a null
media_id (which no window owns, so every window's check reports it until it is fixed).
"""

# No `from __future__ import annotations`: Dagster reads the check functions' signatures.

from .. import config
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.dataset as pads
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
)

from ..resources.lakehouse import LakehouseResource
from .decorator import partitioned_check, reused_result, written_fingerprint
from .keys import FINGERPRINT_KEY, ROWS_KEY, TABLE_KEY
from . import drift as drift_mod
from .rules import SPECS, RuleContext, evaluate
from .stats import table_stats


def engine() -> str:
    """``MEDIAINTEL_CHECKS_ENGINE``: ``ge`` (default, Great Expectations) or ``arrow``."""
    name = config.get("MEDIAINTEL_CHECKS_ENGINE")
    if name not in ("ge", "arrow"):
        raise ValueError(f"MEDIAINTEL_CHECKS_ENGINE={name!r}: expected ge or arrow")
    return name


# AssetSpec metadata a stage may set: TABLE_KEY, ROWS_KEY (checks.keys, re-exported here).

def rows_for_partition(lake: LakehouseResource, table: str, partition: str,
                       row_filter: dict | None = None) -> tuple[pa.Table, list[dict]]:
    """(the table's rows for the window's media, the window's media rows)."""
    media = lake.window_media(partition)
    ids = sorted(r["media_id"] for r in media)
    names = set(lake.dataset(table).schema.names)
    flt = pads.field("media_id").is_null()
    if ids:
        flt = flt | pads.field("media_id").isin(ids)
    if "arrival_partition" in names:  # media, media_sources: also rows this window wrote
        flt = flt | (pads.field("arrival_partition") == str(partition))
    for column, values in (row_filter or {}).items():
        flt = flt & pads.field(column).isin(list(values))
    return lake.read(table, filter=flt), media


def _reference_dims(lake: LakehouseResource, rows: pa.Table, exclude: list[str]) -> dict[str, int]:
    """For each model_id in ``rows``: the vector length the table already holds for it
    outside these media (so a whole window of wrong-length vectors is still caught)."""
    out = {}
    ds = lake.dataset("embeddings")
    for model_id in sorted({m for m in rows.column("model_id").to_pylist() if m is not None}):
        flt = pads.field("model_id") == model_id
        if exclude:
            flt = flt & ~pads.field("media_id").isin(exclude)
        head = ds.scanner(columns=["vector"], filter=flt).head(1).column("vector").to_pylist()
        if head and head[0]:
            out[model_id] = len(head[0])
    return out


def evaluate_partition(lake: LakehouseResource, table: str, partition: str, eng: str | None = None,
                       row_filter: dict | None = None) -> tuple[list, dict]:
    """Findings and metadata for one table and window (what the Dagster check reports)."""
    rows, media = rows_for_partition(lake, table, partition, row_filter)
    ctx = RuleContext.from_env(media)
    if table == "embeddings" and rows.num_rows:
        ids = sorted({m for m in rows.column("media_id").to_pylist() if m is not None})
        ctx.reference_dims = _reference_dims(lake, rows, ids)
    eng = eng or engine()
    findings = evaluate(table, rows, ctx, engine=eng)
    meta = {
        "rows_checked": rows.num_rows,
        "media_in_window": len(media),
        "engine": eng,
        "failed_rules": MetadataValue.json(sorted({f.rule for f in findings})),
        "findings": MetadataValue.json([f.as_dict() for f in findings]),
        **table_stats(table, rows),
    }
    return findings, meta


def checks_for(asset_key, table: str, *, blocking: bool | None = None, drift: bool = True,
               row_filter: dict | None = None, partitions_def=None) -> list[AssetChecksDefinition]:
    """The checks of ``table`` for the asset ``asset_key`` that writes it: one contract check
    (blocking unless the spec says otherwise) and the table's drift checks (WARN).
    ``row_filter`` ({column: [values]}) narrows the rows to the asset's own (a table that
    two stages write)."""
    spec = SPECS[table]
    key = AssetKey.from_coercible(asset_key)
    is_blocking = spec.blocking if blocking is None else blocking

    @partitioned_check(
        partitions_def,
        asset=key,
        name=f"check_{table}_contract",
        description=(f"Rows of `{table}` for the window's media: {spec.description}. "
                     + ("Blocking: a failure stops the stages downstream in the same run." if is_blocking else "")),
        blocking=is_blocking,
    )
    def _contract(context: AssetCheckExecutionContext, lake: LakehouseResource) -> AssetCheckResult:
        # Nothing written for the window since the last evaluation: the same rows, the same result.
        fp = written_fingerprint(context, key, lake, table)
        reused = reused_result(context, key, fp)
        if reused is not None:
            return reused
        findings, meta = evaluate_partition(lake, table, context.partition_key, row_filter=row_filter)
        if fp:
            meta[FINGERPRINT_KEY] = fp
        for f in findings:
            context.log.error(f"{table}: {f.rule}: {f.message} e.g. {f.examples}")
        return AssetCheckResult(
            passed=not findings,
            severity=AssetCheckSeverity.ERROR,
            metadata=meta,
            description=("; ".join(f.message for f in findings) or None),
        )

    out = [_contract]
    if drift:
        out += drift_mod.drift_checks_for(key, table, partitions_def=partitions_def)
    return out


def build_checks(assets: Iterable) -> list[AssetChecksDefinition]:
    """Checks for every asset in ``assets`` that writes a table with a spec: the asset key
    names the table, or its AssetSpec metadata does (``TABLE_KEY``, with ``ROWS_KEY`` for
    its share of a table that two stages write)."""
    out = []
    for a in assets:
        specs = list(a.specs) if isinstance(a, AssetsDefinition) else [a]
        for spec in specs:
            key = getattr(spec, "key", None)
            if key is None:
                continue
            meta = getattr(spec, "metadata", None) or {}
            table = meta.get(TABLE_KEY, key.path[-1])
            table = getattr(table, "value", table)  # a MetadataValue when Dagster normalized it
            if table in SPECS:
                row_filter = meta.get(ROWS_KEY)
                row_filter = getattr(row_filter, "value", row_filter)
                out += checks_for(key, table, row_filter=row_filter,
                                  partitions_def=getattr(a, "partitions_def", None))
    return out
