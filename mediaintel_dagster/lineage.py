"""Which assets are stale, and why: the same answer the Dagster UI shows.

A stage's Dagster code_version is its code version joined with the model_id of its
configured model resource (``assets.common.model_code_version``), so after a model change
the stage reads "code version changed" and everything downstream "upstream stale".
This computes those statuses from the instance, for scripts, tests and the CLI.
"""

from __future__ import annotations

from dagster import DagsterInstance, Definitions


def stale_status(instance: DagsterInstance, defs: Definitions, partition_key: str | None = None) -> dict[str, dict]:
    """{asset key: {"status": "FRESH"|"STALE"|"MISSING", "causes": [str, ...]}} for every asset."""
    # Dagster's own resolver, built as its workspace context builds it for the UI (these
    # are internal modules: pinned Dagster 1.13.27, tests/test_trust.py guards them).
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.definitions.temporal_context import TemporalContext
    from dagster._time import get_current_datetime

    asset_graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance, asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)
    out = {}
    for key in sorted(asset_graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        pk = partition_key if asset_graph.get(key).is_partitioned else None
        out[key.to_user_string()] = {
            "status": resolver.get_status(key, pk).value,
            "causes": [f"{c.category.value}: {c.key.asset_key.to_user_string()}: {c.reason}"
                       for c in resolver.get_stale_root_causes(key, pk)],
        }
    return out


__all__ = ["stale_status"]
