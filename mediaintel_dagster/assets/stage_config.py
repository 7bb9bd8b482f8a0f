"""Run config every stage accepts (no ``from __future__ import annotations`` here: Dagster
reads these annotations at definition time)."""

from dagster import Config


class StageConfig(Config):
    force: bool = False
    """Redo every media of the window, even those already done with this code version and model."""
