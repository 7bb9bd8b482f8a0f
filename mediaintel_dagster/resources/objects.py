"""The object store: derived blobs (keyframe JPEGs, ...) under one root.

Stages address blobs by a key (``keyframes/<media_id>/<scene_index>.jpg``) and record the
URI ``put`` returns in their table; readers hand that URI (or the key) back to ``get``.
The embedded default is a local folder (``MEDIAINTEL_OBJECTS``) whose URIs are absolute
paths, so any tool can open a keyframe directly. Production puts an ``s3://bucket/prefix``
root here (boto3, credentials from the standard AWS_* variables); its URIs are
``s3://bucket/prefix/<key>``, which the keyframe readers (media/keyframes.py) open too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from .. import config


class ObjectStoreResource(ConfigurableResource):
    """Blobs under ``root``: a local folder, or ``s3://bucket/prefix`` in production.

    ``put(key, data) -> uri``, ``get(key or uri) -> bytes``, ``uri(key)``, ``exists(key)``,
    ``delete_prefix(prefix)``. Writes are atomic: a local write is a temporary file and a
    rename, an S3 PUT is all or nothing; a reader never sees half a JPEG. On S3, transient
    errors (503 SlowDown, throttling, 5xx, dropped connections) are retried with backoff
    (``MEDIAINTEL_S3_MAX_ATTEMPTS`` tries, default 8).
    """

    root: str = Field(default_factory=config.objects_root,
                      description="Root of the object store: a local folder or s3://bucket/prefix.")

    # ---- S3 -------------------------------------------------------------------------------
    def _s3(self) -> bool:
        from ..lake import s3

        return s3.is_s3(self.root)

    def _s3_key(self, key_or_uri: str) -> tuple[str, str]:
        """(bucket, object key) of a key under the root, or of an s3:// URI inside it."""
        from ..lake import s3

        bucket, prefix = s3.split_uri(self.root.rstrip("/"))
        value = str(key_or_uri)
        if s3.is_s3(value):
            b, k = s3.split_uri(value)
            if b != bucket or (prefix and not (k == prefix or k.startswith(prefix + "/"))):
                raise ValueError(f"{key_or_uri!r} is outside the object store root {self.root}")
            return b, k
        if not value or value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"bad object key {key_or_uri!r}")
        return bucket, f"{prefix}/{value}" if prefix else value

    # ---- local ----------------------------------------------------------------------------
    def _base(self) -> Path:
        if "://" in self.root and not self.root.startswith("file://"):
            raise ValueError(f"object store root {self.root!r}: expected a local folder, file:// or s3://")
        return Path(self.root.removeprefix("file://")).absolute()

    def _path(self, key_or_uri: str) -> Path:
        base = self._base()
        value = str(key_or_uri).removeprefix("file://")
        if os.path.isabs(value):
            path = Path(value)
        else:
            if not value or ".." in Path(value).parts:
                raise ValueError(f"bad object key {key_or_uri!r}")
            path = base / value
        if base != path and base not in path.parents:
            raise ValueError(f"{key_or_uri!r} is outside the object store root {base}")
        return path

    def uri(self, key: str) -> str:
        """Where ``key`` lives: an absolute path for a local root, s3://bucket/key on S3."""
        if self._s3():
            return "s3://%s/%s" % self._s3_key(key)
        return str(self._path(key))

    def put(self, key: str, data: bytes) -> str:
        if self._s3():
            from ..lake import s3

            bucket, k = self._s3_key(key)
            s3.client().put_object(Bucket=bucket, Key=k, Body=bytes(data))
            return f"s3://{bucket}/{k}"
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def get(self, key_or_uri: str) -> bytes:
        if self._s3():
            from ..lake import s3

            bucket, k = self._s3_key(key_or_uri)
            try:
                return s3.client().get_object(Bucket=bucket, Key=k)["Body"].read()
            except Exception as exc:
                if s3.is_missing(exc):
                    raise FileNotFoundError(f"s3://{bucket}/{k}") from exc
                raise
        return self._path(key_or_uri).read_bytes()

    def exists(self, key_or_uri: str) -> bool:
        if self._s3():
            from ..lake import s3

            bucket, k = self._s3_key(key_or_uri)
            try:
                s3.client().head_object(Bucket=bucket, Key=k)
                return True
            except Exception as exc:
                if s3.is_missing(exc):
                    return False
                raise
        return self._path(key_or_uri).is_file()

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under ``prefix`` (a folder-like key such as ``keyframes/<media_id>``)."""
        if self._s3():
            from ..lake import s3

            bucket, k = self._s3_key(prefix.rstrip("/"))
            client = s3.client()
            # The key itself (a blob named like the prefix) and everything below it, 1000 a call.
            keys = [k] if self.exists(f"s3://{bucket}/{k}") else []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=k + "/"):
                keys += [o["Key"] for o in page.get("Contents", [])]
            for i in range(0, len(keys), 1000):
                client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": x} for x in keys[i:i + 1000]],
                                                             "Quiet": True})
            return
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()
