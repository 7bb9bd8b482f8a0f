"""Export each stage's run numbers to Prometheus, switched on by configuration.

``MEDIAINTEL_METRICS`` (unset or empty: off):

- ``prometheus``: every numeric entry of a stage's run metadata (``stage_metadata``)
  becomes a gauge ``mediaintel_stage_<name>{asset="..."}`` holding the latest run's value,
  plus ``mediaintel_stage_last_run_timestamp_seconds``; the inbox sensor sets
  ``mediaintel_inbox_backlog_files``. Where they go:
  - ``MEDIAINTEL_PROMETHEUS_TEXTFILE_DIR``: one ``mediaintel_<asset>.prom`` per asset for
    node_exporter's textfile collector (a file per asset because each run is its own
    process: one file for all would be overwritten by whichever run finished last);
  - ``MEDIAINTEL_PROMETHEUS_PUSHGATEWAY`` (host:port): pushed after each stage, grouped by
    asset, the usual route for batch jobs;
  - ``MEDIAINTEL_PROMETHEUS_PORT``: an HTTP endpoint served by the process (long-lived
    processes such as the daemon running sensors), bound to MEDIAINTEL_PROMETHEUS_ADDR
    (default 127.0.0.1).
- ``otlp``: not implemented yet (opentelemetry is not a dependency); fails loudly.

Failures to export are logged and never fail a run: metrics are observation, not data.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time

from .. import config

log = logging.getLogger("mediaintel.metrics")

_lock = threading.Lock()
_state: dict = {}


def backend() -> str | None:
    name = (config.get("MEDIAINTEL_METRICS") or "").strip().lower()
    if name in ("", "off", "none"):
        return None
    if name == "prometheus":
        return name
    if name == "otlp":
        raise NotImplementedError(
            "MEDIAINTEL_METRICS=otlp is not implemented yet; use prometheus (docs/trust.md)")
    raise ValueError(f"MEDIAINTEL_METRICS={name!r}: expected prometheus (or unset)")


def _name(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key).strip("_").lower()


def numeric(meta: dict) -> dict[str, float]:
    """The numeric entries of run metadata (MetadataValue wrappers unwrapped; bools dropped)."""
    out = {}
    for k, v in meta.items():
        v = getattr(v, "value", v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[_name(k)] = float(v)
    return out


def _registry(asset: str):
    from prometheus_client import CollectorRegistry

    with _lock:
        regs = _state.setdefault("registries", {})
        if asset not in regs:
            regs[asset] = (CollectorRegistry(), {})
        return regs[asset]


def _gauge(registry, gauges: dict, name: str, doc: str, labels: tuple[str, ...]):
    from prometheus_client import Gauge

    if name not in gauges:
        gauges[name] = Gauge(name, doc, labels, registry=registry)
    return gauges[name]


def _publish(asset: str, registry) -> None:
    textdir = config.get("MEDIAINTEL_PROMETHEUS_TEXTFILE_DIR")
    if textdir:
        from prometheus_client import write_to_textfile

        os.makedirs(textdir, exist_ok=True)
        write_to_textfile(os.path.join(textdir, f"mediaintel_{_name(asset)}.prom"), registry)
    gateway = config.get("MEDIAINTEL_PROMETHEUS_PUSHGATEWAY")
    if gateway:
        from prometheus_client import push_to_gateway

        push_to_gateway(gateway, job="mediaintel", registry=registry, grouping_key={"asset": asset}, timeout=5)
    port = config.get("MEDIAINTEL_PROMETHEUS_PORT")
    if port:
        _serve(int(port))


def _serve(port: int) -> None:
    from prometheus_client import start_http_server
    from prometheus_client.registry import Collector

    with _lock:
        if _state.get("server_port") == port:
            return

        class _All(Collector):  # every asset's registry behind one endpoint
            def collect(self):
                for reg, _ in list(_state.get("registries", {}).values()):
                    yield from reg.collect()

        from prometheus_client import CollectorRegistry

        root = CollectorRegistry(auto_describe=False)
        root.register(_All())
        server, thread = start_http_server(port, addr=config.get("MEDIAINTEL_PROMETHEUS_ADDR"),
                                           registry=root)
        _state["server_port"] = port
        _state["server"] = (server, thread)


def record(asset: str, values: dict[str, float], prefix: str, doc: str) -> bool:
    """Set gauges ``<prefix>_<name>{asset}`` and publish; False when metrics are off or failed."""
    try:
        if backend() is None:
            return False
        registry, gauges = _registry(asset)
        for key, value in values.items():
            _gauge(registry, gauges, f"{prefix}_{key}", f"{doc}: {key}", ("asset",)).labels(asset=asset).set(value)
        _publish(asset, registry)
        return True
    except (NotImplementedError, ValueError):
        raise
    except Exception as exc:  # the exporter's trouble is not the run's
        log.warning(f"metrics export failed for {asset}: {exc.__class__.__name__}: {exc}")
        return False


def record_stage(asset: str, partition: str | None, meta: dict) -> bool:
    """A stage's run numbers (its ``stage_metadata``) as gauges labelled with the asset."""
    values = numeric(meta)
    values["last_run_timestamp_seconds"] = time.time()
    return record(asset, values, "mediaintel_stage", "latest run of a mediaintel stage")


def record_backlog(files: int) -> bool:
    """The inbox sensor's backlog: files seen but not yet requested in a run."""
    return record("inbox_sensor", {"backlog_files": float(files)}, "mediaintel_inbox", "mediaintel inbox sensor")
