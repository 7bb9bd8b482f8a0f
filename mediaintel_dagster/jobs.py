"""Jobs: what a sensor run or a UI backfill of an arrival window materializes."""

from dagster import AssetSelection, define_asset_job

ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.all(),
    description="Every stage for one arrival window (date x shard): what the inbox sensor requests.",
)
