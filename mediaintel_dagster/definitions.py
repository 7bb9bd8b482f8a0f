"""The code location: assets, checks, jobs, sensors and the resources of each deployment.

`dagster dev` (workspace.yaml) and the `mediaintel` CLI both load ``defs`` from here.
Resources are chosen per deployment in one place (``RESOURCES``, picked by
``MEDIAINTEL_DEPLOYMENT``); the asset code is the same everywhere.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec, Definitions, EnvVar

from . import config
from .assets import STAGES, bookkeeping_specs
from .assets.stage import apply_model_versions
from .checks import build_checks
from .jobs import (executor_from_env, index_job, ingest_job, lake_maintenance_job, lake_maintenance_schedule,
                   redrive_job)
from .monitoring.logs import dagster_loggers
from .partitions import arrival_partitions_def
from .resources import (
    ClipResource, LakehouseResource, LocalInboxResource, ObjectStoreResource, OcrResource, TextEmbedderResource,
    WhisperResource,
)
from .sensors import inbox_sensor, index_guard_sensor, redrive_sensor
from .ui_metadata import definition_metadata, owners


def _models() -> dict:
    return {"ocr": OcrResource(), "clip": ClipResource(), "whisper": WhisperResource(),
            "text_embedder": TextEmbedderResource()}


def index_resources(deployment: str | None = None) -> dict:
    """The serving index: the vector backend MEDIAINTEL_INDEX_BACKEND names (`lancedb`, the
    embedded default, or `pinecone`) and the keyword index (LanceDB full-text search in
    both: Pinecone has none). Production takes the Pinecone key and host through EnvVar."""
    from .resources.lance_index import LanceTextIndexResource, LanceVectorIndexResource

    backend = (config.get("MEDIAINTEL_INDEX_BACKEND") or "lancedb").strip().lower()
    if backend == "lancedb":
        vector = LanceVectorIndexResource()
    elif backend == "pinecone":
        from .resources.pinecone_index import PineconeVectorIndexResource

        production = (deployment or config.deployment()) == "production"
        vector = (PineconeVectorIndexResource(api_key=EnvVar("PINECONE_API_KEY"), host=EnvVar("PINECONE_INDEX_HOST"))
                  if production else PineconeVectorIndexResource())
    else:
        raise ValueError(f"MEDIAINTEL_INDEX_BACKEND={backend!r}: expected lancedb or pinecone")
    return {"vector_index": vector, "text_index": LanceTextIndexResource()}


# One resource set per deployment (the way hooli-data-eng-pipelines keeps one dict per
# environment). `local` reads the embedded default's folders from config; `production`
# takes its deploy values from the environment of the code server and of every run pod
# through Dagster EnvVar (shown, not resolved, in the UI), and credentials never appear
# here: delta-rs and boto read AWS_* from that same environment.
RESOURCES = {
    "local": lambda: {"lake": LakehouseResource(), "inbox": LocalInboxResource(), "objects": ObjectStoreResource(),
                      **_models(), **index_resources("local")},
    "production": lambda: {"lake": LakehouseResource(root=EnvVar("MEDIAINTEL_LAKE")),
                           "inbox": LocalInboxResource(roots=[EnvVar("MEDIAINTEL_INBOX")]),
                           "objects": ObjectStoreResource(root=EnvVar("MEDIAINTEL_OBJECTS")),
                           **_models(), **index_resources("production")},
}


def queue_parts() -> tuple[list, dict]:
    """The queue sensors and their resources, for the queues configured (none by default):
    MEDIAINTEL_QUEUE_URL turns on rabbitmq_ingest_sensor, MEDIAINTEL_SQS_QUEUE_URL
    sqs_ingest_sensor; either one makes the inbox resource also list the files they announced."""
    from .resources.queues import QueuedInboxResource, RabbitMQQueueResource, SqsQueueResource
    from .sensors.queue import rabbitmq_ingest_sensor, sqs_ingest_sensor

    sensors, res = [], {}
    if config.get("MEDIAINTEL_QUEUE_URL"):
        sensors.append(rabbitmq_ingest_sensor)
        res["rabbitmq_queue"] = RabbitMQQueueResource(url=config.get("MEDIAINTEL_QUEUE_URL"),
                                                      queue=config.get("MEDIAINTEL_QUEUE_NAME"),
                                                      delivery_limit=int(config.get("MEDIAINTEL_QUEUE_DELIVERY_LIMIT")))
    if config.get("MEDIAINTEL_SQS_QUEUE_URL"):
        sensors.append(sqs_ingest_sensor)
        res["sqs_queue"] = SqsQueueResource(queue_url=config.get("MEDIAINTEL_SQS_QUEUE_URL"),
                                            dead_letter_queue_url=config.get("MEDIAINTEL_SQS_DLQ_URL") or "")
    if sensors:
        res["inbox"] = QueuedInboxResource(roots=config.inbox_roots())
    return sensors, res


def build_defs(resources: dict | None = None, deployment: str | None = None) -> Definitions:
    """Definitions with the deployment's resources (default ``MEDIAINTEL_DEPLOYMENT``), the
    given ones overriding them (tests, the CLI). Assets and checks are built here, with the
    partitions of the current configuration."""
    queue_sensors, queue_resources = queue_parts()
    resources = {**RESOURCES[deployment or config.deployment()](), **queue_resources, **(resources or {})}
    partitions = arrival_partitions_def()
    # A model stage's code_version carries its configured (logical) model_id: a model
    # change shows the stage and its downstream stale in the UI (docs/trust.md, "Lineage").
    assets = [apply_model_versions(stage.asset(partitions), resources) for stage in STAGES]
    table_writers = [s.name for s in STAGES if s.table == "embeddings"]
    return Definitions(
        assets=[
            *assets,
            # The bookkeeping every stage writes, and the table two stages share, as assets
            # of the graph: lineage from every writer, materializations reported by them.
            *bookkeeping_specs([s.name for s in STAGES], partitions),
            AssetSpec("embeddings", deps=[AssetKey(k) for k in table_writers], group_name="search",
                      kinds={"delta"}, partitions_def=partitions, owners=owners(),
                      metadata=definition_metadata("embeddings"),
                      description="The shared vector table (Delta `embeddings`): scene vectors from "
                                  "scene_embeddings and text vectors from text_embeddings, keyed by media_id, "
                                  "item_kind, item_index and model_id."),
        ],
        # Contract checks (blocking) and drift checks (WARN) for every table-writing asset.
        asset_checks=build_checks(assets),
        loggers=dagster_loggers(),
        jobs=[ingest_job, index_job, lake_maintenance_job, redrive_job],
        schedules=[lake_maintenance_schedule],
        sensors=[inbox_sensor, index_guard_sensor, redrive_sensor, *queue_sensors],
        resources=resources,
        executor=executor_from_env(),
    )


defs = build_defs()
