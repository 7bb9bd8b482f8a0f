"""Jobs, the executor, and how a step asks for a GPU.

The executor is configuration, not code (``MEDIAINTEL_EXECUTOR``):

- ``in_process`` (embedded default): one process per run, so each model loads once per
  run and a run starts in about a second instead of 8-9 s of subprocess start-up.
- ``multiprocess``: a process per step, steps in parallel on one machine.
- ``k8s``: dagster-k8s's ``k8s_job_executor``, a pod per step; steps tagged with
  ``GPU_OP_TAGS`` get a GPU and land on the ``gpu`` node pool (k8s/values.yaml).
"""

from . import config

from typing import Optional

from dagster import (AssetSelection, Backoff, Config, DefaultScheduleStatus, ExecutorDefinition, Jitter,
                     MetadataValue, OpExecutionContext, RetryPolicy, ScheduleDefinition, define_asset_job,
                     in_process_executor, job, multiprocess_executor, op)

from .monitoring.logs import RUN_CONFIG_LOGGERS

# Dagster concurrency pool of GPU steps: limit it in dagster.yaml (concurrency.pools) to the
# number of GPUs so that steps queue for a GPU instead of fighting over its memory.
GPU_POOL = "gpu"

# Per-step pod settings read by k8s_job_executor; ignored by the other executors.
GPU_OP_TAGS = {
    "mediaintel/device": "gpu",
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        "pod_spec_config": {
            "node_selector": {"mediaintel/pool": GPU_POOL},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
}


def executor_from_env() -> ExecutorDefinition:
    name = config.get("MEDIAINTEL_EXECUTOR")
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"MEDIAINTEL_EXECUTOR={name!r}: expected in_process, multiprocess or k8s")


def step_retry_policy() -> Optional[RetryPolicy]:
    """Retries of a failed stage step within its run (``MEDIAINTEL_STEP_RETRIES``), with
    exponential backoff and jitter, read when a step fails. Only transient failures use it:
    the stage skeleton asks Dagster for the retry (``RetryRequested``, assets/stage.py); a bug
    or a configuration error fails at once, and one media's bad input is a quarantine row,
    never a step failure. Not the jobs' ``op_retry_policy``: that also restarts a step that
    Ctrl-C or a run termination interrupted."""
    retries = config.get_int("MEDIAINTEL_STEP_RETRIES")
    if retries <= 0:
        return None
    return RetryPolicy(max_retries=retries, delay=config.get_float("MEDIAINTEL_STEP_RETRY_DELAY_S"),
                       backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.all(),
    description="Every stage for one arrival window (date x shard): what the inbox sensor requests.",
    # Names the console logger so MEDIAINTEL_LOG_FORMAT=json takes effect (monitoring/logs.py).
    config=RUN_CONFIG_LOGGERS,
)

# The serving index alone for one window: what index_guard_sensor requests when a blocking
# check upstream failed (its run is then not held back by that check: the index stage
# itself takes the window's media out of the index).
index_job = define_asset_job(
    "index_job",
    selection=AssetSelection.assets("index_entries"),
    description="The index_entries stage alone for one arrival window (index_guard_sensor, or by hand).",
    config=RUN_CONFIG_LOGGERS,
)


# ---- lake maintenance ------------------------------------------------------------------

@op(description="Compact every lakehouse table (audit_log Z-ordered by media_id, so the stages' done-check "
                "reads stay flat as it grows) and VACUUM files unreferenced for 7 days.",
    required_resource_keys={"lake"})
def compact_lake(context: OpExecutionContext) -> None:
    from .lake.schemas import TABLES

    for table in TABLES:
        result = context.resources.lake.compact(table, vacuum_hours=168)
        context.log.info(f"{table}: {result}")


@job(description="Lake maintenance: compaction and vacuum of every Delta table (lake_maintenance_schedule).")
def lake_maintenance_job():
    compact_lake()


lake_maintenance_schedule = ScheduleDefinition(
    name="lake_maintenance_schedule", job=lake_maintenance_job, cron_schedule="0 3 * * *", default_status=DefaultScheduleStatus.RUNNING,
    description="Nightly compaction: every run appends small files to audit_log and quarantine.",
)


# ---- dead letters ----------------------------------------------------------------------

class RedriveConfig(Config):
    """Which quarantine rows to retry once more: by stage, by error type (both optional; all when neither)."""

    stage: Optional[str] = None
    error_type: Optional[str] = None


@op(description="Mark quarantine rows (dead letters: permanent errors, or retryable ones out of attempts) for one "
                "more try, after their cause was fixed (a raised size limit, a restored mount, a fixed bug). "
                "redrive_sensor then requests a run of each window they belong to.",
    required_resource_keys={"lake"})
def request_redrive(context: OpExecutionContext, config: RedriveConfig) -> None:
    from collections import Counter

    from .media.errors import error_code

    if config.error_type is not None:
        error_code(config.error_type)  # an unknown type fails here, with the list of known ones
    rows = context.resources.lake.request_redrive(config.stage, config.error_type)
    counts = Counter((r["stage"], r["error_type"]) for r in rows)
    context.log.info(f"marked {len(rows)} quarantine row(s) for redrive: "
                     + (", ".join(f"{s}/{e}: {n}" for (s, e), n in sorted(counts.items())) or "none matched"))
    context.add_output_metadata({"marked": len(rows),
                                 "by_stage_and_type": MetadataValue.json({f"{s}/{e}": n for (s, e), n in counts.items()})})


@job(description="Dead letters: retry quarantined inputs once more (config: stage, error_type); "
                 "redrive_sensor requests the runs. `mediaintel redrive` does the same from a shell.")
def redrive_job():
    request_redrive()
