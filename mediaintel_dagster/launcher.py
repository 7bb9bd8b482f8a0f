"""A run launcher for one machine whose dead runs Dagster's run monitoring can see.

Dagster's ``DefaultRunLauncher`` starts each run in a process of the code server, but it
cannot tell the run monitoring daemon whether that process still lives, so a run worker that
was killed (``kill -9``, the out-of-memory killer) stayed STARTED for ever, and with the
one-run-per-shard limit it held its shard's queue for ever too. ``LocalRunLauncher`` answers
the health check from the worker's pid (the ``RUN_START`` event it wrote): the daemon then
marks such a run failed, and run retries start it again from failure.

It assumes what ``dagster dev`` and a single-machine daemon do: the code server runs on the
daemon's host. On Kubernetes use ``K8sRunLauncher`` (k8s/values.yaml), which has its own check.
"""

from __future__ import annotations

import os

from dagster import DagsterEventType, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process of this host (a zombie, dead but not yet reaped by
    its parent, is not; a process of another user is)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): kill(0) said it exists
        return True


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` plus a run worker health check for run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        records = self._instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START, limit=1).records
        event = records[0].event_log_entry.dagster_event if records else None
        pid = event.pid if event is not None else None
        if not pid:
            # Launched but not started yet: the monitoring's start timeout covers that.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START yet")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone (killed, or out of "
                                                         "memory) and the run never ended")
