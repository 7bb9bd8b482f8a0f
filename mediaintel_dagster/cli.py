"""The `mediaintel` command line: process, sql, search, report, serve, demo and the upkeep commands.

Only the standard library and config are imported here at start: each command imports what
it needs when it runs, so `--help`, `sql` and `report` never load Dagster or the models.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from . import config


class UserError(ValueError):
    """A mistake in what the user asked (a bad value, a missing file, an unknown table):
    `main` prints it as one line, ``mediaintel: error: ...``, and exits 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and where to read more) instead of the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _bounded_int(lo: int, hi: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be from {lo} to {hi}, got {value}" if hi is not None
                                             else f"must be at least {lo}, got {value}")
        return value

    parse.__name__ = "number"
    return parse


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


# ---- what the CLI prints besides its output ----------------------------------------------
# The OpenCLIP "weights are absent" warning is a paragraph of install steps, logged by every
# process that builds the CLIP embedder; on a terminal it is said once, in one line.
CLIP_NOTICE = ("CLIP weights are not installed: keyframes get {fallback} vectors and text cannot search "
               "pictures (to install them: docs/visual-models.md, \"Installing the CLIP weights\"; "
               "--debug shows the full notice)")
_said: set[str] = set()


class _ClipNotice(logging.Filter):
    """On the clip resource's logger: the absent-weights warning once per process and short
    (``--debug``: whole), none at all with ``-q``."""

    def __init__(self, quiet: bool, debug: bool):
        super().__init__()
        self.quiet, self.debug = quiet, debug

    def filter(self, record: logging.LogRecord) -> bool:
        if "fallback embedder" not in str(record.msg):
            return True
        if self.quiet or "clip" in _said:
            return False
        _said.add("clip")
        if not self.debug:
            fallback = record.args[-1] if isinstance(record.args, tuple) and record.args else "the fallback"
            record.msg, record.args = CLIP_NOTICE.format(fallback=fallback), ()
        return True


class _StderrHandler(logging.StreamHandler):
    """The package's warnings as ``mediaintel: ...`` lines, unless JSON logging owns the root."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:  # MEDIAINTEL_LOG_FORMAT=json configured the root: it prints them
            return
        super().emit(record)


def _setup_output(quiet: bool, debug: bool) -> None:
    """Logging and progress output of this process: quiet means errors only, everywhere."""
    pkg = logging.getLogger("mediaintel_dagster")
    if not any(isinstance(h, _StderrHandler) for h in pkg.handlers):
        handler = _StderrHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("mediaintel: %(message)s"))
        pkg.addHandler(handler)
    pkg.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING)
    clip_log = logging.getLogger("mediaintel_dagster.resources.clip")
    for f in [f for f in clip_log.filters if isinstance(f, _ClipNotice)]:
        clip_log.removeFilter(f)
    clip_log.addFilter(_ClipNotice(quiet, debug))
    if quiet:
        # Model loading bars (transformers' "Loading weights", hub downloads) and their
        # warnings: these variables are read by those libraries when they load.
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
        os.environ["TQDM_DISABLE"] = "1"


def _print_table(columns: list[str], rows: list[tuple], out=sys.stdout) -> None:
    # Values are printed whole: a cut quarantine message or source_uri is no use to anyone.
    def cell(v) -> str:
        return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", file=out)


def _jsonable(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def _stage_ops(job) -> list[str]:
    """Names of the job's steps whose config has a `force` field (every StageConfig)."""
    names = []
    for node in job.graph.nodes:
        schema = node.definition.config_schema
        fields = getattr(getattr(schema, "config_type", None), "fields", {}) if schema else {}
        if "force" in fields:
            names.append(node.name)
    return names


# ---- process -------------------------------------------------------------------------
# Exit codes of `mediaintel process` (and `demo`), most severe first; the README lists them.
EXIT_OK = 0  # every input file is in the lakehouse, through every stage
EXIT_RUN_FAILED = 1  # a run failed (a step raised): its window may be incomplete
EXIT_USAGE = 2  # bad arguments (argparse's own code)
EXIT_INPUT_QUARANTINED = 3  # some files never became media: quarantined at ingest (not media, unreadable, ...)
EXIT_MEDIA_LOST = 4  # a media that passed ingest was quarantined by a later stage, or has no row from one


def process(paths: list[str], force: bool = False, quiet: bool = False) -> dict:
    """Ingest files or folders and materialize every stage, one Dagster run per arrival window.

    Runs go through the persistent instance under DAGSTER_HOME, so they appear in
    `dagster dev`. Returns a summary: runs, windows, failed runs, and what was lost among
    these inputs (``losses``: per stage, the quarantined files with their error types),
    with the exit code that says it (``exit_code``, see EXIT_*).
    """
    from .definitions import build_defs
    from .instance import get_instance
    from .resources import LocalInboxResource

    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise UserError(f"process: no such file or folder: {', '.join(missing)}")
    instance = get_instance()
    for line in fail_orphaned_runs(instance):
        if not quiet:
            print(f"mediaintel process: {line}", file=sys.stderr)
    # Files named on the command line are complete: no settle delay.
    inbox = LocalInboxResource(roots=[os.path.abspath(p) for p in paths], settle_seconds=0)
    listing = inbox.scan()
    windows: dict[str, int] = defaultdict(int)
    for f in listing.files:
        windows[str(f.partition_key())] += 1
    if listing.skipped and not quiet:
        print(f"mediaintel process: skipped {len(listing.skipped)} name(s) that are never media (hidden files, "
              f"partial downloads): {', '.join(_names(listing.skipped, 5))}", file=sys.stderr)
    if not windows:
        if not quiet:
            print("mediaintel process: no files found", file=sys.stderr)
        return {"runs": 0, "files": 0, "windows": [], "failed": [], "skipped": len(listing.skipped),
                "losses": {}, "exit_code": EXIT_OK}
    job = build_defs({"inbox": inbox}).resolve_job_def("ingest_job")
    failed = _run_windows(instance, job, {k: f"{n} file(s)" for k, n in windows.items()}, force=force, quiet=quiet)
    losses = input_losses([f.source_uri for f in listing.files])
    if not quiet:
        _print_losses(losses)
    return {"runs": len(windows), "files": sum(windows.values()), "windows": sorted(windows), "failed": failed,
            "skipped": len(listing.skipped), **losses, "exit_code": _exit_code(failed, losses)}


def _exit_code(failed: list, losses: dict) -> int:
    return (EXIT_RUN_FAILED if failed else EXIT_MEDIA_LOST if losses["lost_after_ingest"]
            else EXIT_INPUT_QUARANTINED if losses["quarantined_at_ingest"] else EXIT_OK)


def _run_windows(instance, job, windows: dict[str, str], *, force: bool = False, quiet: bool = False,
                 trigger: str = "cli") -> list[str]:
    """Run ``job`` for each window (key -> what it holds, for the progress line), in-process
    through the persistent instance; returns the windows whose run failed."""
    failed = []
    run_config = {
        # Every stage takes StageConfig; `--force` redoes the window in all of them.
        "ops": {name: {"config": {"force": force}} for name in _stage_ops(job)},
        # Quiet: errors only (a fallback model's per-run warning is in the run's event log).
        "loggers": {"console": {"config": {"log_level": "ERROR" if quiet else "INFO"}}},
    }
    for n, (key, what) in enumerate(sorted(windows.items()), 1):
        t0 = time.perf_counter()
        if not quiet:
            print(f"[{n}/{len(windows)}] window {key}: {what} ...", file=sys.stderr, flush=True)
        result = job.execute_in_process(
            partition_key=key, instance=instance, run_config=run_config,
            # "cli" marks runs whose process a later call may find dead (fail_orphaned_runs).
            tags={"mediaintel/trigger": "cli", "mediaintel/command": trigger, **_owner_tags()},
            raise_on_error=False,
        )
        if not result.success:
            failed.append(key)
        if not quiet:
            print(f"[{n}/{len(windows)}] window {key}: {'ok' if result.success else 'FAILED'} in "
                  f"{time.perf_counter() - t0:.1f}s (run {result.run_id})", file=sys.stderr, flush=True)
    return failed


# ---- redrive -------------------------------------------------------------------------
def redrive_queues(dry_run: bool = False) -> dict:
    """The configured queues' dead letters moved back to their queues (or, ``dry_run``, how
    many wait): queue resource name -> count. None configured is a user error."""
    from .definitions import queue_parts
    from .sensors.queue import redrive_queue_dead_letters

    _, res = queue_parts()
    sources = {k: v for k, v in res.items() if k != "inbox"}
    if not sources:
        raise UserError("redrive --queue: no queue is configured (set MEDIAINTEL_QUEUE_URL or MEDIAINTEL_SQS_QUEUE_URL)")
    if dry_run:
        out = {}
        for name, src in sources.items():
            try:
                out[name] = src.dead_letter_depth()
            finally:
                src.close()
        return out
    return {name: redrive_queue_dead_letters(src) for name, src in sources.items()}


def redrive(stage: str | None = None, error_type: str | None = None, dry_run: bool = False,
            quiet: bool = False) -> dict:
    """Retry dead letters: mark the matching quarantine rows for one more try and run their
    windows now (what redrive_job and redrive_sensor do in the UI). Returns the rows marked,
    the runs, and what is still lost among them afterwards, with the exit code that says it."""
    from .definitions import build_defs
    from .instance import get_instance
    from .media.errors import error_code
    from .resources import LakehouseResource

    if error_type is not None:
        try:
            error_code(error_type)
        except ValueError as exc:
            raise UserError(f"redrive: {exc}") from None
    lake = LakehouseResource()
    rows = lake.request_redrive(stage, error_type, dry_run=dry_run)
    marked = [{"file": _display(r["source_uri"]), "source_uri": r["source_uri"], "stage": r["stage"],
               "error_type": r["error_type"], "attempts": r.get("attempts"), "window": r["arrival_partition"]}
              for r in rows]
    summary = {"marked": len(rows), "dry_run": dry_run, "rows": marked}
    windows: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["arrival_partition"]:
            windows[r["arrival_partition"]] += 1
    if dry_run or not rows:
        if not quiet:
            print(f"mediaintel redrive: {len(rows)} quarantine row(s) match" + (" (dry run)" if dry_run else ""),
                  file=sys.stderr)
        return {**summary, "runs": 0, "failed": [], "exit_code": EXIT_OK}
    instance = get_instance()
    job = build_defs().resolve_job_def("ingest_job")
    failed = _run_windows(instance, job, {k: f"{n} redriven input(s)" for k, n in windows.items()},
                          quiet=quiet, trigger="redrive")
    inputs = sorted({r["source_uri"] for r in rows if r["stage"] == "media"}
                    | set(_sources_of(lake, [r["media_id"] for r in rows if r["stage"] != "media" and r["media_id"]])))
    losses = input_losses(inputs)
    if not quiet:
        _print_losses(losses)
    return {**summary, "runs": len(windows), "windows": sorted(windows), "failed": failed, **losses,
            "exit_code": _exit_code(failed, losses)}


def _sources_of(lake, media_ids: list[str]) -> list[str]:
    return lake.read_keys("media_sources", "media_id", sorted(set(media_ids)),
                          columns=["source_uri"]).column("source_uri").to_pylist()


def _display(uri: str) -> str:
    from .media.files import display_name

    return display_name(uri)


def _owner_tags() -> dict[str, str]:
    """The process that executes a CLI run in-process, so a later call can tell it died."""
    import socket

    return {"mediaintel/host": socket.gethostname(), "mediaintel/pid": str(os.getpid())}


def fail_orphaned_runs(instance) -> list[str]:
    """Mark failed the CLI runs left STARTED by a process that died (kill -9, out of memory,
    a closed terminal): nothing else would, since no daemon watches in-process runs. Only
    runs of this host whose process is gone are touched. Returns what it did, a line each."""
    import socket

    from dagster import DagsterRunStatus, RunsFilter

    from .launcher import process_alive

    host, done = socket.gethostname(), []
    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
                                        tags={"mediaintel/trigger": "cli", "mediaintel/host": host}))
    for run in runs:
        pid = int(run.tags.get("mediaintel/pid", "0") or 0)
        if pid <= 0 or pid == os.getpid() or process_alive(pid):
            continue
        instance.report_run_failed(run, message=f"its process {pid} on {host} died before the run ended "
                                                "(killed, or out of memory); marked failed by a later "
                                                "`mediaintel process`")
        done.append(f"run {run.run_id} (window {run.tags.get('dagster/partition', '?')}) was left STARTED by "
                    f"process {pid}, which died: marked failed; its window is redone now if named again")
    return done


def _names(uris: list[str], limit: int) -> list[str]:
    from .media.files import display_name

    names = [display_name(u) for u in uris[:limit]]
    return names + ([f"... {len(uris) - limit} more"] if len(uris) > limit else [])


def input_losses(source_uris: list[str]) -> dict:
    """What the lakehouse holds as lost for these input files: their open quarantine rows,
    per stage, and the media that passed ingest but have no row from some stage and no
    quarantine row saying why (which should never happen: counted so it cannot hide)."""
    import pyarrow.dataset as pads

    from .assets import STAGES
    from .media.files import display_name
    from .resources import LakehouseResource

    lake = LakehouseResource()
    uris = sorted(set(source_uris))
    sources = lake.read_keys("media_sources", "source_uri", uris, columns=["source_uri", "media_id"]).to_pylist()
    media_of = {r["source_uri"]: r["media_id"] for r in sources}
    ids = sorted(set(media_of.values()))
    where = pads.field("source_uri").isin(uris) if uris else None
    if ids:
        where = pads.field("media_id").isin(ids) if where is None else where | pads.field("media_id").isin(ids)
    rows = lake.read("quarantine", filter=where).to_pylist() if where is not None else []
    by_stage: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (r["stage"], r["source_uri"])):
        if r["stage"] != "media" and r["media_id"] not in ids:
            continue  # another file's content that shares a stage row with nothing of ours
        s = by_stage.setdefault(r["stage"], {"count": 0, "by_type": {}, "files": []})
        s["count"] += 1
        s["by_type"][r["error_type"]] = s["by_type"].get(r["error_type"], 0) + 1
        # Later stages may quarantine a part (a keyframe): name the input file it belongs to.
        uri = r["source_uri"] if r["stage"] == "media" else next(
            (u for u, m in media_of.items() if m == r["media_id"]), r["source_uri"])
        entry = {"file": display_name(uri), "source_uri": uri, "media_id": r["media_id"],
                 "error_type": r["error_type"], "message": r["message"]}
        if uri != r["source_uri"]:
            entry["item"] = r["source_uri"]
        s["files"].append(entry)
    lost_media = {f["media_id"] for st, s in by_stage.items() if st != "media" for f in s["files"]}
    unaccounted = []
    if ids:
        later = [s.name for s in STAGES if s.name != "media"]
        latest = lake.latest_audit(later, ids)
        for mid in ids:
            if mid in lost_media:
                continue
            gaps = [name for name in later if (name, mid) not in latest]
            if gaps:
                uri = next(u for u, m in media_of.items() if m == mid)
                unaccounted.append({"file": display_name(uri), "source_uri": uri, "media_id": mid, "stages": gaps})
    return {"losses": by_stage, "unaccounted": unaccounted,
            "quarantined_at_ingest": by_stage.get("media", {}).get("count", 0),
            "lost_after_ingest": len(lost_media) + len(unaccounted)}


def _print_losses(losses: dict) -> None:
    for stage, s in losses["losses"].items():
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(s["by_type"].items()))
        print(f"mediaintel process: quarantined by {stage}: {s['count']} ({kinds})", file=sys.stderr)
        for f in s["files"]:
            print(f"  {f['file']}: {f['error_type']}: {f['message']}", file=sys.stderr)
    for u in losses["unaccounted"]:
        print(f"mediaintel process: {u['file']} ({u['media_id']}) has no row from {', '.join(u['stages'])} "
              "and no quarantine row: rerun, or report this", file=sys.stderr)


# ---- sql -----------------------------------------------------------------------------
def _connect(as_of: dict[str, int] | None = None):
    """The DuckDB views of `sql`, `report` and the shell (reports.connect: no Dagster, no models)."""
    from .reports import connect

    try:
        return connect(as_of)
    except ValueError as exc:  # an unknown table or a version it does not have
        raise UserError(str(exc)) from None


def _print_result(columns: list[str], rows: list[tuple], fmt: str = "table", out=sys.stdout) -> None:
    if fmt == "json":
        json.dump([{c: _jsonable(v) for c, v in zip(columns, r)} for r in rows], out, indent=2, default=str)
        out.write("\n")
    elif fmt == "csv":
        import csv

        w = csv.writer(out)
        w.writerow(columns)
        w.writerows(rows)
    else:
        _print_table(columns, rows, out=out)


def sql(query: str, fmt: str = "table", as_of: dict[str, int] | None = None, out=sys.stdout) -> int:
    """Run one query over the lakehouse views; exit 1 (and DuckDB's message) when it fails."""
    con = _connect(as_of)
    try:
        rel = con.sql(query)
        if rel is None:  # a statement without a result (SET, CREATE VIEW ...)
            return 0
        columns, rows = rel.columns, rel.fetchall()
    except Exception as exc:  # duckdb's errors are precise; show them without a traceback
        print(f"mediaintel sql: {exc}", file=sys.stderr)
        return 1
    _print_result(columns, rows, fmt, out)
    return 0


SHELL_HELP = """Statements end with ';' (they may span lines). Commands:
  .tables          the lakehouse tables (views) and their rows
  .schema [TABLE]  a table's columns and types (all tables without TABLE)
  .mode table|json|csv   how results print
  .help            this text
  .quit            leave (or Ctrl-D)"""


def sql_shell(as_of: dict[str, int] | None = None, fmt: str = "table", inp=None, out=sys.stdout,
              quiet: bool = False) -> int:
    """`mediaintel sql --shell`: a DuckDB prompt over the lakehouse views, one connection for
    the session (a CREATE VIEW or SET lasts until it ends). Reads statements up to ';' from a
    terminal (with readline history) or from piped stdin; Ctrl-C drops the statement being
    typed, Ctrl-D leaves. Piped input exits 1 if any statement failed."""
    inp = inp or sys.stdin
    con = _connect(as_of)
    interactive = inp is sys.stdin and inp.isatty()
    if interactive:
        _readline_history()
        if not quiet:
            print(f"mediaintel sql shell over {config.lake_root()}: .help for commands, Ctrl-D to leave", file=out)
    state = {"fmt": fmt, "failed": 0}
    buf: list[str] = []
    while True:
        try:
            if interactive:
                line = input("mediaintel> " if not buf else "       ...> ")
            else:
                line = inp.readline()
                if not line:
                    raise EOFError
                line = line.rstrip("\n")
        except EOFError:
            if buf:
                _shell_run(con, "\n".join(buf), state, out)
            if interactive:
                print(file=out)
            break
        except KeyboardInterrupt:
            print("^C", file=out)
            buf = []
            continue
        stripped = line.strip()
        if not buf and stripped.startswith("."):
            if not _shell_command(con, stripped, state, out):
                break
            continue
        if not buf and not stripped:
            continue
        buf.append(line)
        if stripped.endswith(";"):
            _shell_run(con, "\n".join(buf), state, out)
            buf = []
    return 1 if state["failed"] and not interactive else 0


def _readline_history() -> None:
    try:
        import atexit
        import readline
    except ImportError:  # no readline on this platform: plain input()
        return
    path = config.home() / "sql_history"
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)
        except OSError:
            pass

    atexit.register(save)


def _shell_run(con, text: str, state: dict, out) -> None:
    try:
        statements = con.extract_statements(text)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        state["failed"] += 1
        return
    for st in statements:
        try:
            rel = con.sql(st.query)
            if rel is not None:
                _print_result(rel.columns, rel.fetchall(), state["fmt"], out)
        except Exception as exc:  # DuckDB's message; the session goes on
            print(f"error: {exc}", file=sys.stderr)
            state["failed"] += 1
            return
    out.flush()


def _shell_command(con, line: str, state: dict, out) -> bool:
    """A dot command; False when it ends the session."""
    from .lake.schemas import TABLES

    cmd, _, arg = line.partition(" ")
    arg = arg.strip().rstrip(";")
    if cmd in (".quit", ".exit", ".q"):
        return False
    if cmd == ".help":
        print(SHELL_HELP, file=out)
    elif cmd == ".tables":
        rows = [(t, con.sql(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]) for t in TABLES]
        _print_result(["table", "rows"], rows, state["fmt"], out)
    elif cmd == ".schema":
        tables = [arg] if arg else list(TABLES)
        unknown = [t for t in tables if t not in TABLES]
        if unknown:
            print(f"error: no table {unknown[0]!r}; .tables lists them", file=sys.stderr)
            state["failed"] += 1
        for t in tables if not unknown else []:
            cols = con.sql(f'DESCRIBE "{t}"').fetchall()
            print(f"{t} (" + ", ".join(f"{c[0]} {c[1]}" for c in cols) + ")", file=out)
    elif cmd == ".mode":
        if arg not in ("table", "json", "csv"):
            print("error: .mode table, json or csv", file=sys.stderr)
            state["failed"] += 1
        else:
            state["fmt"] = arg
    else:
        print(f"error: unknown command {cmd}; .help lists them", file=sys.stderr)
        state["failed"] += 1
    out.flush()
    return True


# ---- report ----------------------------------------------------------------------------
def report(name: str | None, fmt: str = "table", list_only: bool = False, show_sql: bool = False,
           as_of: dict[str, int] | None = None, out=sys.stdout) -> int:
    """`mediaintel report NAME`: one of the named queries of mediaintel_dagster.reports."""
    from . import reports

    if list_only or not name:
        if not list_only:
            raise UserError(f"report: name a report; known: {', '.join(reports.REPORTS)} (--list describes them)")
        if fmt == "json":
            print(json.dumps([{"name": r.name, "title": r.title, "description": r.description}
                              for r in reports.REPORTS.values()]), file=out)
        else:
            for r in reports.REPORTS.values():
                print(f"{r.name:<20} {r.title}: {r.description}", file=out)
        return 0
    try:
        rep = reports.get(name)
    except ValueError as exc:
        raise UserError(f"report: {exc}") from None
    if show_sql:
        import textwrap

        print(textwrap.dedent(rep.sql).strip(), file=out)
        return 0
    columns, rows = reports.run(name, _connect(as_of))
    if fmt == "table":
        print(f"== {rep.title}", file=out)
    _print_result(columns, rows, fmt, out)
    return 0


# ---- demo ----------------------------------------------------------------------------
SUMMARY_QUERIES = [
    ("Tables", " UNION ALL ".join(
        f"SELECT '{t}' AS table_name, count(*) AS rows FROM {t}"
        for t in ("media", "media_sources", "scenes", "ocr_text", "transcript_segments", "embeddings",
                  "quarantine", "audit_log")
    )),
    ("Media", "SELECT media_id, kind, container, round(duration_s, 2) AS duration_s, video_codec, "
              "width, height, fps, audio_codec, sample_rate, channels, "
              "regexp_extract(source_uri, '[^/]+$') AS file FROM media ORDER BY kind, file"),
    ("Where each media was found", "SELECT regexp_extract(source_uri, '[^/]+$') AS file, media_id, "
              "arrival_partition FROM media_sources ORDER BY file"),
    ("Scenes (shots with a keyframe each) and the text read on them",
     "SELECT regexp_extract(m.source_uri, '[^/]+$') AS file, s.scene_index, round(s.start_s, 2) AS start_s, "
     "round(s.end_s, 2) AS end_s, string_agg(o.text, ' / ' ORDER BY o.line_index) AS ocr_text "
     "FROM scenes s JOIN media m USING (media_id) "
     "LEFT JOIN ocr_text o ON o.media_id = s.media_id AND o.scene_index = s.scene_index "
     "GROUP BY ALL ORDER BY file, s.scene_index"),
    ("Transcript segments", "SELECT regexp_extract(m.source_uri, '[^/]+$') AS file, t.segment_index AS seg, "
     "round(t.start_s, 2) AS start_s, round(t.end_s, 2) AS end_s, t.language AS lang, "
     "round(t.avg_logprob, 2) AS avg_logprob, t.text FROM transcript_segments t JOIN media m USING (media_id) "
     "ORDER BY file, seg"),
    ("Vectors per model", "SELECT model_id, item_kind, count(*) AS vectors, len(any_value(vector)) AS dim "
     "FROM embeddings GROUP BY ALL ORDER BY model_id, item_kind"),
    ("Serving index", "SELECT backend, model_id, item_kind, count(*) AS entries FROM index_entries "
     "GROUP BY ALL ORDER BY backend, model_id, item_kind"),
    ("Quarantine", "SELECT regexp_extract(source_uri, '[^/]+$') AS file, stage, error_type, message "
                   "FROM quarantine ORDER BY file"),
]
DEMO_SEARCHES = ("weather forecast", "a new shop is opening", "sports")


# ---- search ----------------------------------------------------------------------------
def _day_start_s(day: str, flag: str) -> float:
    from datetime import datetime, timezone

    try:
        return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise ValueError(f"{flag} expects a date YYYY-MM-DD, got {day!r}") from None


def search_filter(media_kinds=None, languages=None, min_duration=None, max_duration=None, since=None, until=None,
                  source=None):
    """The IndexFilter of the search flags (arrival dates are UTC days, both ends inclusive)."""
    from .resources.vector_index import IndexFilter

    return IndexFilter(media_kinds=media_kinds or None, languages=languages or None, min_duration_s=min_duration,
                       max_duration_s=max_duration,
                       arrived_from_s=_day_start_s(since, "--since") if since else None,
                       arrived_to_s=_day_start_s(until, "--until") + 86400.0 if until else None,
                       source_prefix=source or None)


def _service_search(params: dict) -> dict | None:
    """The running REST service's answer (api.client.service_search), or None when no service
    answers or the API is not installed here: the search then runs in this process.

    ``params`` are the search flags by their argument names, unset ones left out: q, k, page,
    mode, kinds, min_score, media_kinds, languages, min_duration, max_duration, since, until,
    source. The answer is the API's JSON: ``hits`` (the objects `--json` prints), ``notes``,
    and optionally ``retrievers`` and ``candidates``."""
    try:
        from .api.client import service_search
    except ImportError:
        return None
    try:
        return service_search(params)
    except OSError:  # a service that went away between the probe and the query
        return None


def search(query: str, k: int = 10, fmt: str = "table", kinds: list[str] | None = None, out=sys.stdout,
           page: int = 1, mode: str = "hybrid", min_score: float | None = None, local: bool = True,
           quiet: bool = False, **filters) -> int:
    """Print the best scenes, transcript segments and keyframe texts for ``query``
    (see mediaintel_dagster.search: vector, keyword and picture retrievers fused by rank).
    ``local=False`` asks the running `mediaintel serve` first (its models are loaded already)."""
    if not query or not query.strip():
        raise UserError("search: empty query")
    try:  # dates checked here, before either path: no heavy import for a typo
        for flag in ("since", "until"):
            if filters.get(flag):
                _day_start_s(filters[flag], f"--{flag}")
    except ValueError as exc:
        raise UserError(f"search: {exc}") from None
    answer = None
    if not local:
        params = {"q": query, "k": k, "page": page, "mode": mode, "kinds": kinds, "min_score": min_score, **filters}
        answer = _service_search({key: v for key, v in params.items() if v is not None})
    if answer is not None:
        hits = answer.get("hits", []) if isinstance(answer, dict) else list(answer)
        meta = answer if isinstance(answer, dict) else {}
        notes, retrievers = list(meta.get("notes") or []), dict(meta.get("retrievers") or {})
        candidates, where = meta.get("candidates"), " (from the running service)"
    else:
        from .search import RETRIEVERS, search_page

        retrievers_asked = RETRIEVERS if mode == "hybrid" else (mode,)
        try:
            result = search_page(query, k=k, page=page, kinds=kinds, retrievers=retrievers_asked,
                                 flt=search_filter(**filters), min_score=min_score)
        except ValueError as exc:
            raise UserError(f"search: {exc}") from None
        hits, notes, retrievers = [h.as_dict() for h in result.hits], result.notes, result.retrievers
        candidates, where = result.candidates, ""
    if not quiet:
        for note in notes:  # why the page is short or empty: said, never silent (exit 0)
            print(f"mediaintel search: note: {note}", file=sys.stderr)
    if fmt == "json":
        print(json.dumps(hits, default=_jsonable), file=out)
        return 0
    rows = [(h.get("score"), h.get("item_kind"), os.path.basename(h.get("source_uri") or ""),
             None if h.get("start_s") is None else round(h["start_s"], 2),
             None if h.get("end_s") is None else round(h["end_s"], 2),
             "+".join(h.get("matched") or []) + (f" [{' '.join(h['matched_words'])}]" if h.get("matched_words") else ""),
             h.get("text"))
            for h in hits]
    _print_table(["score", "kind", "file", "start_s", "end_s", "matched", "text"], rows, out=out)
    unused = {r: why for r, why in retrievers.items() if why != "used"}
    tail = f"page {page}" + (f", {candidates} candidate(s)" if candidates is not None else "") + where
    if unused:
        tail += "; not used: " + "; ".join(f"{r} ({why})" for r, why in unused.items())
    print(tail, file=out)
    return 0


def similar(target: str, k: int = 10, fmt: str = "table", out=sys.stdout) -> int:
    """Print the media (and their scenes) nearest a media in the lakehouse or a new file."""
    from .search import similar_media

    try:
        result = similar_media(target, k=k)
    except ValueError as exc:
        raise UserError(f"similar: {exc}") from None
    if fmt == "json":
        print(json.dumps({"query": result["query"], "media": [s.as_dict() for s in result["media"]]},
                         default=_jsonable), file=out)
        return 0
    print(f"similar to {result['query']['label']} ({result['query']['scenes']} keyframe(s), "
          f"model {result['query']['model_id']})", file=out)
    rows = [(s.score, s.matched_scenes, s.media_id, os.path.basename(s.source_uri or ""),
             ", ".join(f"{m['query_scene']}->{m['scene_index']} {m['score']:.2f}" for m in s.scenes[:3]))
            for s in result["media"]]
    _print_table(["score", "scenes", "media_id", "file", "best scene matches"], rows, out=out)
    return 0


def remove(media_ids: list[str], out=sys.stdout) -> int:
    """`mediaintel remove MEDIA_ID...`: take media out of the lakehouse and the serving index
    (a takedown): their entries leave both indexes, their rows every table but `audit_log`
    (which gains a 'removed' row per media and stage), their keyframes the object store."""
    from .assets.index import unindex_media
    from .definitions import index_resources
    from .resources import LakehouseResource, ObjectStoreResource

    lake = LakehouseResource()
    known = set(lake.read_keys("media", "media_id", media_ids, columns=["media_id"]).column("media_id").to_pylist())
    unknown = [m for m in media_ids if m not in known]
    if unknown:
        print(f"mediaintel remove: not in the lakehouse: {', '.join(unknown)}", file=sys.stderr)
        return 2
    res = index_resources()
    ids = sorted(known)
    entries = unindex_media(lake, res["vector_index"], res["text_index"], ids)
    removed = lake.delete_media(ids, writer="remove")
    from .assets.near_duplicates import forget_duplicates_of

    # Other media's near_duplicates rows name the removed media and its location: gone too.
    removed["near_duplicates_of_others"] = forget_duplicates_of(lake, ids)
    objects = ObjectStoreResource()
    for mid in ids:
        objects.delete_prefix(f"keyframes/{mid}")
    # A 'removed' row per stage: if the same bytes arrive again, every stage redoes them
    # (the done-check reads only 'written' as done).
    from .assets import STAGES

    lake.audit([{"asset": s.name, "media_id": mid, "status": "removed", "rows": 0, "table_name": s.table,
                 "code_version": "remove"} for mid in ids for s in STAGES])
    print(json.dumps({"removed": ids, "index_entries": entries, "rows": removed}), file=out)
    return 0


def duplicates(fmt: str = "table", out=sys.stdout) -> int:
    """`mediaintel duplicates`: clusters of media showing the same content, each with its
    canonical media (see assets/near_duplicates.py)."""
    from .assets.near_duplicates import near_duplicate_clusters
    from .resources import LakehouseResource

    clusters = near_duplicate_clusters(LakehouseResource())
    if fmt == "json":
        print(json.dumps(clusters, default=_jsonable), file=out)
        return 0
    rows = [(c["cluster_id"], m["method"], m.get("relation"), m["media_id"], os.path.basename(m.get("source_uri") or ""),
             len(m.get("sources") or []), m.get("score"))
            for c in clusters for m in c["members"]]
    _print_table(["cluster", "method", "relation", "media_id", "file", "locations", "score"], rows, out=out)
    return 0


def index_command(action: str, model_id: str | None = None, out=sys.stdout) -> int:
    """`mediaintel index stats|rebuild|drop MODEL_ID`: the serving index."""
    from .assets.index import drop_model, rebuild_index
    from .definitions import index_resources
    from .resources import LakehouseResource

    res = index_resources()
    vindex, tindex = res["vector_index"], res["text_index"]
    lake = LakehouseResource()
    if action == "stats":
        print(json.dumps({"backend": vindex.backend, "vectors": vindex.counts(), "keyword_entries": tindex.count()}),
              file=out)
        return 0
    if action == "rebuild":
        print(json.dumps(rebuild_index(lake, vindex, tindex), default=str), file=out)
        return 0
    if action == "drop":
        if not model_id:
            print("mediaintel index drop: name the MODEL_ID to drop (see `mediaintel index stats`)", file=sys.stderr)
            return 2
        print(json.dumps(drop_model(lake, vindex, model_id)), file=out)
        return 0
    return 2


def demo(folder: str | None = None, quiet: bool = False) -> int:
    from .media.samples import make_demo_set

    t0 = time.perf_counter()
    target = Path(folder) if folder else Path(config.inbox_roots()[0]) / "demo"
    target.mkdir(parents=True, exist_ok=True)
    names = ("newsroom.mp4", "interview.wav", "poster.png", "broken_upload.mp4")
    err = open(os.devnull, "w") if quiet else sys.stderr
    if all((target / n).exists() for n in names):
        # Same bytes as last time, so a second demo is a rerun: it shows idempotency
        # (nothing re-hashed or re-probed) instead of piling up new content ids.
        print(f"Reusing the sample media in {target}", file=err, flush=True)
    else:
        print(f"Generating sample media in {target} ...", file=err, flush=True)
        paths = make_demo_set(target)
        # One bad upload, to show quarantine: the first half of the sample video.
        good = next(p for p in paths if p.suffix == ".mp4")
        broken = target / "broken_upload.mp4"
        broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        print(f"  {len(paths)} sample files + 1 broken upload in {time.perf_counter() - t0:.1f}s",
              file=err, flush=True)
    summary = process([str(target)], quiet=quiet)
    print()
    print(f"mediaintel demo: {summary['files']} files, {summary['runs']} run(s), "
          f"lakehouse at {config.lake_root()}")
    for title, query in SUMMARY_QUERIES:
        print(f"\n== {title}")
        sql(query)
    for query in DEMO_SEARCHES:
        print(f"\n== mediaintel search \"{query}\" --k 3")
        search(query, k=3, quiet=quiet)
    print(f"\nDone in {time.perf_counter() - t0:.1f}s. Next: .venv/bin/mediaintel sql \"SELECT * FROM media\", "
          f"or `make ui` for the Dagster UI over the same runs (DAGSTER_HOME={config.dagster_home()}).")
    # The planted broken upload is the one loss the demo expects; anything else is real.
    ingest_lost = {f["file"] for f in summary.get("losses", {}).get("media", {}).get("files", [])}
    if summary["exit_code"] == EXIT_INPUT_QUARANTINED and ingest_lost == {"broken_upload.mp4"}:
        return EXIT_OK
    return summary["exit_code"]


# ---- entry point ---------------------------------------------------------------------
def _parse_as_of(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items or []:
        table, _, version = item.partition("=")
        if not table or not version.isdigit():
            raise UserError(f"--as-of expects TABLE=VERSION (a whole number), got {item!r}")
        out[table] = int(version)
    return out


MAX_K = 100  # results per page of `search` and `similar`
MAX_PAGE = 100


def build_parser() -> argparse.ArgumentParser:
    # -q and --debug are accepted before or after the command (`mediaintel -q process ...`
    # or `mediaintel process -q ...`): the subcommands' copies leave the value unset unless given.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="errors only: no progress, notes or model-loading output")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="tracebacks for every error, and debug logging")
    parser = _Parser(
        prog="mediaintel",
        description="Media intelligence lakehouse: ingest media, query the Delta tables, search them.",
        epilog="exit codes: 0 ok; 1 a run or a query failed; 2 bad arguments or input; 3, 4 (process, "
               "redrive): inputs were quarantined. Every command takes -q (quiet) and --debug.")
    parser.add_argument("--quiet", "-q", action="store_true", default=False, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", default=False, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kw)

    p = command(
        "process", help="ingest files or folders and materialize every stage",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=("exit codes: 0 every file is in the lakehouse through every stage; 1 a run failed; "
                "2 bad arguments;\n3 some files were quarantined at ingest (not media, unreadable, too large, ...); "
                "4 a media that\npassed ingest was lost at a later stage. The JSON summary's `losses` says which "
                "files, by stage."))
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--force", action="store_true", help="redo media already done with this code version")

    p = command("sql", help="DuckDB over the lakehouse (every table is a view)",
                epilog="exit 1 when the query fails (DuckDB says why), 2 for an unknown --as-of table or version")
    p.add_argument("query", nargs="?", help="one SQL statement (omit with --shell)")
    p.add_argument("--shell", action="store_true",
                   help="an interactive DuckDB prompt over the same views (.tables, .schema T, Ctrl-D leaves); "
                        "reads piped stdin too")
    p.add_argument("--json", dest="fmt", action="store_const", const="json", default="table")
    p.add_argument("--csv", dest="fmt", action="store_const", const="csv")
    p.add_argument("--as-of", action="append", metavar="TABLE=VERSION",
                   help="read TABLE as of an earlier Delta version (repeatable)")

    p = command("report", help="named reports over the lakehouse (--list names them)")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--list", action="store_true", help="the reports, with what each shows")
    p.add_argument("--sql", action="store_true", help="print the report's query instead of running it")
    p.add_argument("--json", dest="fmt", action="store_const", const="json", default="table")
    p.add_argument("--csv", dest="fmt", action="store_const", const="csv")
    p.add_argument("--as-of", action="append", metavar="TABLE=VERSION",
                   help="read TABLE as of an earlier Delta version (repeatable)")

    p = command("search", help="scenes, transcript segments and on-screen text that match a text, best first")
    p.add_argument("query")
    p.add_argument("--k", type=_bounded_int(1, MAX_K), default=10,
                   help=f"results per page (1 to {MAX_K}; default 10)")
    p.add_argument("--page", type=_bounded_int(1, MAX_PAGE), default=1,
                   help=f"which page of k results (1 to {MAX_PAGE}; default 1)")
    p.add_argument("--mode", choices=["hybrid", "vector", "keyword", "picture"], default="hybrid",
                   help="hybrid (default: every retriever, fused by reciprocal rank) or one retriever alone")
    p.add_argument("--kind", action="append", choices=["segment", "ocr", "scene"], dest="kinds",
                   help="only these item kinds (repeatable; default all)")
    p.add_argument("--media-kind", action="append", choices=["video", "audio", "image"], dest="media_kinds",
                   help="only media of this kind (repeatable)")
    p.add_argument("--language", action="append", dest="languages", help="only this spoken language (repeatable)")
    p.add_argument("--min-duration", type=float, help="only media at least this many seconds long")
    p.add_argument("--max-duration", type=float, help="only media at most this many seconds long")
    p.add_argument("--since", help="only media that arrived on or after this UTC date (YYYY-MM-DD)")
    p.add_argument("--until", help="only media that arrived on or before this UTC date (YYYY-MM-DD)")
    p.add_argument("--source", help="only media whose source_uri starts with this prefix (a folder)")
    p.add_argument("--min-score", type=_unit_float, metavar="COSINE",
                   help="the cosine a hit only vector search found needs (default "
                        "MEDIAINTEL_SEARCH_MIN_SCORE; 0 shows every hit, however weak)")
    p.add_argument("--local", action="store_true",
                   help="search in this process even when `mediaintel serve` is running")
    p.add_argument("--json", dest="fmt", action="store_const", const="json", default="table",
                   help="a JSON list of objects: media_id, source_uri, item_kind, start_s, end_s, score, text, "
                        "matched, matched_words, why (notes go to stderr)")

    p = command("similar", help="media similar to a media in the lakehouse (MEDIA_ID) or to a new FILE")
    p.add_argument("target", metavar="MEDIA_ID|FILE")
    p.add_argument("--k", type=_bounded_int(1, MAX_K), default=10, help=f"how many media (1 to {MAX_K}; default 10)")
    p.add_argument("--json", dest="fmt", action="store_const", const="json", default="table")

    p = command("duplicates", help="clusters of near-duplicate media (re-encoded, resized, trimmed copies)")
    p.add_argument("--json", dest="fmt", action="store_const", const="json", default="table")

    p = command("remove", help="take media out of the lakehouse and the serving index (a takedown)")
    p.add_argument("media_ids", nargs="+", metavar="MEDIA_ID")

    p = command("index", help="the serving index: stats, rebuild from the lakehouse, drop a model's vectors")
    p.add_argument("action", choices=["stats", "rebuild", "drop"])
    p.add_argument("model_id", nargs="?", help="for drop: the model_id whose vectors to remove")

    p = command("redrive", help="retry dead letters: quarantined inputs whose cause was fixed")
    p.add_argument("--stage", help="only this stage's rows (media, scenes, ocr_text, transcript_segments, ...)")
    p.add_argument("--error-type", help="only rows of this error type (see the README's table)")
    p.add_argument("--dry-run", action="store_true", help="list what would be retried; change nothing")
    p.add_argument("--queue", action="store_true",
                   help="also move the configured queues' dead letters (MEDIAINTEL_QUEUE_URL, "
                        "MEDIAINTEL_SQS_QUEUE_URL) back to their queues")

    p = command("compact", help="compact (and vacuum) the lakehouse tables: what the nightly schedule does")
    p.add_argument("--vacuum-hours", type=_bounded_int(-1), default=168,
                   help="remove files unreferenced for this many hours (default 168; -1: no vacuum)")

    p = command("serve", help="the REST API over the lakehouse and the serving index (models loaded once)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_bounded_int(0, 65535), default=8765, help="port (default 8765)")
    p.add_argument("--workers", type=_bounded_int(1, 64), default=1, help="worker processes (default 1)")

    p = command("demo", help="generate sample media, process it and print a summary")
    p.add_argument("--folder", help="where to write the sample media (default: the inbox's demo/ folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `mediaintel` script. A user's mistake (a bad value, a missing file, an unknown
    table) is one line, ``mediaintel: error: ...``, and exit 2; anything else is a bug and
    keeps its traceback. ``--debug`` shows tracebacks for both."""
    args = build_parser().parse_args(argv)
    quiet, debug = bool(getattr(args, "quiet", False)), bool(getattr(args, "debug", False))
    _setup_output(quiet, debug)
    try:
        return _run(args, quiet)
    except UserError as exc:
        if debug:
            raise
        print(f"mediaintel: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            raise
        print("mediaintel: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mediaintel sql ... | head`: the reader left, nothing to say
        sys.stderr.close()
        return 0


def _run(args, quiet: bool) -> int:
    if args.command == "process":
        summary = process(args.paths, force=args.force, quiet=quiet)
        print(json.dumps(summary))
        return summary["exit_code"]
    if args.command == "sql":
        as_of = _parse_as_of(args.as_of)
        if args.shell:
            if args.query:
                raise UserError("sql: --shell reads statements from the prompt; give no QUERY with it")
            return sql_shell(as_of, fmt=args.fmt, quiet=quiet)
        if not args.query:
            raise UserError("sql: give a QUERY, or --shell for a prompt")
        return sql(args.query, fmt=args.fmt, as_of=as_of)
    if args.command == "report":
        return report(args.name, fmt=args.fmt, list_only=args.list, show_sql=args.sql,
                      as_of=_parse_as_of(args.as_of))
    if args.command == "search":
        return search(args.query, k=args.k, fmt=args.fmt, kinds=args.kinds, page=args.page, mode=args.mode,
                      min_score=args.min_score, local=args.local, quiet=quiet,
                      media_kinds=args.media_kinds, languages=args.languages, min_duration=args.min_duration,
                      max_duration=args.max_duration, since=args.since, until=args.until, source=args.source)
    if args.command == "similar":
        return similar(args.target, k=args.k, fmt=args.fmt)
    if args.command == "duplicates":
        return duplicates(fmt=args.fmt)
    if args.command == "remove":
        return remove(args.media_ids)
    if args.command == "index":
        return index_command(args.action, args.model_id)
    if args.command == "redrive":
        summary = redrive(args.stage, args.error_type, dry_run=args.dry_run, quiet=quiet)
        if args.queue:
            summary["queue_dead_letters_moved"] = redrive_queues(dry_run=args.dry_run)
        print(json.dumps(summary, default=str))
        return summary["exit_code"]
    if args.command == "compact":
        from .resources import LakehouseResource
        from .lake.schemas import TABLES

        lake = LakehouseResource()
        for table in TABLES:
            print(json.dumps(lake.compact(table, vacuum_hours=None if args.vacuum_hours < 0 else args.vacuum_hours)))
        return 0
    if args.command == "serve":
        return serve(args.host, args.port, args.workers)
    if args.command == "demo":
        return demo(args.folder, quiet=quiet)
    return EXIT_USAGE


def serve(host: str = "127.0.0.1", port: int = 8765, workers: int = 1) -> int:
    """`mediaintel serve`: the REST API (mediaintel_dagster.api.server), until interrupted."""
    try:
        from .api.server import serve as serve_api
    except ImportError as exc:
        raise UserError(f"serve: the REST API cannot be imported here ({exc})") from None
    serve_api(host=host, port=port, workers=workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
