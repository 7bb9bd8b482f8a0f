"""What every stage shares: which media a window holds, which are already done, the
quarantine and audit rows it writes, and the run summary it reports.

One way through a stage: ``window_media`` (the window's media) -> ``done_media`` (skip
what the audit trail says this code version and model already wrote) -> compute per media,
quarantining a media that fails instead of failing the batch -> one ``lake.replace`` of the
stage's table -> ``audit_entry`` rows -> ``stage_metadata`` for the UI.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import pyarrow.dataset as pads
from dagster import AssetExecutionContext

from ..resources.lakehouse import LakehouseResource


def audit_entry(context: AssetExecutionContext, asset: str, table: str, media_id: str | None, *,
                code_version: str, rows: int, delta_version: int | None, status: str = "written",
                model_id: str | None = None, source_uri: str | None = None) -> dict:
    return {
        "asset": asset,
        "partition": context.partition_key if context.has_partition_key else None,
        "media_id": media_id,
        "source_uri": source_uri,
        "table_name": table,
        "status": status,
        "run_id": context.run.run_id,
        "code_version": code_version,
        "model_id": model_id,
        "rows": rows,
        "delta_version": delta_version,
    }


def quarantine_row(context: AssetExecutionContext, stage: str, *, source_uri: str, error_type: str,
                   message: str, code_version: str, media_id: str | None = None,
                   size_bytes: int | None = None, mtime_ns: int | None = None) -> dict:
    """A `quarantine` row for input ``stage`` could not process (see lake.quarantine)."""
    return {
        "source_uri": source_uri, "stage": stage, "error_type": error_type, "message": message,
        "media_id": media_id, "size_bytes": size_bytes, "mtime_ns": mtime_ns,
        "arrival_partition": context.partition_key if context.has_partition_key else None,
        "run_id": context.run.run_id, "code_version": code_version,
    }


def window_media(lake: LakehouseResource, partition: str, columns: list[str] | None = None) -> list[dict]:
    """The `media` rows of content that arrived in this window (via media_sources.arrival_partition).

    Content first seen elsewhere and re-delivered here belongs to both windows; the
    done-check keeps it from being processed twice.
    """
    ids = lake.read("media_sources", columns=["media_id"],
                    filter=pads.field("arrival_partition") == str(partition)).column("media_id").to_pylist()
    rows = lake.read_keys("media", "media_id", sorted(set(ids)), columns=columns).to_pylist()
    return sorted(rows, key=lambda r: r["media_id"])


def done_media(lake: LakehouseResource, asset: str, media_ids: Iterable[str], *, code_version: str,
               model_id: str | None = None) -> set[str]:
    """Media for which the audit trail says ``asset`` already wrote its rows with this code
    version (and model). A media that yields no rows (no speech, no text) is recorded with
    rows=0, so it is not redone on every run either.
    """
    ids = sorted(set(media_ids))
    if not ids:
        return set()
    flt = ((pads.field("asset") == asset) & pads.field("media_id").isin(ids)
           & (pads.field("code_version") == code_version) & (pads.field("status") == "written"))
    if model_id is not None:
        flt = flt & (pads.field("model_id") == model_id)
    return set(lake.read("audit_log", columns=["media_id"], filter=flt).column("media_id").to_pylist())


def stage_metadata(*, window_media_count: int, processed: int, skipped_done: int, failed: int,
                   rows: int, media_seconds: float, wall_seconds: float, delta_version: int | None,
                   model_id: str | None = None, **extra) -> dict:
    """The per-run numbers every stage reports; the UI plots them across runs."""
    meta = {
        "media_in_window": window_media_count,
        "media_processed": processed,
        "media_skipped_done": skipped_done,
        "media_failed": failed,
        "rows_written": rows,
        "media_seconds": round(media_seconds, 3),
        "media_seconds_per_wall_second": round(media_seconds / wall_seconds, 2) if wall_seconds > 0 else 0.0,
        "wall_seconds": round(wall_seconds, 3),
        "delta_version": delta_version,
    }
    if model_id is not None:
        meta["model_id"] = model_id
    meta.update(extra)
    return {k: v for k, v in meta.items() if v is not None}


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
