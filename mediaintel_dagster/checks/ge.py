"""The simple expectations (non-null, unique, between, in set) through Great Expectations.

Imported only inside a check's function: ``import great_expectations`` costs 2-10 s,
which must never be paid when the code location loads. One EPHEMERAL context per process
(no files, no project folder, analytics off) validates a pandas frame in about 0.05 s.
"""

from __future__ import annotations

import os
import threading

import pyarrow as pa

from .rules import EXAMPLES, Finding

_lock = threading.Lock()
_context = None


def _gx():
    # Analytics would try the network; progress bars would flood the run's logs.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def context():
    """The process's ephemeral GE context (made once)."""
    global _context
    with _lock:
        if _context is None:
            gx = _gx()
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            _context = ctx
        return _context


def _expectation(gx, e: dict):
    E = gx.expectations
    kind = e["kind"]
    if kind == "not_null":
        return E.ExpectColumnValuesToNotBeNull(column=e["column"])
    if kind == "unique":
        return E.ExpectColumnValuesToBeUnique(column=e["column"])
    if kind == "compound_unique":
        return E.ExpectCompoundColumnsToBeUnique(column_list=e["columns"])
    if kind == "between":
        return E.ExpectColumnValuesToBeBetween(column=e["column"], min_value=e.get("min"), max_value=e.get("max"))
    if kind == "in_set":
        return E.ExpectColumnValuesToBeInSet(column=e["column"], value_set=e["values"])
    raise ValueError(f"unknown expectation kind {kind!r}")


_TYPES = {
    "not_null": "expect_column_values_to_not_be_null",
    "unique": "expect_column_values_to_be_unique",
    "compound_unique": "expect_compound_columns_to_be_unique",
    "between": "expect_column_values_to_be_between",
    "in_set": "expect_column_values_to_be_in_set",
}


def _rule_name(e: dict) -> str:
    # The Arrow engine's names: a compound key is 'unique:a+b', whichever engine judged it.
    if e["kind"] == "compound_unique":
        return f"unique:{'+'.join(e['columns'])}"
    return f"{e['kind']}:{e['column']}"


def evaluate_expectations_ge(rows: pa.Table, expectations: list[dict], name: str = "rows") -> list[Finding]:
    """Validate ``rows`` (as a pandas frame) against the expectations; one Finding per failure."""
    gx = _gx()
    ctx = context()
    present = set(rows.column_names)
    findings, usable = [], []
    for e in expectations:
        cols = e.get("columns") or [e["column"]]
        if missing := [c for c in cols if c not in present]:
            findings.append(Finding(_rule_name(e), f"column(s) {', '.join(missing)} missing", rows.num_rows))
        elif e["kind"] == "compound_unique" and rows.num_rows == 0:
            continue
        else:
            usable.append(e)
    if not usable:
        return findings
    # Vectors (lists) are not for GE: hand it the scalar columns it checks.
    cols = sorted({c for e in usable for c in (e.get("columns") or [e["column"]])})
    frame = rows.select(cols).to_pandas()
    with _lock:  # the context's registries are not thread-safe
        source_name = f"mediaintel_{name}"
        try:
            source = ctx.data_sources.get(source_name)
        except (KeyError, ValueError):
            source = ctx.data_sources.add_pandas(source_name)
        try:
            asset = source.get_asset(name)
        except (LookupError, ValueError):
            asset = source.add_dataframe_asset(name)
        try:
            batch_def = asset.get_batch_definition("whole")
        except (KeyError, LookupError, ValueError):
            batch_def = asset.add_batch_definition_whole_dataframe("whole")
        batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(name=f"{name}_suite")
        for e in usable:
            suite.add_expectation(_expectation(gx, e))
        result = batch.validate(suite)
    # GE orders results its own way: pair them with our expectations by type and columns.
    by_id = {}
    for r in result.results:
        kw = r.expectation_config.kwargs
        cols = tuple(kw.get("column_list") or [kw.get("column")])
        by_id[(r.expectation_config.type, cols)] = r
    for e in usable:
        r = by_id[(_TYPES[e["kind"]], tuple(e.get("columns") or [e["column"]]))]
        if r.success:
            continue
        res = r.result or {}
        n = int(res.get("unexpected_count") or 0)
        raised = (r.exception_info or {}).get("raised_exception")
        message = (f"{n} rows fail {r.expectation_config.type}" if not raised
                   else f"{r.expectation_config.type} raised: {(r.exception_info or {}).get('exception_message')}")
        examples = [v if not isinstance(v, float) or v == v else None
                    for v in (res.get("partial_unexpected_list") or [])[:EXAMPLES]]
        findings.append(Finding(_rule_name(e), message, n, examples))
    return findings
