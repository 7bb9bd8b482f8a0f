"""The code location: assets, jobs, sensors and the resources of the embedded default.

`dagster dev` (workspace.yaml) and the `mediaintel` CLI both load ``defs`` from here.
Production swaps resources by configuration (dagster.yaml, environment), not code.
"""

from __future__ import annotations

from dagster import Definitions

from .assets import media_assets, ocr_text, scene_embeddings, scenes, text_embeddings, transcript_segments
from .assets.common import apply_model_versions
from .checks import build_checks
from .jobs import executor_from_env, ingest_job
from .monitoring.logs import dagster_loggers
from .resources import (
    ClipResource, LakehouseResource, LocalInboxResource, ObjectStoreResource, OcrResource, TextEmbedderResource,
    WhisperResource,
)
from .sensors import inbox_sensor


def build_defs(resources: dict | None = None) -> Definitions:
    """Definitions with the default resources, or the given ones (tests, the CLI)."""
    default = {"lake": LakehouseResource(), "inbox": LocalInboxResource(), "objects": ObjectStoreResource(),
               "ocr": OcrResource(), "clip": ClipResource(), "whisper": WhisperResource(),
               "text_embedder": TextEmbedderResource()}
    resources = {**default, **(resources or {})}
    # A model stage's code_version carries its configured model_id: a model change shows
    # the stage and its downstream stale in the UI (docs/trust.md, "Lineage").
    assets = [apply_model_versions(a, resources) for a in [media_assets, scenes, ocr_text, scene_embeddings,
                                                                transcript_segments, text_embeddings]]
    return Definitions(
        assets=assets,
        # Contract checks (blocking) and drift checks (WARN) for every table-writing asset.
        asset_checks=build_checks(assets),
        loggers=dagster_loggers(),
        jobs=[ingest_job],
        sensors=[inbox_sensor],
        resources=resources,
        executor=executor_from_env(),
    )


defs = build_defs()
