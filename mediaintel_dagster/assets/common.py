"""What every stage shares: its audit entries and its run summary."""

from __future__ import annotations

import time

from dagster import AssetExecutionContext


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


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
