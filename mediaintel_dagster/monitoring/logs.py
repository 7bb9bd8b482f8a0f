"""Structured logs: one JSON object per line, switched on by ``MEDIAINTEL_LOG_FORMAT=json``.

Two routes, both configuration:
- run logs: ``build_defs`` gives every job Dagster's own ``json_console_logger`` as its
  console logger (``dagster_loggers()``), so each event of a run (step, asset, run_id,
  message) is a JSON line on stderr, ready for Loki/Elasticsearch/CloudWatch;
- other Python loggers (``mediaintel.*``, libraries) through Dagster's instance config
  (dagster.yaml ``python_logs.dagster_handler_config``) with ``JsonFormatter`` below, or
  ``configure()`` in a process of your own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from .. import config


def json_enabled() -> bool:
    fmt = config.get("MEDIAINTEL_LOG_FORMAT").strip().lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"MEDIAINTEL_LOG_FORMAT={fmt!r}: expected text or json")
    return fmt == "json"


def dagster_loggers() -> dict:
    """Logger definitions for ``Definitions(loggers=...)``: JSON console when switched on."""
    if not json_enabled():
        return {}
    from dagster import json_console_logger

    return {"console": json_console_logger}


# Dagster instantiates a job's loggers only when the run config names them; this names the
# console logger, which is Dagster's colored one by default and its JSON one when switched
# on (``dagster_loggers``), so the same run config is valid either way.
RUN_CONFIG_LOGGERS = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, and Dagster's fields
    (run_id, step_key, ...) when the record carries them."""

    FIELDS = ("run_id", "job_name", "step_key", "dagster_event_type", "partition")

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        meta = getattr(record, "dagster_meta", None) or {}
        for key in self.FIELDS:
            value = meta.get(key, getattr(record, key, None))
            if value is not None:
                out[key] = str(value)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: int = logging.INFO) -> None:
    """JSON on the root logger of this process (when switched on); idempotent."""
    if not json_enabled():
        return
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
