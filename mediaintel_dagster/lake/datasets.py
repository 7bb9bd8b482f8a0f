"""An open Delta table as an Arrow dataset: the one way the lakehouse resource and the
Dagster-free `mediaintel sql` / reports path read a table (no Dagster imported here)."""

from __future__ import annotations


def delta_dataset(dtab, uri: str):
    """``dtab`` (a ``deltalake.DeltaTable`` opened at ``uri``, at the version wanted) as a
    ``pyarrow.dataset.Dataset``; filters push down.

    A local table is read through Arrow's own local filesystem, not deltalake's Python-wrapped
    one: with that one, Arrow's I/O threads call into Python, and one still busy when the
    interpreter exits aborts the process ("terminate called without an active exception",
    exit -6) after it did all its work, e.g. right after a CLI's last read."""
    if "://" not in uri or uri.startswith("file://"):
        import pyarrow.fs as pafs

        local = uri.removeprefix("file://")
        return dtab.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(local, pafs.LocalFileSystem()))
    return dtab.to_pyarrow_dataset()
