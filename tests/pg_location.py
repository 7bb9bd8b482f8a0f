"""A tiny code location for tests/test_postgres.py's queue tests: a job whose single op
holds its run in progress for a moment, so the run queue's limits have something to limit,
and one whose op holds a slot of the GPU pool the pipeline's GPU steps declare.
Loaded by the daemon's code server (a subprocess), as a deployed code location is."""

from dagster import Config, Definitions, In, Nothing, in_process_executor, job, op

from mediaintel_dagster.jobs import GPU_POOL


class HoldConfig(Config):
    seconds: float = 1.5


@op
def hold(config: HoldConfig) -> None:
    import time

    time.sleep(config.seconds)


# In-process: a run starts in about a second instead of a subprocess per step.
@job(executor_def=in_process_executor)
def hold_job():
    hold()


@op(pool=GPU_POOL, ins={"after": In(Nothing)})
def gpu_hold(config: HoldConfig) -> None:
    """A stand-in GPU step: the same pool as scenes, scene_embeddings and transcript_segments."""
    import time

    time.sleep(config.seconds)


# A CPU step first, as in the pipeline (ingest, then the GPU stages): the run is dequeued
# and its GPU step waits inside the run for a slot of the pool.
@job(executor_def=in_process_executor)
def gpu_hold_job():
    gpu_hold(hold())


@op
def dying(context, config: HoldConfig) -> None:
    """Holds its run for ``seconds`` (long enough to be killed), except in a retry of the run."""
    import time

    time.sleep(0.5 if context.run.tags.get("dagster/retry_number") else config.seconds)


@job(executor_def=in_process_executor)
def dying_job():
    dying()


defs = Definitions(jobs=[hold_job, gpu_hold_job, dying_job])
