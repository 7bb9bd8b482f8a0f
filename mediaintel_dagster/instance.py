"""The persistent local Dagster instance of the embedded default (SQLite under DAGSTER_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterInstance

from . import config

DEFAULT_DAGSTER_YAML = """\
# Embedded default: run, event and schedule storage in SQLite under this folder.
# Production uses PostgreSQL instead: see deploy/dagster.postgres.yaml.
telemetry:
  enabled: false
"""


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
    ensure_dagster_home()
    return DagsterInstance.get()
