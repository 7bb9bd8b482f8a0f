"""DuckDB over the lakehouse: every Delta table is a view of the same name.

DuckDB's `delta` extension cannot be downloaded on offline machines, so each table is
handed over as deltalake's Arrow dataset, through which DuckDB pushes filters and
projections down to the Parquet files.
"""

from __future__ import annotations

import duckdb

from ..lake import schemas
from .lakehouse import LakehouseResource


def connect(lake: LakehouseResource, as_of: dict[str, int] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per contract table.

    ``as_of`` maps table names to Delta versions, for reading a table as it was after an
    earlier run (the audit_log's ``delta_version`` says which version a run wrote).
    Tables that do not exist yet are empty views with their contract schema.
    """
    as_of = as_of or {}
    unknown = set(as_of) - set(schemas.TABLES)
    if unknown:
        raise KeyError(f"unknown table(s) {sorted(unknown)}; known: {', '.join(schemas.TABLES)}")
    con = duckdb.connect()
    for table in schemas.TABLES:
        con.register(table, lake.dataset(table, as_of_version=as_of.get(table)))
    return con

