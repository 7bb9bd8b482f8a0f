"""The code location: assets, jobs, sensors and the resources of the embedded default.

`dagster dev` (workspace.yaml) and the `mediaintel` CLI both load ``defs`` from here.
Production swaps resources by configuration (dagster.yaml, environment), not code.
"""

from __future__ import annotations

from dagster import Definitions

from .assets import media_assets, text_embeddings, transcript_segments
from .jobs import executor_from_env, ingest_job
from .resources import LakehouseResource, LocalInboxResource, TextEmbedderResource, WhisperResource
from .sensors import inbox_sensor


def build_defs(resources: dict | None = None) -> Definitions:
    """Definitions with the default resources, or the given ones (tests, the CLI)."""
    default = {"lake": LakehouseResource(), "inbox": LocalInboxResource(),
               "whisper": WhisperResource(), "text_embedder": TextEmbedderResource()}
    return Definitions(
        assets=[media_assets, transcript_segments, text_embeddings],
        jobs=[ingest_job],
        sensors=[inbox_sensor],
        resources={**default, **(resources or {})},
        executor=executor_from_env(),
    )


defs = build_defs()
