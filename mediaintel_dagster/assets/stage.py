"""The stage skeleton: what every stage of the pipeline does, written once.

A stage declares its inputs (``deps``, and ``after``: the upstream stages whose rows it
reads), its table, its model resource (if any), and a compute function. ``Stage.asset()``
turns the declaration into a partitioned Dagster asset that, for one arrival window:

1. lists the window's media (``lake.window_media``);
2. decides what is due from one read of the audit trail (``plan``): a media is done when
   this stage's newest audit row for it was written by this code version and this
   (logical) model after the newest row of every ``after`` stage; a media whose upstream
   has not written it yet waits; a quarantined media is retried by the retry rule
   (``StageConfig.retry``, ``media.errors.ErrorCode.retryable``);
3. if nothing is due, returns at once: no model is loaded, nothing heavy is imported;
4. runs the compute function (per media, or once for the run's media when it batches
   across them); an exception on one media quarantines that media, never the run,
   except storage that is full or read-only (``STORAGE_ERRNOS``): that is the deployment's
   fault, not the input's, so the step fails (the run is retried) and nothing is quarantined;
5. writes every settled media's rows in one replace of the table (a media that failed, or
   now has no rows, loses its old rows), the quarantine rows, and the audit rows (with the
   model that ran, why, and where: device, compute type, batch size);
6. reports the run's numbers as metadata (the UI plots them) and to the metrics exporter,
   the bookkeeping tables it wrote (`quarantine`, `audit_log`) as materializations of
   their own assets, and a fingerprint of what it wrote, so that its checks reuse their
   last result when nothing changed;
7. shows the data in the UI (``with_ui_metadata``, ui_metadata.py): the table's column
   schema, the window's row count, a preview of a few rows, keyframe thumbnails, and the
   plotted rates; a step that fails outside the per-media quarantine fails with one line
   naming the stage, window and file (``step_failure``).

A new stage is one short module: a ``Stage(...)`` and its compute function.
"""

# No `from __future__ import annotations`: Dagster reads the compute function's annotations.

import contextvars
import errno
import hashlib
import os
import resource
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import pyarrow as pa
import pyarrow.dataset as pads
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryRequested,
    multi_asset,
)

from ..checks.keys import FINGERPRINT_KEY, ROWS_KEY, TABLE_KEY
from ..checks.stats import table_stats
from ..jobs import GPU_OP_TAGS, GPU_POOL, step_retry_policy
from ..lake import schemas
from ..media.errors import ErrorCode, MediaError, error_code
from ..media.files import display_name
from ..monitoring.metrics import record_stage
from ..partitions import arrival_partitions
from ..resources.lakehouse import LakehouseResource, utcnow
from .. import ui_metadata as ui
from .stage_config import RETRY_RULES, StageConfig

# A model stage names, in its AssetSpec metadata, the resource key of its model resource;
# ``apply_model_versions`` (called by build_defs) joins that resource's model_id to the
# stage's code version.
MODEL_RESOURCE_KEY = "mediaintel/model_resource"

Rows = Union[list, pa.Table]

# The input a stage is working on now (a media's source_uri), for the one-line failure
# description when something outside the per-media quarantine fails the step.
CURRENT_INPUT: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("mediaintel_current_input", default=None)

# Said on every partitioned asset's page: why most windows show as missing.
PARTITIONS_NOTE = (
    "\n\nPartitioned by arrival window (date × shard) from MEDIAINTEL_PARTITION_START. A window that "
    "received no files shows as missing: that is not a backlog, and materializing it writes nothing "
    "(docs/ui.md).")


# ---- what compute returns ----------------------------------------------------------------

@dataclass
class Outcome:
    """What a stage made of one media.

    ``rows``: the media's rows of the stage's table (all of them: they replace the old).
    ``error``: the whole media failed; it is quarantined and loses its old rows.
    ``item_errors``: (item uri, error) for parts that failed (a keyframe): the media's other
    rows are written, its audit status is 'partial', and the retry rule applies to it.
    ``ok_items``: item uris that read now (their old quarantine rows are cleared).
    """

    media_id: str
    rows: Rows = field(default_factory=list)
    error: Optional[MediaError] = None
    item_errors: list = field(default_factory=list)
    ok_items: list = field(default_factory=list)
    media_seconds: float = 0.0
    note: str = ""

    @property
    def row_count(self) -> int:
        return self.rows.num_rows if isinstance(self.rows, pa.Table) else len(self.rows)


class StageRun:
    """What a compute function is handed: the run's context, config, resources, and
    counters for the stage's own numbers (``stats``; ``metadata`` for non-numeric ones)."""

    def __init__(self, stage: "Stage", context: AssetExecutionContext, config: StageConfig):
        self.stage, self.context, self.config = stage, context, config
        self.partition = context.partition_key
        self.lake: LakehouseResource = context.resources.lake
        self.stats: Counter = Counter()
        self.lock = threading.Lock()  # for stats and model_seconds when media are computed in parallel
        self.metadata: dict = {}
        self.extra_results: dict[str, dict] = {}  # asset key -> metadata of the stage's other outputs
        self.model_seconds = 0.0  # time inside the model: GPU seconds when it runs on a GPU

    @property
    def log(self):
        return self.context.log

    def resource(self, key: str):
        return getattr(self.context.resources, key)

    @property
    def model(self):
        return self.resource(self.stage.model) if self.stage.model else None


# ---- the declaration -----------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """A stage: its table, inputs, model and compute function (see the module docstring).

    ``compute(run, media) -> Outcome | rows`` is called per media (raise MediaError to
    quarantine it); with ``batch=True`` it is ``compute(run, todo) -> Iterable[Outcome]``,
    called once with every due media (models that batch across media: CLIP, MiniLM).
    ``replace_keys(run, media_id)`` names the key tuples a media's write replaces (default
    ``[(media_id,)]``; the shared `embeddings` table adds item_kind and model_id).
    ``summarize(run, rows)`` adds stage-specific metadata from the rows written.
    """

    name: str
    table: str
    code_version: str
    description: str
    group: str
    compute: Callable
    deps: Sequence[str] = ("media",)
    after: Sequence[str] = ()
    model: Optional[str] = None
    resources: Sequence[str] = ()
    batch: bool = False
    # Per-media stages: how many media to compute at once (threads), from the run (its model
    # resource says what its hardware takes). Models that release the GIL and scale badly on
    # one stream gain: Whisper's beam search on 2 cores doubles its throughput on two media.
    parallel: Optional[Callable] = None
    media_columns: Sequence[str] = ("media_id", "source_uri", "kind", "has_video", "has_audio", "duration_s")
    replace_keys: Optional[Callable] = None
    summarize: Optional[Callable] = None
    config: type = StageConfig
    kinds: Sequence[str] = ("delta", "python")
    gpu: bool = False
    check_rows: Optional[dict] = None  # this stage's share of a table two stages write
    also: Sequence[AssetSpec] = ()  # other assets this stage's step produces (keyframes)
    # A stage without a model resource whose settings act as one (the shot detector's
    # parameters): model_id from the run config, for the audit trail and the done-check.
    config_model: Optional[Callable] = None
    # The ingest stage's unit is a file, not a media: it brings its own loop over the
    # window's files (``run(stage, context, config)``, yielding its results) and uses the
    # skeleton's pieces (retry rule, quarantine, audit, metadata, bookkeeping) inside it.
    run: Optional[Callable] = None
    op_name: Optional[str] = None  # the step's name in run config (default: the stage's name)

    def asset(self, partitions_def=None):
        """The Dagster asset of this stage (partitioned by arrival window)."""
        return build_stage_asset(self, partitions_def or arrival_partitions)


# ---- what is due -----------------------------------------------------------------------------

@dataclass
class Plan:
    media: list[dict]
    todo: list[dict]
    done: list[str]
    waiting: list[str]  # an `after` stage has not written them yet
    held: list[str]  # quarantined, and the retry rule does not retry them now
    latest: dict  # media_id -> this stage's newest audit row


def plan(lake: LakehouseResource, stage: Stage, media: list[dict], *, code_version: str, model_id: Optional[str],
         config: StageConfig, served_model: Optional[Callable[[], str]] = None) -> Plan:
    """Split the window's media into due, done, waiting and held, from one audit read (plus
    one read of `quarantine` when some media were quarantined).

    A media is done when this stage's newest audit row for it is 'written' by this code
    version and this logical model (``model_requested``, or ``model_id`` on rows from before
    that column), at or after the newest row of every ``after`` stage. Rows written by a
    declared fallback count as done only while this machine would still route to the
    fallback (``served_model()``): installing the real weights upgrades them, a machine
    without the weights never downgrades rows the real model wrote.
    """
    ids = [m["media_id"] for m in media]
    latest = lake.latest_audit([stage.name, *stage.after], ids)
    mine = {mid: r for (a, mid), r in latest.items() if a == stage.name}
    todo, done, waiting, retry_candidates = [], [], [], []
    for m in media:
        mid = m["media_id"]
        ups = [latest.get((a, mid)) for a in stage.after]
        if any(u is None for u in ups):
            waiting.append(mid)
            continue
        row = mine.get(mid)
        if config.force or row is None:
            todo.append(m)
            continue
        same = (row["code_version"] == code_version
                and (row.get("model_requested") or row.get("model_id")) == model_id)
        if not same or (ups and row["at"] < max(u["at"] for u in ups)):
            todo.append(m)  # new code or model, or its upstream rows changed since
        elif row["status"] == "written":
            if row.get("model_route") and served_model is not None and served_model() != row["model_id"]:
                todo.append(m)  # made by a fallback, and the configured model runs here now
            else:
                done.append(mid)
        else:  # 'quarantined' or 'partial'
            retry_candidates.append(m)
    held = []
    if retry_candidates:
        retry = _retry_decisions(lake, stage.name, retry_candidates, config)
        for m in retry_candidates:
            (todo.append(m) if retry[m["media_id"]] else held.append(m["media_id"]))
    order = {mid: i for i, mid in enumerate(ids)}
    todo.sort(key=lambda m: order[m["media_id"]])
    return Plan(media=media, todo=todo, done=done, waiting=waiting, held=held, latest=mine)


def should_retry(rule: str, codes: Iterable[str], attempts: int, max_attempts: int,
                 redrive: bool = False) -> bool:
    """The retry rule for a quarantined input (one place; the README lists it).

    'always': yes. 'never': no (a change of input, code or model, or force, still redoes it).
    'transient': yes while any of its errors is retryable (``ErrorCode.retryable``) and it was
    quarantined fewer than ``max_attempts`` times; no input is retried for ever.
    ``redrive``: someone asked for one more try (`mediaintel redrive`): yes, under any rule.
    """
    if rule not in RETRY_RULES:
        raise ValueError(f"retry={rule!r}: expected one of {', '.join(RETRY_RULES)}")
    if rule == "always" or redrive:
        return True
    if rule == "never":
        return False
    codes = list(codes)
    if not codes:  # no quarantine row left to say why (removed by hand): nothing holds it
        return True
    return any(error_code(c).retryable for c in codes) and attempts < max_attempts


def _retry_decisions(lake: LakehouseResource, stage: str, media: list[dict], config: StageConfig) -> dict[str, bool]:
    ids = sorted({m["media_id"] for m in media})
    ds = lake.dataset("quarantine")
    cols = [c for c in ("media_id", "error_type", "attempts", "redrive_requested_at") if c in ds.schema.names]
    rows = ds.to_table(columns=cols,
                       filter=(pads.field("stage") == stage) & pads.field("media_id").isin(ids)).to_pylist()
    codes: dict[str, list] = {mid: [] for mid in ids}
    attempts: Counter = Counter()
    redrive: set[str] = set()
    for r in rows:
        codes[r["media_id"]].append(r["error_type"])
        attempts[r["media_id"]] = max(attempts[r["media_id"]], r["attempts"] or 1)
        if r.get("redrive_requested_at") is not None:
            redrive.add(r["media_id"])
    return {mid: should_retry(config.retry, codes[mid], attempts[mid], config.max_attempts, mid in redrive)
            for mid in ids}


# ---- writing -----------------------------------------------------------------------------------

def quarantine_row(context: AssetExecutionContext, stage: str, *, source_uri: str, error: MediaError,
                   code_version: str, media_id: Optional[str] = None, size_bytes: Optional[int] = None,
                   mtime_ns: Optional[int] = None) -> dict:
    """A `quarantine` row for input ``stage`` could not process (``lake.quarantine`` adds attempts)."""
    return {
        # A message may quote a file name that is not UTF-8 (surrogates from os.walk): shown
        # as \xNN escapes, since a Delta string column holds valid UTF-8 only.
        "source_uri": source_uri, "stage": stage, "error_type": error.error_type,
        "message": error.message.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
        "media_id": media_id, "size_bytes": size_bytes, "mtime_ns": mtime_ns,
        "arrival_partition": context.partition_key if context.has_partition_key else None,
        "run_id": context.run.run_id, "code_version": code_version,
    }


def audit_entry(context: AssetExecutionContext, asset: str, table: str, media_id: Optional[str], *,
                code_version: str, rows: int, delta_version: Optional[int], status: str = "written",
                model_id: Optional[str] = None, source_uri: Optional[str] = None, model: Optional[dict] = None) -> dict:
    """An `audit_log` row. ``model``: the model columns (``ModelRun.audit``)."""
    return {
        "asset": asset,
        "partition": context.partition_key if context.has_partition_key else None,
        "media_id": media_id, "source_uri": source_uri, "table_name": table, "status": status,
        "run_id": context.run.run_id, "code_version": code_version, "model_id": model_id,
        "rows": rows, "delta_version": delta_version, **(model or {}),
    }


@dataclass
class ModelRun:
    """The model columns of a stage's audit rows: the logical model the stage is configured
    with, the one that ran (a fallback's id when routed, and why), and where it ran."""

    requested: Optional[str] = None
    served: Optional[str] = None
    route: Optional[str] = None
    runtime: dict = field(default_factory=dict)

    @classmethod
    def of(cls, resource) -> "ModelRun":
        if resource is None:
            return cls()
        requested = resource.model_id
        served, route = resource.route() if hasattr(resource, "route") else (requested, None)
        runtime = resource.runtime() if hasattr(resource, "runtime") else {}
        return cls(requested=requested, served=served, route=route, runtime=runtime)

    @property
    def audit(self) -> dict:
        return {"model_requested": self.requested, "model_route": self.route,
                "device": self.runtime.get("device"), "compute_type": self.runtime.get("compute_type"),
                "batch_size": self.runtime.get("batch_size")}


def fingerprint(latest: dict, written: Iterable[dict] = ()) -> str:
    """A digest of this stage's newest audit row per media of the window: it changes
    exactly when the stage writes or quarantines one of them, so a check that sees the
    same fingerprint as its last evaluation may reuse that result."""
    rows = {mid: (r["status"], str(r["at"])) for mid, r in latest.items()}
    for e in written:
        if e.get("media_id"):
            rows[e["media_id"]] = (e["status"], str(e["at"]))
    h = hashlib.sha256()
    for mid in sorted(rows):
        h.update(f"{mid}\x00{rows[mid][0]}\x00{rows[mid][1]}\n".encode())
    return h.hexdigest()[:20]


def bookkeeping_events(context: AssetExecutionContext, *, quarantine_version: Optional[int], quarantined: int,
                       audit_version: Optional[int], audited: int, stage: str) -> None:
    """Materializations of the `quarantine` and `audit_log` assets for what this step wrote
    to them, so the UI shows when and by which stage the bookkeeping tables changed."""
    partition = context.partition_key if context.has_partition_key else None
    if quarantine_version is not None:
        context.log_event(AssetMaterialization(
            asset_key="quarantine", partition=partition,
            metadata={"written_by": stage, "rows_written": quarantined, "delta_version": quarantine_version}))
    if audit_version is not None:
        context.log_event(AssetMaterialization(
            asset_key="audit_log", partition=partition,
            metadata={"written_by": stage, "rows_appended": audited, "delta_version": audit_version}))


# ---- run numbers -------------------------------------------------------------------------------

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


def stage_metadata(*, window_media_count: int, processed: int, skipped_done: int, failed: int,
                   rows: int, media_seconds: float, wall_seconds: float, delta_version: Optional[int],
                   model_id: Optional[str] = None, cpu_seconds: Optional[float] = None,
                   gpu_seconds: Optional[float] = None, **extra) -> dict:
    """The per-run numbers every stage reports; the UI plots them across runs. Building
    them only: ``record_stage`` exports them (the skeleton calls both)."""
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
    return {k: v for k, v in meta.items() if v is not None}


def quarantine_metadata(bad: Sequence[dict], limit: int = 25) -> dict:
    """What a run quarantined, for its materialization: the count, the count per error type
    and the files themselves (a Markdown table of the first ``limit``), so a run in the UI or
    a sensor's run says what it lost and which file, not only how many."""
    out = {"quarantined": len(bad),
           "quarantined_by_type": MetadataValue.json(dict(Counter(r["error_type"] for r in bad)))}
    if bad:
        def cell(text) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        lines = ["| file | error_type | message |", "| --- | --- | --- |"]
        lines += [f"| {cell(display_name(r['source_uri']))} | {r['error_type']} | {cell(r['message'])} |"
                  for r in bad[:limit]]
        if len(bad) > limit:
            lines.append(f"| ... {len(bad) - limit} more | | |")
        out["quarantined_files"] = MetadataValue.md("\n".join(lines))
    return out


# ---- versions --------------------------------------------------------------------------------

def model_code_version(code_version: str, model_id: Optional[str]) -> str:
    """The Dagster code_version of a model stage: its code version and the (logical) model
    it is configured with, so a model change (config, no code edit) marks the stage and
    everything downstream stale in the UI, and moving a step to another machine does not."""
    return f"{code_version}|{model_id}" if model_id else code_version


def stage_data_version(code_version: str, model_id: Optional[str], keys: Iterable[str]) -> DataVersion:
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


def with_model_version(assets_def, model_id: Optional[str]):
    """``assets_def`` with every asset's code_version joined with ``model_id``."""
    if not model_id:
        return assets_def
    return assets_def.map_asset_specs(
        lambda spec: spec.replace_attributes(code_version=model_code_version(spec.code_version or "", model_id))
    )


def apply_model_versions(assets_def, resources: dict):
    """``with_model_version`` for a stage whose specs name a model resource with a ``model_id``."""
    specs = getattr(assets_def, "specs", [])
    keys = {(spec.metadata or {}).get(MODEL_RESOURCE_KEY) for spec in specs} - {None}
    if len(keys) != 1:
        return assets_def
    model_id = getattr(resources.get(next(iter(keys))), "model_id", None)
    return with_model_version(assets_def, model_id if isinstance(model_id, str) else None)


# ---- the asset -----------------------------------------------------------------------------------

def build_stage_asset(stage: Stage, partitions_def):
    meta = {}
    if stage.model:
        meta[MODEL_RESOURCE_KEY] = stage.model
    if stage.table != stage.name:
        meta[TABLE_KEY] = stage.table
    if stage.check_rows:
        meta[ROWS_KEY] = stage.check_rows
    # The table's columns (with the contract's descriptions) on the asset page, and its owners.
    meta.update(ui.definition_metadata(stage.table))
    owners = ui.owners()
    specs = [AssetSpec(stage.name, description=stage.description + PARTITIONS_NOTE,
                       deps=[AssetKey(d) for d in stage.deps], code_version=stage.code_version,
                       group_name=stage.group, kinds=set(stage.kinds), metadata=meta, owners=owners)]
    specs += [s.replace_attributes(code_version=s.code_version or stage.code_version, owners=owners,
                                   description=(s.description or "") + PARTITIONS_NOTE,
                                   metadata={**(s.metadata or {}),
                                             **ui.definition_metadata(s.key.to_user_string())})
              for s in stage.also]
    gpu = {"pool": GPU_POOL, "op_tags": GPU_OP_TAGS} if stage.gpu else {}

    body = stage.run or run_stage

    def _stage(context: AssetExecutionContext, config: StageConfig):
        # One run of a window per stage at a time: a second run waits, then plans against
        # what the first wrote and finds it done (LakehouseResource.window_lock).
        partition = context.partition_key if context.has_partition_key else None
        with context.resources.lake.window_lock(stage.name, partition):
            try:
                for event in body(stage, context, config):
                    yield with_ui_metadata(stage, context, event)
            except (Failure, RetryRequested):
                raise
            except Exception as exc:  # noqa: BLE001 - said in one line, naming the file, then failed
                failure = step_failure(stage, context, exc)
                policy = step_retry_policy() if failure.allow_retries else None
                if policy is not None and context.retry_number < policy.max_retries:
                    wait = max(0.0, policy.calculate_delay(context.retry_number + 1))
                    context.log.warning(f"{failure.description}; transient: retry {context.retry_number + 1} "
                                        f"of {policy.max_retries} in {wait:.0f} s (MEDIAINTEL_STEP_RETRIES)")
                    raise RetryRequested(max_retries=policy.max_retries, seconds_to_wait=wait) from exc
                context.log.error(failure.description)
                raise failure from exc

    # The config class is the stage's own (its fields show in the launchpad).
    _stage.__annotations__["config"] = stage.config
    _stage.__name__ = stage.op_name or stage.name
    _stage.__doc__ = stage.description
    return multi_asset(
        name=stage.op_name or stage.name, specs=specs, partitions_def=partitions_def,
        required_resource_keys={"lake", *([stage.model] if stage.model else []), *stage.resources},
        description=stage.description, can_subset=bool(stage.also), **gpu,
    )(_stage)


def with_ui_metadata(stage: Stage, context: AssetExecutionContext, event):
    """A stage's MaterializeResult with what the UI shows about the data added: the table's
    column schema, the window's row count (and the table's), a Markdown preview of a few of
    the window's rows, keyframe thumbnails for `scenes`, and the rates the asset plots use
    (real_time_factor, quarantine_rate). Other events pass through unchanged."""
    if not isinstance(event, MaterializeResult) or event.asset_key is None:
        return event
    key = event.asset_key.to_user_string()
    table = stage.table if key == stage.name else key
    meta = dict(event.metadata or {})
    meta.update(_rates(meta))
    if table in schemas.SCHEMAS:
        partition = context.partition_key if context.has_partition_key else None
        objects = getattr(context.resources, "objects", None) if table == "scenes" else None
        try:
            meta.update(ui.window_metadata(context.resources.lake, table, partition, objects=objects,
                                           check_rows=stage.check_rows if key == stage.name else None))
        except Exception as exc:  # noqa: BLE001 - a preview never fails a run that wrote its rows
            context.log.warning(f"{key}: no preview for window {partition}: {ui.one_line(exc)}")
    return MaterializeResult(asset_key=event.asset_key, metadata=meta, data_version=event.data_version,
                             check_results=event.check_results, tags=event.tags)


def _rates(meta: dict) -> dict:
    """The plotted rates, with stable keys, present only when the run had inputs (a no-op
    run adds no zero to the plot)."""
    def num(k):
        v = meta.get(k)
        return getattr(v, "value", v)

    out = {}
    media_s, wall = num("media_seconds"), num("wall_seconds")
    if media_s and wall:
        out["real_time_factor"] = round(media_s / wall, 2)  # seconds of media per second of wall time
    if num("media_processed"):
        out["quarantine_rate"] = ui.rate(num("media_failed") or 0, num("media_processed"))
    elif num("files_in_window") and (num("new_media") or num("quarantined")):
        out["quarantine_rate"] = ui.rate(num("quarantined") or 0, num("files_in_window"))
    return out


# Failures that may pass on their own: storage and network I/O (OSError covers ConnectionError,
# TimeoutError and delta-rs's object store errors), memory, a lake commit that lost its races
# past LakehouseResource's own retries, botocore's transport errors. Matched by class name
# along the MRO, so no client library is imported to tell.
TRANSIENT_ERRORS = frozenset({"OSError", "MemoryError", "OutOfMemoryError", "CommitFailedError", "BotoCoreError"})


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the step may help: a transient error (``TRANSIENT_ERRORS``), an AWS
    reply of 5xx, 429 or throttling, or one of those as a cause. Everything else (a bug,
    a configuration error) fails at once."""
    seen = 0
    while exc is not None and seen < 8:
        if {c.__name__ for c in type(exc).__mro__} & TRANSIENT_ERRORS:
            return True
        reply = getattr(exc, "response", None)
        if isinstance(reply, dict):  # botocore ClientError
            status = reply.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            code = str(reply.get("Error", {}).get("Code", ""))
            if status >= 500 or status == 429 or "Throttl" in code or code == "SlowDown":
                return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def step_failure(stage: Stage, context: AssetExecutionContext, exc: BaseException) -> Failure:
    """One line that says what went wrong and on which file, as a Failure whose
    description is that line and whose metadata names the stage, window and file. A transient
    error is retried (``jobs.step_retry_policy``) before the step fails with it; any other
    fails the step at once."""
    partition = context.partition_key if context.has_partition_key else None
    where = CURRENT_INPUT.get()
    transient = is_transient(exc)
    line = (f"{stage.name} failed in window {partition}"
            + (f" on {display_name(where)}" if where else " (not inside one file: the window's write or plan)")
            + f": {ui.one_line(exc)}" + ("" if transient else " (not transient: not retried)"))
    return Failure(description=line, allow_retries=transient,
                   metadata={"stage": stage.name, "partition": str(partition), "file": where or "",
                             "error": ui.one_line(exc), "transient": transient})


def run_stage(stage: Stage, context: AssetExecutionContext, config: StageConfig):
    clock = Stopwatch()
    if config.retry not in RETRY_RULES:
        raise ValueError(f"{stage.name}: retry={config.retry!r}: expected one of {', '.join(RETRY_RULES)}")
    run = StageRun(stage, context, config)
    lake = run.lake
    model_res = run.model
    requested = (model_res.model_id if model_res is not None
                 else stage.config_model(config) if stage.config_model else None)
    served_model = (lambda: model_res.route()[0]) if hasattr(model_res, "route") else None
    media = lake.window_media(run.partition, columns=list(stage.media_columns))
    p = plan(lake, stage, media, code_version=stage.code_version, model_id=requested, config=config,
             served_model=served_model)
    ids = [m["media_id"] for m in media]
    context.log.info(
        f"window {run.partition}: {len(media)} media; {len(p.todo)} due, {len(p.done)} done"
        + (f", {len(p.waiting)} waiting for {', '.join(stage.after)}" if p.waiting else "")
        + (f", {len(p.held)} held in quarantine" if p.held else ""))

    # The compute function's own time (decode and models, not plan, writes or checks): what
    # `make bench` subtracts from a run's wall time to get the orchestration overhead.
    compute_clock = Stopwatch()
    outcomes = list(_compute(run, p.todo)) if p.todo else []
    compute_seconds = compute_clock.seconds
    model = ModelRun.of(model_res) if (model_res is not None and outcomes) else ModelRun(requested=requested)
    served = model.served or requested
    if model.route and outcomes:  # said once per run that computes, not on no-op reruns
        context.log.warning(f"{stage.name}: {model.route}; {served} ran instead of {requested}.")

    version = None
    entries: list[dict] = []
    bad: list[dict] = []
    at = utcnow()
    if outcomes:
        by_id = {m["media_id"]: m for m in p.todo}
        tables = [lake.conform(stage.table, o.rows) for o in outcomes if o.error is None and o.row_count]
        data = pa.concat_tables(tables) if tables else schemas.schema(stage.table).empty_table()
        keys = [k for o in outcomes for k in _keys(stage, run, o.media_id)]
        version = lake.replace(stage.table, data, keys=keys, writer=stage.name)
        ok_uris, failed_media = [], []
        for o in outcomes:
            src = by_id[o.media_id].get("source_uri")
            if o.error is not None:
                failed_media.append(quarantine_row(context, stage.name, source_uri=src or o.media_id, error=o.error,
                                                   code_version=stage.code_version, media_id=o.media_id))
                continue
            bad += [quarantine_row(context, stage.name, source_uri=uri, error=err, code_version=stage.code_version,
                                   media_id=o.media_id) for uri, err in o.item_errors]
            ok_uris += ([src] if src else []) + list(o.ok_items)
            entries.append(audit_entry(context, stage.name, stage.table, o.media_id, code_version=stage.code_version,
                                       rows=o.row_count, delta_version=version, model_id=served, model=model.audit,
                                       status="partial" if o.item_errors else "written"))
        bad += failed_media
        q_version = lake.quarantine(bad) if bad else None
        lake.clear_quarantine(stage.name, ok_uris)
        entries += [audit_entry(context, stage.name, "quarantine", r["media_id"], code_version=stage.code_version,
                                rows=1, delta_version=q_version, status="quarantined", model_id=served,
                                source_uri=r["source_uri"], model=model.audit) for r in failed_media]
        entries = [{**e, "at": at} for e in entries]
        a_version = lake.audit(entries, at=at)
        bookkeeping = dict(quarantine_version=q_version, quarantined=len(bad), audit_version=a_version,
                           audited=len(entries), stage=stage.name)
        data_rows = data
    else:
        data_rows = schemas.schema(stage.table).empty_table()
        bookkeeping = None

    failed = [o for o in outcomes if o.error is not None or o.item_errors]
    for o in outcomes:
        if o.error is not None:
            context.log.warning(f"{stage.name}: quarantined {o.media_id}: {o.error.message}")
    extra = (stage.summarize(run, data_rows) or {}) if stage.summarize and outcomes else {}
    wall = clock.seconds
    on_gpu = str(model.runtime.get("device", "")).startswith("cuda")
    meta = stage_metadata(
        window_media_count=len(media), processed=len(outcomes), skipped_done=len(p.done), failed=len(failed),
        rows=data_rows.num_rows, media_seconds=sum(o.media_seconds for o in outcomes), wall_seconds=wall,
        delta_version=version if version is not None else lake.version(stage.table), model_id=served,
        cpu_seconds=clock.cpu_seconds, gpu_seconds=run.model_seconds if on_gpu else None,
        media_waiting=len(p.waiting), still_quarantined=len(p.held),
        compute_seconds=round(compute_seconds, 3) if outcomes else None,
        model_seconds=round(run.model_seconds, 3) if run.model_seconds else None,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **quarantine_metadata(bad),
        **({"model_requested": requested, "model_route": model.route or "configured model",
            **{k: v for k, v in model.runtime.items() if v is not None}} if requested and outcomes else {}),
        **run.stats, **run.metadata,
        **(table_stats(stage.table, data_rows) if data_rows.num_rows else {}),
        **extra,
    )
    meta[FINGERPRINT_KEY] = fingerprint(p.latest, entries)
    record_stage(stage.name, run.partition, meta)
    dv = stage_data_version(stage.code_version, requested, ids)
    selected = context.selected_asset_keys
    if AssetKey(stage.name) in selected:
        yield MaterializeResult(asset_key=stage.name, metadata=meta, data_version=dv)
    for spec in stage.also:
        if spec.key in selected:
            key = spec.key.to_user_string()
            yield MaterializeResult(asset_key=key, data_version=dv,
                                    metadata={**run.extra_results.get(key, {}), FINGERPRINT_KEY: meta[FINGERPRINT_KEY]})
    if bookkeeping:  # after the stage's own results, which come first in the run's events
        bookkeeping_events(context, **bookkeeping)


def _compute(run: StageRun, todo: list[dict]) -> Iterable[Outcome]:
    """The compute function over the due media; one media's exception quarantines it."""
    stage = run.stage
    if stage.batch:
        yield from stage.compute(run, todo)
        return
    workers = min(len(todo), max(1, int(stage.parallel(run)))) if stage.parallel else 1
    if workers > 1:
        # Each media in its own context (CURRENT_INPUT names its file); outcomes come back in
        # the window's order, whatever finishes first.
        with ThreadPoolExecutor(workers, thread_name_prefix=stage.name) as pool:
            futures = [pool.submit(contextvars.copy_context().run, _compute_one, run, m) for m in todo]
            for n, (m, f) in enumerate(zip(todo, futures), 1):
                yield _outcome(run, m, n, len(todo), *f.result())
        return
    for n, m in enumerate(todo, 1):
        yield _outcome(run, m, n, len(todo), *_compute_one(run, m))


def _compute_one(run: StageRun, m: dict):
    """(result, None) or (None, the exception): one media's compute, never raising."""
    token = CURRENT_INPUT.set(m.get("source_uri") or m["media_id"])
    try:
        return run.stage.compute(run, m), None
    except Exception as exc:  # noqa: BLE001 - one bad media must not stop the window
        return None, exc
    finally:
        CURRENT_INPUT.reset(token)


# A full disk, an exhausted quota or a read-only mount fails the step rather than quarantine
# the media: every other media of the window would fail the same way, and a quarantine row per
# media would spend their retry attempts (then dead-letter good input) on the deployment's fault.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def _outcome(run: StageRun, m: dict, n: int, total: int, out, exc) -> Outcome:
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        CURRENT_INPUT.set(m.get("source_uri") or m["media_id"])  # the step's one line names the file
        raise exc
    if exc is not None:
        err = exc if isinstance(exc, MediaError) else MediaError(
            ErrorCode.DECODE_ERROR, f"{os.path.basename(m.get('source_uri') or '')}: "
                                    f"{exc.__class__.__name__}: {exc}")
        return Outcome(m["media_id"], error=err)
    o = out if isinstance(out, Outcome) else Outcome(m["media_id"], rows=out)
    label = f"[{n}/{total}] {os.path.basename(m.get('source_uri') or m['media_id'])}"
    run.log.info(f"{label}: {o.row_count} row(s)" + (f", {o.note}" if o.note else ""))
    return o


def _keys(stage: Stage, run: StageRun, media_id: str) -> list[tuple]:
    return stage.replace_keys(run, media_id) if stage.replace_keys else [(media_id,)]


def bookkeeping_specs(stage_keys: Sequence[str], partitions_def=None) -> list[AssetSpec]:
    """`quarantine` and `audit_log` as assets of the graph, downstream of every stage that
    writes them; each step reports what it wrote to them as their materializations."""
    deps = [AssetKey(k) for k in stage_keys]
    common = {"group_name": "bookkeeping", "kinds": {"delta"}, "partitions_def": partitions_def or arrival_partitions,
              "deps": deps, "owners": ui.owners()}
    return [
        AssetSpec("quarantine", description=(
            "One row per input a stage could not process (source_uri, stage, error_type from "
            "media.errors.ErrorCode, message, attempts, retryable). Written by every stage; a "
            "materialization here names the stage and window that wrote it. Delta table `quarantine`."),
                  metadata=ui.definition_metadata("quarantine"), **common),
        AssetSpec("audit_log", description=(
            "One row per media a stage wrote, partly wrote or quarantined: asset, partition, run_id, "
            "code_version, model_id (the model that ran), model_requested and model_route (the configured "
            "model and why another ran), device, compute_type, batch_size, rows, delta_version, at. "
            "Append-only; the stages' done-check reads it. Delta table `audit_log`."),
                  metadata=ui.definition_metadata("audit_log"), **common),
    ]


__all__ = ["MODEL_RESOURCE_KEY", "ModelRun", "Outcome", "Plan", "Stage", "StageRun", "Stopwatch", "apply_model_versions",
           "audit_entry", "bookkeeping_specs", "fingerprint", "model_code_version", "plan", "quarantine_row",
           "is_transient", "should_retry", "stage_data_version", "stage_metadata", "with_model_version"]
