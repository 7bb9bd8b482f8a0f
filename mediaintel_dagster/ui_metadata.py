"""What the Dagster UI shows about the data: column schemas, row counts, a preview of rows,
keyframe thumbnails, owners, and one-line failure descriptions.

The stage skeleton (assets/stage.py) calls these for every asset, so each asset's page shows
its table's columns (with the descriptions the contract's comments give, lake/schemas.py),
and each materialization shows how many rows its window holds, a few of them, and (for
`scenes`) small inline keyframes. Everything here is kept small on purpose: a
materialization's metadata is stored in the event log for every run, so the preview caps
rows, text and vectors, and thumbnails are a few downscaled JPEGs (docs/ui.md has sizes).
"""

from __future__ import annotations

import base64
import functools
import io
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableSchema

from . import config
from .lake import schemas

COLUMN_SCHEMA_KEY = "dagster/column_schema"
ROW_COUNT_KEY = "dagster/row_count"
PREVIEW_ROWS = 5
PREVIEW_TEXT_CHARS = 60
THUMBNAILS = 4
THUMBNAIL_PX = 160  # long side
THUMBNAIL_QUALITY = 60


# ---- owners ------------------------------------------------------------------------------------

def owners() -> list[str]:
    """The owners every asset declares (MEDIAINTEL_OWNERS: comma-separated `team:name` or emails)."""
    return [o.strip() for o in (config.get("MEDIAINTEL_OWNERS") or "").split(",") if o.strip()]


# ---- column schemas ------------------------------------------------------------------------------

_TABLE_START = re.compile(r'^\s*"(\w+)":\s*pa\.schema\(')
_COLUMN = re.compile(r'^\s*\("(\w+)",')
_COMMENT = re.compile(r"^\s*#\s?(.*)$")


@functools.lru_cache(maxsize=1)
def column_descriptions() -> dict[str, dict[str, str]]:
    """{table: {column: description}} from the comments of lake/schemas.py: a column's
    trailing comment, or the comment lines just above it (which describe the columns they
    precede)."""
    source = Path(schemas.__file__).read_text().splitlines()
    out: dict[str, dict[str, str]] = {}
    table, pending, after_comment = None, [], False
    for line in source:
        m = _TABLE_START.match(line)
        if m:
            table, pending, after_comment = m.group(1), [], False
            out[table] = {}
            continue
        if table is None:
            continue
        c = _COMMENT.match(line)
        if c:
            if not after_comment:  # a new comment block replaces the one before
                pending = []
            pending.append(c.group(1).strip())
            after_comment = True
            continue
        after_comment = False
        col = _COLUMN.match(line)
        if col:
            trailing = line.split("#", 1)[1].strip() if "#" in line else ""
            text = trailing or " ".join(pending)
            if text:
                out[table][col.group(1)] = text
            if trailing:
                pending = []
            # else: a comment block above several columns describes each of them
            # (transition, transition_start_s, transition_end_s) until one has its own.
        elif not line.strip() or line.strip().startswith("]"):
            pending = []
    return out


def _type_name(t: pa.DataType) -> str:
    return str(t).replace("timestamp[us, tz=UTC]", "timestamp (UTC)")


@functools.lru_cache(maxsize=None)
def table_schema(table: str) -> TableSchema:
    """The Dagster TableSchema of a lakehouse table, from its Arrow schema and comments."""
    notes = column_descriptions().get(table, {})
    return TableSchema(columns=[TableColumn(name=f.name, type=_type_name(f.type), description=notes.get(f.name))
                                for f in schemas.schema(table)])


def definition_metadata(table: Optional[str]) -> dict:
    """What an asset's definition carries about its table (shown on the asset page)."""
    if table not in schemas.SCHEMAS:
        return {}
    return {COLUMN_SCHEMA_KEY: table_schema(table)}


# ---- preview -------------------------------------------------------------------------------------

def _cell(value, max_chars: int = PREVIEW_TEXT_CHARS) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.3f}" if math.isfinite(value) else str(value)
    elif isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int, float)) for v in value):  # a vector or a box
            head = ", ".join(f"{v:.3g}" for v in value[:3])
            text = f"[{head}{', …' if len(value) > 3 else ''}] ({len(value)})"
        else:
            text = f"[{len(value)} items]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(map(str, value)) + "}"
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def preview_md(rows: pa.Table, limit: int = PREVIEW_ROWS, columns: Optional[Sequence[str]] = None,
               max_columns: int = 10) -> MetadataValue:
    """A Markdown table of the first ``limit`` rows (long text and vectors cut short)."""
    names = [c for c in (columns or rows.column_names) if c in rows.column_names][:max_columns]
    head = rows.select(names).slice(0, limit).to_pylist()
    lines = ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names)]
    lines += ["| " + " | ".join(_cell(r[n]) for n in names) + " |" for r in head]
    more = rows.num_rows - len(head)
    if more > 0:
        lines.append(f"\n{len(head)} of {rows.num_rows} rows shown.")
    if not head:
        lines.append("\n(no rows in this window)")
    return MetadataValue.md("\n".join(lines))


# Columns worth seeing first, per table (the rest follow, up to the column cap).
PREVIEW_COLUMNS = {
    "media": ["media_id", "source_uri", "kind", "duration_s", "width", "height", "fps", "has_audio", "container"],
    "media_sources": ["source_uri", "media_id", "size_bytes", "arrival_partition", "seen_at"],
    "scenes": ["media_id", "scene_index", "start_s", "end_s", "keyframe_s", "transition", "detector", "phash"],
    "transcript_segments": ["media_id", "segment_index", "start_s", "end_s", "text", "language", "avg_logprob",
                            "hallucination"],
    "ocr_text": ["media_id", "scene_index", "line_index", "text", "confidence", "model_id"],
    "embeddings": ["media_id", "item_kind", "item_index", "model_id", "vector"],
    "index_entries": ["entry_id", "media_id", "item_kind", "item_index", "model_id", "backend", "dim"],
    "near_duplicates": ["media_id", "duplicate_of", "method", "relation", "score", "source_uri",
                        "duplicate_source_uri"],
    "keyframe_hashes": ["media_id", "scene_index", "keyframe_n", "hash", "informative", "low_info_reason"],
}


# ---- thumbnails ------------------------------------------------------------------------------------

def thumbnail_data_uri(jpeg: bytes, px: int = THUMBNAIL_PX, quality: int = THUMBNAIL_QUALITY) -> str:
    """A downscaled JPEG (long side ``px``) as a data: URI."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        im = im.convert("RGB")
        im.thumbnail((px, px))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnails_md(rows: Iterable[dict], read, limit: int = THUMBNAILS) -> Optional[MetadataValue]:
    """Inline keyframes of the first ``limit`` scenes (``read(uri) -> bytes``), each captioned
    with its media and time; None when none could be read (a missing keyframe is skipped:
    the scenes' own checks report it)."""
    cells = []
    for r in rows:
        if len(cells) >= limit:
            break
        uri = r.get("keyframe_uri")
        if not uri:
            continue
        try:
            src = thumbnail_data_uri(read(uri))
        except Exception:  # noqa: BLE001 - a preview never fails the run
            continue
        caption = f"{r['media_id'][:8]} #{r['scene_index']} @ {r.get('keyframe_s') or 0:.1f}s"
        cells.append(f"![{caption}]({src}) {caption}")
    if not cells:
        return None
    return MetadataValue.md("\n\n".join(cells))


# ---- one window's metadata --------------------------------------------------------------------------

def window_metadata(lake, table: str, partition: Optional[str], *, objects=None,
                    check_rows: Optional[dict] = None) -> dict:
    """The UI metadata of one materialization of ``table`` for ``partition``: column schema,
    the window's row count (``dagster/row_count``, the rows the table holds for the window's
    media after this write), the table's total (``table_rows_total``, from file metadata),
    a preview of a few of the window's rows, and keyframe thumbnails (``objects`` given)."""
    import pyarrow.dataset as pads

    ds = lake.dataset(table)
    flt = None
    if partition is not None:
        if "arrival_partition" in ds.schema.names and table == "media_sources":
            flt = pads.field("arrival_partition") == str(partition)
        elif "media_id" in ds.schema.names:
            ids = [m["media_id"] for m in lake.window_media(str(partition), columns=["media_id"])]
            flt = pads.field("media_id").isin(ids)
    for col, values in (check_rows or {}).items():  # this stage's share of a shared table
        part = pads.field(col).isin(list(values))
        flt = part if flt is None else flt & part
    window_rows = ds.count_rows(filter=flt) if flt is not None else ds.count_rows()
    wanted = PREVIEW_COLUMNS.get(table) or ds.schema.names
    if table == "scenes":
        wanted = [*wanted, "keyframe_uri"]
    cols = [c for c in wanted if c in ds.schema.names]
    head = ds.head(max(PREVIEW_ROWS, THUMBNAILS), columns=cols, filter=flt) if window_rows else \
        schemas.schema(table).empty_table().select(cols)
    out = {COLUMN_SCHEMA_KEY: table_schema(table), ROW_COUNT_KEY: window_rows,
           "table_rows_total": ds.count_rows(),
           "preview": preview_md(head, columns=[c for c in cols if c != "keyframe_uri"])}
    if objects is not None and window_rows:
        thumbs = thumbnails_md(head.to_pylist(), objects.get)
        if thumbs is not None:
            out["keyframes_preview"] = thumbs
    return out


# ---- rates -------------------------------------------------------------------------------------------

def rate(part: int, whole: int) -> float:
    """part / whole rounded for the UI's plots (0.0 for an empty window, so the series is unbroken)."""
    return round(part / whole, 4) if whole else 0.0


# ---- failures ------------------------------------------------------------------------------------------

def one_line(exc: BaseException, limit: int = 300) -> str:
    """``ExceptionType: message`` on one line, cut at ``limit`` characters."""
    text = " ".join(f"{exc.__class__.__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def metadata_size(metadata: dict) -> int:
    """Bytes of a metadata dict as Dagster serializes it into the event log."""
    from dagster._core.definitions.metadata import normalize_metadata
    from dagster_shared.serdes import serialize_value

    return len(serialize_value(normalize_metadata(metadata)).encode())


__all__ = ["COLUMN_SCHEMA_KEY", "PREVIEW_COLUMNS", "ROW_COUNT_KEY", "column_descriptions", "definition_metadata",
           "metadata_size", "one_line", "owners", "preview_md", "rate", "table_schema", "thumbnail_data_uri",
           "thumbnails_md", "window_metadata"]
