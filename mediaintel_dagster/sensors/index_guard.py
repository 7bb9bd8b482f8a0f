"""The index guard: a blocking check that fails upstream of the serving index takes the
window's media out of the index."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from ..assets.index import upstream_check_keys
from ..jobs import index_job


@sensor(
    job=index_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Watches the blocking contract checks of every stage upstream of the serving index. When one fails "
        "for an arrival window (the run then skips index_entries, so the index would keep serving the media's "
        "old entries), it requests index_job for that window with force: the index stage sees the failed check "
        "and takes the window's media out of the index, quarantined as check_failed, until the rows pass again. "
        "The cursor is the newest check evaluation seen, so each failure is acted on once."
    ),
)
def index_guard_sensor(context: SensorEvaluationContext):
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as S

    seen = int(context.cursor or 0)
    newest = seen
    failed: dict[str, int] = {}
    for key in upstream_check_keys():
        for rec in context.instance.event_log_storage.get_asset_check_execution_history(
                key, limit=100, status={S.FAILED}):
            if rec.id > seen and rec.partition:
                failed[rec.partition] = max(failed.get(rec.partition, 0), rec.id)
            newest = max(newest, rec.id)
    if not failed:
        return SensorResult(skip_reason=SkipReason("no upstream check failed since the last tick"),
                            cursor=str(newest))
    return SensorResult(
        run_requests=[RunRequest(run_key=f"index-guard:{p}:{i}", partition_key=p,
                                 run_config={"ops": {"index_entries": {"config": {"force": True}}}},
                                 tags={"mediaintel/trigger": "index-guard"})
                      for p, i in sorted(failed.items())],
        cursor=str(newest))
