"""Benchmark: what a no-op rerun costs, and whether it stays flat as `audit_log` grows.

    python -m mediaintel_dagster.bench.noop [--windows N] [--sizes 10000,1000000] [--out report.md]
                                            [--repeats 3] [--chunk 100000] [--keep]

A no-op rerun is ``mediaintel process`` over arrival windows whose media every stage has
already done: each stage's done-check reads `audit_log`, finds the window's media done and
writes nothing. That read is the one part of a no-op whose cost can grow with the lake, so
this measures it against the size of `audit_log`:

1. In a fresh temporary home (MEDIAINTEL_HOME, _LAKE, _INBOX, DAGSTER_HOME; MEDIAINTEL_MODELS
   stays shared, default /tmp/mediaintel-models, so Whisper is assembled once), N tiny
   videos (a caption and a short narration, so every stage has something to do) with
   mtimes on N distinct dates, hence N distinct arrival windows.
2. ``process([inbox])`` once for real (models load; not timed), then once more as a warm-up
   no-op (first-call imports and caches; not timed).
3. For each size in ``--sizes``: `audit_log` is inflated with synthetic rows for *other*
   media (random 16-hex ids, the real stage names, code versions and models, status
   'written', recent ``at``) up to that many rows, in appends of ``--chunk`` rows so the
   table has few files, as it would after ``LakehouseResource.compact``. Then, in this
   process:
   - no-op rerun: ``process([inbox], quiet=True)``, best of ``--repeats``, as seconds per
     window; split, from the Dagster run and step stats of the best repeat, into time in
     steps, time in a run outside its steps, and time in ``process`` outside the runs
     (instance, definitions, inbox listing, run creation);
   - the done-check read alone: one ``LakehouseResource.read("audit_log", columns=...,
     filter=field("media_id").isin(window ids))``, best of ``--repeats``, mean over windows.
4. A Markdown table (also written to ``--out``): rows, files, no-op s/window, audit read ms,
   and the ratio of s/window at the largest size to the smallest (flat = close to 1.0).

It also checks that the reruns really were no-ops (no run failed, no Delta table gained a
version) and says so in the report when they were not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


# ---- environment ----------------------------------------------------------------------
def setup_env(home: Path) -> None:
    """Point every location at ``home``. Done before importing the pipeline: some modules
    read the environment at import (partitions.SHARDS)."""
    os.environ["MEDIAINTEL_HOME"] = str(home)
    os.environ["MEDIAINTEL_LAKE"] = str(home / "lake")
    os.environ["MEDIAINTEL_INBOX"] = str(home / "inbox")
    os.environ["MEDIAINTEL_OBJECTS"] = str(home / "objects")
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    # Shared across homes (and with the tests' habit): the packaged Whisper model is
    # assembled once, not once per benchmark run.
    os.environ.setdefault("MEDIAINTEL_MODELS", "/tmp/mediaintel-models")


def _samples():
    # samples.py moves to media/samples.py in the ongoing refactor: accept either place.
    try:
        from ..media import samples
    except ImportError:
        from .. import samples  # type: ignore[no-redef]
    return samples


# ---- corpus -----------------------------------------------------------------------------
COLORS = [(200, 40, 40), (40, 160, 60), (40, 80, 200), (200, 160, 30), (150, 40, 170), (30, 160, 170)]
STYLES = ("gradient", "checker", "circles", "stripes", "bars", "solid")


def make_corpus(inbox: Path, windows: int) -> list[Path]:
    """``windows`` tiny, distinct videos, each dated on its own day (so its own window).

    Distinct content matters: identical bytes would be one media id, found in several
    windows. Tiny (160x96, ~1-2 s) so the real first pass is quick; a caption and a few
    spoken words so every stage (scenes, OCR, CLIP, transcript, text embeddings) writes
    rows and records them in the audit trail, which is what the no-op rerun then checks.
    """
    from .. import config

    s = _samples()
    inbox.mkdir(parents=True, exist_ok=True)
    first = dt.date.fromisoformat(config.partition_start())
    paths = []
    for i in range(windows):
        path = inbox / f"noop_{i:03d}.mp4"
        shots = [s.Shot(0.8, text=f"NEWS {i}", style=STYLES[i % len(STYLES)], color=COLORS[i % len(COLORS)]),
                 s.Shot(0.8, text=f"SHOP {i}", style=STYLES[(i + 3) % len(STYLES)],
                        color=COLORS[(i + 3) % len(COLORS)])]
        s.make_video(path, shots, speech=f"Good evening, story {i}.", size=(160, 96))
        # Noon UTC on day start+10+i: inside the partitions, one date per file; the shard
        # (hash of the path) does not matter once the dates differ.
        day = first + dt.timedelta(days=10 + i)
        ts = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc).timestamp()
        os.utime(path, (ts, ts))
        paths.append(path)
    return paths


# ---- audit_log inflation ------------------------------------------------------------------
# Columns whose values a done-check filters on: copied from the real rows of each stage so
# that the synthetic rows are as (un)selective as real ones. Every other schema column that
# is not generated below is left null, so columns the refactor adds do not break this.
TEMPLATE_COLUMNS = ("asset", "table_name", "code_version", "model_id", "model_requested")


def audit_templates(lake):
    """The distinct (asset, table, code version, model) tuples of the real 'written' rows."""
    import pyarrow.dataset as pads

    names = set(lake.dataset("audit_log").schema.names)
    cols = [c for c in TEMPLATE_COLUMNS if c in names]
    real = lake.read("audit_log", columns=cols, filter=pads.field("status") == "written").to_pylist()
    uniq = sorted({tuple(r[c] for c in cols) for r in real}, key=lambda t: tuple(str(v) for v in t))
    if not uniq:
        raise SystemExit("bench.noop: the real run wrote no 'written' audit rows; nothing to imitate")
    return cols, uniq


def synthetic_audit(n: int, cols: list[str], templates: list[tuple], rng) -> "pa.Table":
    """``n`` audit_log rows for other (random) media, built column by column with numpy
    (a million dicts would take longer than the benchmark)."""
    import numpy as np
    import pyarrow as pa

    from ..lake import schemas

    sch = schemas.schema("audit_log")
    hexes = rng.bytes(8 * n).hex()
    media_ids = [hexes[i:i + 16] for i in range(0, 16 * n, 16)]
    tidx = pa.array(rng.integers(0, len(templates), n))
    now_us = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1e6)
    at = now_us - rng.integers(0, 30 * 86400 * 10**6, n)  # within the last 30 days
    # A pool of partitions and run ids, as a real log has many rows per run and window.
    start = dt.date.fromisoformat(os.environ.get("MEDIAINTEL_PARTITION_START", "2024-01-01"))
    parts = [f"{start + dt.timedelta(days=int(d))}|{s}" for d, s in zip(rng.integers(0, 365, 2000),
                                                                          rng.integers(0, 4, 2000))]
    runs = [rng.bytes(16).hex() for _ in range(max(1, n // 40))]
    generated = {
        "media_id": pa.array(media_ids, pa.string()),
        "source_uri": pa.array([f"/inbox/synthetic/{m}.mp4" for m in media_ids], pa.string()),
        "partition": pa.array(parts, pa.string()).take(pa.array(rng.integers(0, len(parts), n))),
        "run_id": pa.array(runs, pa.string()).take(pa.array(rng.integers(0, len(runs), n))),
        "status": pa.array(np.full(n, "written", dtype=object), pa.string()),
        "rows": pa.array(rng.integers(0, 40, n), pa.int64()),
        "delta_version": pa.array(rng.integers(0, 5000, n), pa.int64()),
        "at": pa.array(at, pa.int64()).cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
    }
    for j, c in enumerate(cols):
        generated[c] = pa.array([t[j] for t in templates]).take(tidx)
    arrays = [generated[f.name].cast(f.type) if f.name in generated else pa.nulls(n, f.type) for f in sch]
    return pa.Table.from_arrays(arrays, schema=sch)


def audit_stats(lake) -> tuple[int, int]:
    """(rows, files) of audit_log in its current version."""
    dtab = lake.delta_table("audit_log")
    if dtab is None:
        return 0, 0
    # deltalake 1.x renamed files() to file_uris(); accept either.
    files = dtab.file_uris() if hasattr(dtab, "file_uris") else dtab.files()
    return dtab.to_pyarrow_dataset().count_rows(), len(files)


def inflate(lake, target: int, chunk: int, cols, templates, rng) -> float:
    """Append synthetic rows until audit_log holds ``target`` rows; returns the seconds taken."""
    t0 = time.perf_counter()
    rows, _ = audit_stats(lake)
    while rows < target:
        n = min(chunk, target - rows)
        lake.append("audit_log", synthetic_audit(n, cols, templates, rng))
        rows += n
    return time.perf_counter() - t0


# ---- measurements -------------------------------------------------------------------------
def table_versions(lake) -> dict[str, int | None]:
    from ..lake import schemas

    return {t: lake.version(t) for t in schemas.TABLES}


def window_ids(lake) -> dict[str, list[str]]:
    """{window: media ids that arrived in it}, from media_sources."""
    out: dict[str, set] = {}
    for r in lake.read("media_sources", columns=["arrival_partition", "media_id"]).to_pylist():
        out.setdefault(r["arrival_partition"], set()).add(r["media_id"])
    return {k: sorted(v) for k, v in sorted(out.items())}


def time_audit_read(lake, ids_by_window: dict[str, list[str]], repeats: int) -> float:
    """Mean over windows of the best-of-``repeats`` seconds of one done-check read: the
    columns a stage's plan reads, filtered by the window's media ids (as the stages do;
    each read opens the Delta table afresh, as ``LakehouseResource.read`` does)."""
    import pyarrow.dataset as pads

    names = set(lake.dataset("audit_log").schema.names)
    from ..resources import lakehouse as lakehouse_module

    # The columns the stages' plan read asks for (a module or class constant, depending on
    # the version of lakehouse.py); a stable fallback otherwise.
    wanted = (getattr(lakehouse_module, "AUDIT_PLAN_COLUMNS", None) or getattr(lake, "AUDIT_PLAN_COLUMNS", None)
              or ["asset", "media_id", "status", "code_version", "model_id", "at"])
    cols = [c for c in wanted if c in names]
    bests = []
    for ids in ids_by_window.values():
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            lake.read("audit_log", columns=cols, filter=pads.field("media_id").isin(ids))
            best = min(best, time.perf_counter() - t0)
        bests.append(best)
    return sum(bests) / len(bests)


def run_breakdown(instance, windows: int) -> dict:
    """From the ``windows`` newest runs: seconds in steps, seconds in runs (RUN_START to
    RUN_SUCCESS), and the slowest step on average."""
    in_runs = in_steps = 0.0
    per_step: dict[str, float] = {}
    for run in instance.get_runs(limit=windows):
        stats = instance.get_run_stats(run.run_id)
        if stats.start_time and stats.end_time:
            in_runs += stats.end_time - stats.start_time
        for step in instance.get_run_step_stats(run.run_id):
            if step.start_time and step.end_time:
                d = step.end_time - step.start_time
                in_steps += d
                per_step[step.step_key] = per_step.get(step.step_key, 0.0) + d
    slowest = sorted(per_step.items(), key=lambda kv: -kv[1])[:3]
    return {"in_runs": in_runs, "in_steps": in_steps, "steps": len(per_step),
            "slowest": [(k, v / windows) for k, v in slowest]}


def time_noop(inbox: Path, windows: int, repeats: int, lake, instance) -> dict:
    from ..cli import process

    before = table_versions(lake)
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        summary = process([str(inbox)], quiet=True)
        total = time.perf_counter() - t0
        if summary["runs"] != windows or summary["failed"]:
            raise SystemExit(f"bench.noop: a no-op rerun did not go as planned: {summary}")
        if best is None or total < best["total"]:
            best = {"total": total, **run_breakdown(instance, windows)}
    after = table_versions(lake)
    best["writes"] = {t: (before[t], after[t]) for t in after if after[t] != before[t]}
    return best


# ---- report ------------------------------------------------------------------------------
def _size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def report(results: list[dict], args, setup: dict) -> str:
    w = args.windows
    lines = [
        f"## No-op rerun vs audit_log size ({w} window{'s' if w != 1 else ''}, best of {args.repeats})",
        "",
        f"Real first pass {setup['first_s']:.1f} s, warm-up no-op {setup['warm_s']:.2f} s "
        f"({setup['warm_s'] / w:.2f} s/window) at {setup['real_rows']} real audit rows.",
        "",
        "| audit_log rows | layout | files | no-op s/window | in steps s/window | run overhead s/window "
        "| outside runs s/window | audit read ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        n = r["noop"]
        lines.append(
            f"| {r['rows']:,} | {r['layout']} | {r['files']} | {n['total'] / w:.3f} | {n['in_steps'] / w:.3f} "
            f"| {(n['in_runs'] - n['in_steps']) / w:.3f} | {(n['total'] - n['in_runs']) / w:.3f} "
            f"| {r['read_s'] * 1000:.1f} |"
        )
    lines.append("")
    for layout in ("appended", "compacted"):
        rs = [r for r in results if r["layout"] == layout]
        if len(rs) > 1:
            lo, hi = rs[0], rs[-1]
            ratio = hi["noop"]["total"] / lo["noop"]["total"]
            read_ratio = hi["read_s"] / lo["read_s"] if lo["read_s"] else float("nan")
            lines.append(f"Ratio {_size(hi['target'])}/{_size(lo['target'])}, {layout}: no-op s/window "
                         f"**{ratio:.2f}** (flat = 1.0), audit read {read_ratio:.2f}.")
            lines.append("")
    lines.append("Columns: *in steps* = sum of the run's step durations (the stages' own work, done-checks "
                 "included); *run overhead* = RUN_START to RUN_SUCCESS minus the steps; *outside runs* = "
                 "`process` time before and between runs (instance, definitions, inbox listing, run "
                 "creation). *audit read* = one done-check read of audit_log for a window's media ids.")
    for r in results:
        slow = ", ".join(f"{k} {v:.3f} s" for k, v in r["noop"]["slowest"])
        verb = "compacting" if r["layout"] == "compacted" else "inflating"
        lines.append(f"- {_size(r['target'])} {r['layout']}: {r['noop']['steps']} steps; slowest per window: {slow}; "
                     f"{verb} took {r['inflate_s']:.1f} s.")
        if r["noop"]["writes"]:
            lines.append(f"  - NOT a no-op: tables gained versions during the reruns "
                         f"(before, after): {r['noop']['writes']}")
    return "\n".join(lines) + "\n"


# ---- entry point --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mediaintel_dagster.bench.noop", description=__doc__.split("\n")[0])
    p.add_argument("--windows", type=int, default=4, help="arrival windows (one tiny video each; default 4)")
    p.add_argument("--sizes", default="10000,1000000", help="audit_log sizes in rows, ascending (default 10000,1000000)")
    p.add_argument("--repeats", type=int, default=3, help="timed no-op reruns per size; the best counts (default 3)")
    p.add_argument("--chunk", type=int, default=100_000, help="synthetic rows per append (default 100000)")
    p.add_argument("--out", help="also write the Markdown report here")
    p.add_argument("--keep", action="store_true", help="keep the temporary home (printed) instead of deleting it")
    args = p.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if args.windows < 1 or not sizes:
        p.error("need --windows >= 1 and at least one size")

    home = Path(tempfile.mkdtemp(prefix="mediaintel-noop-"))
    setup_env(home)
    try:
        import numpy as np

        from ..cli import process
        from ..instance import get_instance
        from ..resources import LakehouseResource

        inbox = home / "inbox"
        t0 = time.perf_counter()
        make_corpus(inbox, args.windows)
        print(f"corpus: {args.windows} videos in {inbox} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

        t0 = time.perf_counter()
        first = process([str(inbox)], quiet=True)
        first_s = time.perf_counter() - t0
        if first["runs"] != args.windows or first["failed"]:
            raise SystemExit(f"bench.noop: the first (real) pass did not give {args.windows} good windows: {first}")
        print(f"first pass: {first} in {first_s:.1f} s", file=sys.stderr)
        t0 = time.perf_counter()
        process([str(inbox)], quiet=True)
        warm_s = time.perf_counter() - t0
        print(f"warm-up no-op: {warm_s:.2f} s", file=sys.stderr)

        lake = LakehouseResource(root=os.environ["MEDIAINTEL_LAKE"])
        instance = get_instance()
        ids_by_window = window_ids(lake)
        cols, templates = audit_templates(lake)
        real_rows, _ = audit_stats(lake)
        rng = np.random.default_rng(0)

        results = []

        def measure(target: int, layout: str, prep_s: float) -> None:
            rows, files = audit_stats(lake)
            read_s = time_audit_read(lake, ids_by_window, args.repeats)
            noop = time_noop(inbox, args.windows, args.repeats, lake, instance)
            results.append({"target": target, "rows": rows, "files": files, "read_s": read_s,
                            "noop": noop, "inflate_s": prep_s, "layout": layout})
            print(f"{_size(target)} {layout} ({prep_s:.1f} s): {rows} rows, {files} files, no-op "
                  f"{noop['total'] / args.windows:.3f} s/window, audit read {read_s * 1000:.1f} ms", file=sys.stderr)

        for target in sizes:
            measure(target, "appended", inflate(lake, target, args.chunk, cols, templates, rng))
            # The layout the nightly maintenance gives it (LakehouseResource.compact: Z-order by
            # media_id, small row groups), measured on the same rows.
            t0 = time.perf_counter()
            lake.compact("audit_log")
            measure(target, "compacted", time.perf_counter() - t0)

        text = report(results, args, {"first_s": first_s, "warm_s": warm_s, "real_rows": real_rows})
        print(text)
        if args.out:
            Path(args.out).write_text(text)
        return 0
    finally:
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
