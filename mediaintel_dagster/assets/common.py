"""What every stage shares: which media a window holds, which are already done, the
quarantine and audit rows it writes, and the run summary it reports.

One way through a stage: ``window_media`` (the window's media) -> ``done_media`` (skip
what the audit trail says this code version and model already wrote) -> compute per media,
quarantining a media that fails instead of failing the batch -> one ``lake.replace`` of the
stage's table -> ``audit_entry`` rows -> ``stage_metadata`` for the UI.
"""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Iterable

import pyarrow.dataset as pads
from dagster import AssetExecutionContext, DataVersion

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


def quarantine_and_audit(context: AssetExecutionContext, lake: LakehouseResource, asset: str, bad: list[dict], *,
                         code_version: str, model_id: str | None = None) -> list[dict]:
    """Write ``bad`` (``quarantine_row`` rows) to `quarantine` and return their audit entries
    (status 'quarantined', one per row, with the file and the quarantine table's version)."""
    if not bad:
        return []
    version = lake.quarantine(bad)
    return [audit_entry(context, asset, "quarantine", r["media_id"], code_version=code_version, rows=1,
                        delta_version=version, status="quarantined", model_id=model_id, source_uri=r["source_uri"])
            for r in bad]


def quarantined_media(lake: LakehouseResource, stage: str, media_ids: Iterable[str],
                      code_version: str | None = None) -> set[str]:
    """Media among ``media_ids`` with an open `quarantine` row for ``stage`` (written by
    ``code_version``, when given)."""
    ids = sorted(set(media_ids))
    if not ids:
        return set()
    flt = (pads.field("stage") == stage) & pads.field("media_id").isin(ids)
    if code_version is not None:
        flt = flt & (pads.field("code_version") == code_version)
    return set(lake.read("quarantine", columns=["media_id"], filter=flt).column("media_id").to_pylist())


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
               model_id: str | None = None, after: Iterable[str] = ()) -> set[str]:
    """Media for which the audit trail says ``asset`` already wrote its rows with this code
    version (and model). A media that yields no rows (no speech, no text) is recorded with
    rows=0, so it is not redone on every run either.

    ``after``: the upstream stages whose rows this stage reads (``ocr_text`` reads ``scenes``).
    A media counts as done only if this stage wrote it after the last time any of them
    rewrote or quarantined it: a forced or re-modelled upstream rerun (new scene boundaries,
    new keyframes, or none left) makes the media due again here, so a rerun of a stale asset
    refreshes it.
    """
    ids = sorted(set(media_ids))
    if not ids:
        return set()
    flt = ((pads.field("asset") == asset) & pads.field("media_id").isin(ids)
           & (pads.field("code_version") == code_version) & (pads.field("status") == "written"))
    if model_id is not None:
        flt = flt & (pads.field("model_id") == model_id)
    after = sorted(set(after))
    if not after:
        return set(lake.read("audit_log", columns=["media_id"], filter=flt).column("media_id").to_pylist())

    mine = lake.read("audit_log", columns=["media_id", "at"], filter=flt).to_pydict()
    # An upstream quarantine counts as a rewrite: the stage removed the media's rows (a
    # forced rescan found the file broken), so what was derived from them is due again.
    up = lake.read("audit_log", columns=["media_id", "at"],
                   filter=pads.field("asset").isin(after) & pads.field("media_id").isin(ids)
                   & pads.field("status").isin(["written", "quarantined"])).to_pydict()
    last, upstream = _latest(mine), _latest(up)
    return {mid for mid, at in last.items() if mid not in upstream or at >= upstream[mid]}


def _latest(log: dict) -> dict:
    """media_id -> its latest audit time, from audit_log columns media_id and at."""
    out: dict = {}
    for mid, at in zip(log["media_id"], log["at"]):
        if mid not in out or at > out[mid]:
            out[mid] = at
    return out


def stage_metadata(*, window_media_count: int, processed: int, skipped_done: int, failed: int,
                   rows: int, media_seconds: float, wall_seconds: float, delta_version: int | None,
                   model_id: str | None = None, cpu_seconds: float | None = None,
                   gpu_seconds: float | None = None, asset: str | None = None, partition: str | None = None,
                   **extra) -> dict:
    """The per-run numbers every stage reports; the UI plots them across runs.

    ``cpu_seconds`` (``Stopwatch.cpu_seconds``) and ``gpu_seconds`` (the step's time on a
    GPU) give the cost per processed media-minute. With ``asset`` (and ``partition``) the
    numbers also go to the metrics exporter when one is configured (MEDIAINTEL_METRICS,
    docs/trust.md).
    """
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
    media_minutes = media_seconds / 60.0
    if cpu_seconds is not None:
        meta["cpu_seconds"] = round(cpu_seconds, 3)
        meta["cpu_seconds_per_media_minute"] = round(cpu_seconds / media_minutes, 3) if media_minutes > 0 else None
    if gpu_seconds is not None:
        meta["gpu_seconds"] = round(gpu_seconds, 3)
        meta["gpu_seconds_per_media_minute"] = round(gpu_seconds / media_minutes, 3) if media_minutes > 0 else None
    meta.update(extra)
    meta = {k: v for k, v in meta.items() if v is not None}
    if asset is not None:
        from ..monitoring.metrics import record_stage

        record_stage(asset, partition, meta)
    return meta


def model_code_version(code_version: str, model_id: str | None) -> str:
    """The Dagster code_version of a model stage: its code version and the model it runs.

    ``build_defs`` sets it from the configured model resource (``with_model_version``), so
    changing the model (a config change, no code edit) marks the stage and everything
    downstream stale in the UI, exactly like a code change. The audit trail keeps the two
    apart (code_version and model_id columns); this joins them only for Dagster.
    """
    return f"{code_version}|{model_id}" if model_id else code_version


def stage_data_version(code_version: str, model_id: str | None, keys: Iterable[str]) -> DataVersion:
    """The data version a stage reports for a window: its code version, its model and the
    window's content (media_ids are content hashes; pass source_uris for location tables).

    Rows are a function of (bytes, code, model), so this changes exactly when what the
    window holds changes: a rerun with the same model keeps downstream fresh, a new model
    or a new file in the window marks the assets downstream stale for that partition.
    """
    h = hashlib.sha256(f"{code_version}\x00{model_id or ''}".encode())
    for k in sorted(set(keys)):
        h.update(b"\x00" + str(k).encode())
    return DataVersion(h.hexdigest()[:20])


def with_model_version(assets_def, model_id: str | None):
    """``assets_def`` with every asset's code_version joined with ``model_id``
    (``model_code_version``); unchanged when there is no model_id."""
    if not model_id:
        return assets_def
    return assets_def.map_asset_specs(
        lambda spec: spec.replace_attributes(code_version=model_code_version(spec.code_version or "", model_id))
    )


class Stopwatch:
    """Wall and CPU time since creation. CPU time is this process's (all threads, so the
    model libraries' worker threads count) plus finished child processes'; with the
    in-process executor, steps running at the same time share the count."""

    def __init__(self):
        self.start = time.perf_counter()
        self.cpu_start = _cpu_now()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    @property
    def cpu_seconds(self) -> float:
        return _cpu_now() - self.cpu_start


def _cpu_now() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


# A model stage names, in its AssetSpec metadata, the resource key of its model resource;
# ``apply_model_versions`` (called by build_defs) reads that resource's ``model_id``.
MODEL_RESOURCE_KEY = "mediaintel/model_resource"


def apply_model_versions(assets_def, resources: dict):
    """``with_model_version`` for a stage whose specs name a model resource that has a
    ``model_id`` (attribute or property); other assets are returned unchanged."""
    specs = getattr(assets_def, "specs", [])
    keys = {(spec.metadata or {}).get(MODEL_RESOURCE_KEY) for spec in specs} - {None}
    if len(keys) != 1:
        return assets_def
    res = resources.get(next(iter(keys)))
    model_id = getattr(res, "model_id", None)
    return with_model_version(assets_def, model_id if isinstance(model_id, str) else None)
