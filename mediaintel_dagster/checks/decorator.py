"""``partitioned_check``: @asset_check partitioned by arrival window like every stage, and
``reused_result``: the last evaluation, when the rows it judged have not changed since."""

import warnings
from typing import Optional

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, PreviewWarning, asset_check

from .keys import FINGERPRINT_KEY


def partitioned_check(partitions_def=None, **kwargs):
    """A check runs per arrival window, in the same run as its asset, and reads that
    window's rows. Dagster 1.13 marks partitioned checks as a preview and warns once per
    definition; the warning says nothing a user can act on, so it is silenced here."""
    if partitions_def is None:
        from ..partitions import arrival_partitions as partitions_def

    def deco(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PreviewWarning)
            return asset_check(partitions_def=partitions_def, **kwargs)(fn)

    return deco


def written_fingerprint(context: AssetCheckExecutionContext, asset_key: AssetKey, lake=None,
                        table: Optional[str] = None) -> Optional[str]:
    """The fingerprint (``FINGERPRINT_KEY``) the asset's newest materialization of this
    partition reported (a digest of what its stage last wrote for the window's media),
    joined with the table's version when its newest commit is not a stage's (a repair by
    hand, another tool): then the check judges the rows again."""
    from dagster import AssetRecordsFilter

    pk = context.partition_key if context.has_partition_key else None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[pk] if pk else None), limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(FINGERPRINT_KEY)
    value = getattr(value, "value", value)
    if value and lake is not None and table:
        untracked = lake.untracked_version(table)
        if untracked is not None:  # changed by something other than a stage: judge again
            value = f"{value}@{table}:v{untracked}"
    return value


def reused_result(context: AssetCheckExecutionContext, asset_key: AssetKey, fingerprint: Optional[str]):
    """The check's last evaluation of this partition as a new result, when it judged rows
    with this same fingerprint (the stage wrote nothing for the window since): no rows are
    read, and Great Expectations is not imported. None when the check must evaluate."""
    if not fingerprint:
        return None
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES

    pk = context.partition_key if context.has_partition_key else None
    history = context.instance.event_log_storage.get_asset_check_execution_history(
        context.check_specs[0].key, limit=1, status=set(COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES),
        partition_filter=PartitionKeyFilter(key=pk))
    if not history or history[0].event is None or history[0].event.dagster_event is None:
        return None
    last = history[0].event.dagster_event.event_specific_data
    meta = dict(last.metadata or {})
    previous = meta.get(FINGERPRINT_KEY)
    if getattr(previous, "value", previous) != fingerprint:
        return None
    meta["reused_from_run"] = history[0].run_id
    return AssetCheckResult(passed=last.passed, severity=last.severity, metadata=meta,
                            description=last.description)
