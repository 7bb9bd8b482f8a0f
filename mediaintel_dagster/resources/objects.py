"""The object store: derived blobs (keyframe JPEGs, ...) under one root.

Stages address blobs by a key (``keyframes/<media_id>/<scene_index>.jpg``) and record the
URI ``put`` returns in their table; readers hand that URI (or the key) back to ``get``.
The embedded default is a local folder (``MEDIAINTEL_OBJECTS``) whose URIs are absolute
paths, so any tool can open a keyframe directly. Production puts an ``s3://bucket/prefix``
root here; that implementation is not written yet and says so instead of writing locally.
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
    """Blobs under ``root`` (a local folder; ``s3://`` roots are the production target).

    ``put(key, data) -> uri``, ``get(key or uri) -> bytes``, ``uri(key)``, ``exists(key)``,
    ``delete_prefix(prefix)``. Writes are atomic (temporary file + rename): a reader never
    sees half a JPEG.
    """

    root: str = Field(default_factory=config.objects_root,
                      description="Root of the object store: a local folder (s3:// is not implemented yet).")

    def _base(self) -> Path:
        if "://" in self.root and not self.root.startswith("file://"):
            raise NotImplementedError(
                f"object store root {self.root!r}: only local folders are implemented; "
                "set MEDIAINTEL_OBJECTS to a local path")
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
        """Where ``key`` lives: an absolute path for a local root."""
        return str(self._path(key))

    def put(self, key: str, data: bytes) -> str:
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
        return self._path(key_or_uri).read_bytes()

    def exists(self, key_or_uri: str) -> bool:
        return self._path(key_or_uri).is_file()

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under ``prefix`` (a folder-like key such as ``keyframes/<media_id>``)."""
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()
