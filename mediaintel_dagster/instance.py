"""The persistent local Dagster instance of the embedded default (SQLite under DAGSTER_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import AssetKey, DagsterInstance

from . import config

DEFAULT_DAGSTER_YAML = """\
# Embedded default: run, event and schedule storage in SQLite under this folder.
# Production uses PostgreSQL instead: see deploy/dagster.postgres.yaml.
telemetry:
  enabled: false
# Runs the daemon launches (`dagster dev`, `make ui`: sensor runs, the UI's) run in a process of
# the code server; this launcher tells run monitoring whether that process still lives, so a
# run whose worker was killed (kill -9, out of memory) is marked failed instead of staying
# STARTED for ever, and run retries start it again from failure, once.
run_launcher:
  module: mediaintel_dagster.launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
run_retries:
  enabled: true
  max_retries: 1
"""


_PROBE_KEY = AssetKey(["mediaintel", "instance-init-probe"])


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at $MEDIAINTEL_HOME/dagster unless set, and give it a dagster.yaml."""
    home = config.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DEFAULT_DAGSTER_YAML)
    return home


def get_instance() -> DagsterInstance:
    """The instance under DAGSTER_HOME, its storage created by one process at a time.

    Dagster's SQLite storages create their tables on first use without a lock, so two
    `mediaintel process` started at once on a fresh instance both ran CREATE TABLE and one
    crashed ("table run_tags already exists"). An exclusive file lock around the first
    touch of each storage serialises that; once the tables exist it costs a few ms.
    """
    import fcntl

    home = ensure_dagster_home()
    with open(home / ".instance-init.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = DagsterInstance.get()
            # Touch every storage so that each creates (or migrates) its tables under the lock.
            instance.get_runs(limit=1)
            instance.get_latest_materialization_event(_PROBE_KEY)
            instance.all_instigator_state()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return instance
