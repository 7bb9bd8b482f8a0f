"""A tiny code location for tests/test_postgres.py's queue test: one job whose single op
holds its run in progress for a moment, so the run queue's limits have something to limit.
Loaded by the daemon's code server (a subprocess), as a deployed code location is."""

from dagster import Config, Definitions, in_process_executor, job, op


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


defs = Definitions(jobs=[hold_job])
