"""Compare two lakehouses table by table: are the rows the same, apart from new columns?

``python -m mediaintel_dagster.bench.compare_lakes LAKE_A HOME_A LAKE_B HOME_B`` reads every
contract table of both lakes, drops the columns that differ by nature between two runs
(times, run ids, Delta versions), rewrites each home's path prefix in path columns to
``<home>``, and reports per table: rows in each, columns only in B (added), and whether
the rows over the shared columns are identical (and, if not, a few differing values).
Used to show that a refactor leaves what the pipeline writes unchanged.
"""

from __future__ import annotations

import os
import sys

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from ..lake import schemas

# What differs between two runs by nature: when (every timestamp column of the contract), which
# run, which Delta version, and the source files' mtimes.
VOLATILE = {"at", "seen_at", "ingested_at", "indexed_at", "computed_at", "redrive_requested_at", "run_id",
            "delta_version", "mtime_ns"}


def _load(lake: str, table: str, home: str) -> pa.Table | None:
    try:
        t = DeltaTable(f"{lake}/{table}").to_pyarrow_table()
    except TableNotFoundError:
        return None
    rows = t.to_pylist()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, str) and home in v:
                r[k] = v.replace(home, "<home>")
    return rows, t.column_names


def _canon(rows: list[dict], cols: list[str]) -> list[tuple]:
    def val(v):
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, list):
            return tuple(val(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((k, val(x)) for k, x in v.items()))
        return v
    return sorted((tuple(val(r.get(c)) for c in cols) for r in rows), key=repr)


def compare(lake_a: str, home_a: str, lake_b: str, home_b: str) -> list[dict]:
    out = []
    for table in schemas.TABLES:
        a, b = _load(lake_a, table, home_a), _load(lake_b, table, home_b)
        if a is None and b is None:
            continue
        (ra, ca), (rb, cb) = a or ([], []), b or ([], [])
        shared = [c for c in ca if c in cb and c not in VOLATILE]
        xa, xb = _canon(ra, shared), _canon(rb, shared)
        diff = [c for c in shared if _canon(ra, [c]) != _canon(rb, [c])]
        out.append({"table": table, "rows_a": len(ra), "rows_b": len(rb), "identical": xa == xb,
                    "added_columns": [c for c in cb if c not in ca], "differing_columns": diff,
                    "examples": {c: (sorted({repr(v[0]) for v in _canon(ra, [c])} - {repr(v[0]) for v in _canon(rb, [c])})[:3],
                                     sorted({repr(v[0]) for v in _canon(rb, [c])} - {repr(v[0]) for v in _canon(ra, [c])})[:3])
                                 for c in diff}})
    return out


def main(argv: list[str]) -> int:
    lake_a, home_a, lake_b, home_b = argv
    print("| table | rows before | rows after | identical (shared columns) | added columns | differing columns |")
    print("| --- | --- | --- | --- | --- | --- |")
    details = []
    for r in compare(lake_a, home_a, lake_b, home_b):
        print(f"| {r['table']} | {r['rows_a']} | {r['rows_b']} | {'yes' if r['identical'] else 'no'} | "
              f"{', '.join(r['added_columns']) or '-'} | {', '.join(r['differing_columns']) or '-'} |")
        details += [(r["table"], c, ex) for c, ex in r["examples"].items()]
    for table, col, (only_a, only_b) in details:
        print(f"\n{table}.{col}: only before {only_a}; only after {only_b}")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # delta-rs's runtime threads can abort the interpreter's shutdown after many table
    # opens ("terminate called without an active exception"); the report is complete here.
    os._exit(code)
