"""Where things live, from the environment.

One place reads the environment so that the CLI, `dagster dev` and the tests agree.

- ``MEDIAINTEL_HOME``   working folder for the embedded default (default ``./.mediaintel``)
- ``MEDIAINTEL_LAKE``   root of the Delta tables (default ``$MEDIAINTEL_HOME/lake``; ``s3://...`` in production)
- ``MEDIAINTEL_INBOX``  folder(s) the inbox sensor watches, ``os.pathsep``-separated (default ``$MEDIAINTEL_HOME/inbox``)
- ``MEDIAINTEL_OBJECTS`` keyframes and other derived blobs (default ``$MEDIAINTEL_HOME/objects``)
- ``DAGSTER_HOME``      Dagster instance (default ``$MEDIAINTEL_HOME/dagster``)
- ``MEDIAINTEL_PARTITION_START`` first arrival date (default ``2024-01-01``)
- ``MEDIAINTEL_SHARDS`` number of static shards per arrival date (default ``4``)
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("MEDIAINTEL_HOME", ".mediaintel")).absolute()


def lake_root() -> str:
    value = os.environ.get("MEDIAINTEL_LAKE")
    return value if value else str(home() / "lake")


def inbox_roots() -> list[str]:
    value = os.environ.get("MEDIAINTEL_INBOX")
    if value:
        return [p for p in value.split(os.pathsep) if p]
    return [str(home() / "inbox")]


def objects_root() -> str:
    value = os.environ.get("MEDIAINTEL_OBJECTS")
    return value if value else str(home() / "objects")


def dagster_home() -> Path:
    value = os.environ.get("DAGSTER_HOME")
    return Path(value).absolute() if value else home() / "dagster"


def partition_start() -> str:
    return os.environ.get("MEDIAINTEL_PARTITION_START", "2024-01-01")


def shard_count() -> int:
    return int(os.environ.get("MEDIAINTEL_SHARDS", "4"))
