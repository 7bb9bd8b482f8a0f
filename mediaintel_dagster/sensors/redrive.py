"""The redrive sensor: windows holding quarantine rows marked for redrive get a run."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor
import pyarrow.dataset as pads

from ..jobs import ingest_job
from ..resources import LakehouseResource


@sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Requests one run of each arrival window that holds quarantine rows marked for redrive "
        "(redrive_job or `mediaintel redrive`). The run key names the window and the time of the mark, so "
        "each request is made once; the run retries the marked inputs whatever the retry rule says."
    ),
)
def redrive_sensor(context: SensorEvaluationContext, lake: LakehouseResource):
    if lake.delta_table("quarantine") is None:
        return SkipReason("no quarantine table yet")
    ds = lake.dataset("quarantine")
    if "redrive_requested_at" not in ds.schema.names:
        return SkipReason("nothing marked for redrive")
    rows = ds.to_table(columns=["arrival_partition", "redrive_requested_at"],
                       filter=pads.field("redrive_requested_at").is_valid()).to_pylist()
    latest: dict[str, object] = {}
    for r in rows:
        if r["arrival_partition"]:
            latest[r["arrival_partition"]] = max(latest.get(r["arrival_partition"], r["redrive_requested_at"]),
                                                 r["redrive_requested_at"])
    if not latest:
        return SkipReason("nothing marked for redrive")
    return SensorResult(run_requests=[
        RunRequest(run_key=f"redrive:{window}:{marked.isoformat()}", partition_key=window,
                   tags={"mediaintel/trigger": "redrive"})
        for window, marked in sorted(latest.items())
    ])
