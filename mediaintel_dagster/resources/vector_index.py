"""The serving index: one interface, two vector backends, one keyword index.

``VectorIndexResource`` is what the ``index_entries`` stage writes to and what search
queries. Two real backends implement it:

- ``LanceVectorIndexResource`` (resources/lance_index.py): the embedded default, LanceDB on
  local disk (or ``s3://``): exact search while a table is small, an ANN index once it
  holds ``MEDIAINTEL_INDEX_ANN_MIN_ROWS`` vectors; filters are pushed into the search.
- ``PineconeVectorIndexResource`` (resources/pinecone_index.py): production, through the
  real ``pinecone`` client: batched upserts, retry with backoff on 429/5xx, a timeout on
  every call.

Vectors of different models never meet: each ``model_id`` has its own LanceDB table or
Pinecone namespace. Entry ids are deterministic (``entry_id``), so an upsert is idempotent.

``TextIndexResource`` (LanceDB full-text search, BM25) is the keyword index. It lives in
LanceDB in both deployments (Pinecone has no keyword search), at ``MEDIAINTEL_INDEX``.

Entries are Arrow tables with ``ENTRY_SCHEMA`` (vectors) or ``TEXT_ENTRY_SCHEMA`` (text);
the filter columns (media_kind, duration_s, language, arrived_at_s, source_uri) are
copied onto each entry so that a filtered search never joins back to the lakehouse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyarrow as pa
from dagster import ConfigurableResource

# What a filter can say about an entry; every backend stores these columns with each entry.
FILTER_FIELDS = pa.schema([
    ("media_id", pa.string()),
    ("item_kind", pa.string()),       # 'segment', 'ocr', 'scene'
    ("item_index", pa.int32()),
    ("media_kind", pa.string()),      # media.kind: 'video', 'audio', 'image'
    ("duration_s", pa.float64()),     # the media's duration
    ("language", pa.string()),        # segment: its language; others: the media's main spoken language
    ("arrived_at_s", pa.float64()),   # arrival time of the media (first seen), seconds since the epoch UTC
    ("source_uri", pa.string()),      # where the media was first seen
])

ENTRY_SCHEMA = pa.schema([("entry_id", pa.string()), ("model_id", pa.string()), *FILTER_FIELDS,
                          ("vector", pa.list_(pa.float32()))])
TEXT_ENTRY_SCHEMA = pa.schema([("entry_id", pa.string()), *FILTER_FIELDS, ("text", pa.string())])

# The keyword index's "model": the id its entries carry in `index_entries`.
KEYWORD_MODEL_ID = "lancedb-fts/bm25@1"


def entry_id(media_id: str, item_kind: str, item_index: int, model_id: str) -> str:
    """The id of one vector in the index: ``media_id:item_kind:item_index:model_id``."""
    return f"{media_id}:{item_kind}:{int(item_index)}:{model_id}"


def parse_entry_id(value: str) -> tuple[str, str, int, str]:
    """``entry_id``'s parts (the model id may itself hold ':')."""
    media_id, item_kind, item_index, model_id = value.split(":", 3)
    return media_id, item_kind, int(item_index), model_id


@dataclass
class IndexFilter:
    """Conditions every returned entry meets (all optional; None means no condition).

    ``source_prefix``: the entry's source_uri starts with it. LanceDB takes any prefix.
    Pinecone has no prefix operator and reads it as a path: ending with '/' a folder;
    without, a whole last component (that file or that folder).
    """

    media_kinds: Optional[Sequence[str]] = None
    item_kinds: Optional[Sequence[str]] = None
    languages: Optional[Sequence[str]] = None
    min_duration_s: Optional[float] = None
    max_duration_s: Optional[float] = None
    arrived_from_s: Optional[float] = None  # inclusive
    arrived_to_s: Optional[float] = None  # exclusive
    source_prefix: Optional[str] = None
    media_ids: Optional[Sequence[str]] = None
    exclude_media_ids: Optional[Sequence[str]] = None

    def is_empty(self) -> bool:
        return all(v is None for v in self.__dict__.values())


@dataclass
class Match:
    """One entry a search returned. ``score``: higher is better (cosine similarity for
    vectors, BM25 for keywords); comparable only within one model and one retriever."""

    entry_id: str
    media_id: str
    item_kind: str
    item_index: int
    score: float
    model_id: str
    extra: dict = field(default_factory=dict)  # backend-specific (e.g. the text for keyword hits)


class VectorIndexResource(ConfigurableResource):
    """A serving vector index (abstract: use one of the backends)."""

    @property
    def backend(self) -> str:
        raise NotImplementedError

    def upsert(self, model_id: str, entries: pa.Table) -> int:
        """Insert or replace ``entries`` (ENTRY_SCHEMA; all of ``model_id``) by entry_id; the count."""
        raise NotImplementedError

    def delete(self, model_id: str, ids: Sequence[str]) -> int:
        """Remove these entries of ``model_id`` (unknown ids are ignored); the count asked."""
        raise NotImplementedError

    def query(self, model_id: str, vector: np.ndarray, k: int, flt: Optional[IndexFilter] = None) -> list[Match]:
        """The ``k`` entries of ``model_id`` nearest ``vector`` (cosine), best first, meeting ``flt``."""
        raise NotImplementedError

    def fetch(self, model_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these ids (missing ids are absent)."""
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        """Entries per model_id."""
        raise NotImplementedError

    def drop(self, model_id: str) -> None:
        """Remove every entry of ``model_id`` (its table or namespace)."""
        raise NotImplementedError

    def optimize(self) -> dict:
        """Bring the ANN structures up to date (a no-op where the backend does it); what it did."""
        return {}


class TextIndexResource(ConfigurableResource):
    """The keyword index (abstract interface; resources/lance_index.py implements it)."""

    def upsert(self, entries: pa.Table) -> int:
        raise NotImplementedError

    def delete(self, ids: Sequence[str]) -> int:
        raise NotImplementedError

    def search(self, text: str, k: int, flt: Optional[IndexFilter] = None) -> list[Match]:
        """The ``k`` best BM25 matches of ``text``, best first; ``extra['text']`` holds each entry's text."""
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError


__all__ = ["ENTRY_SCHEMA", "FILTER_FIELDS", "IndexFilter", "KEYWORD_MODEL_ID", "Match", "TEXT_ENTRY_SCHEMA",
           "TextIndexResource", "VectorIndexResource", "entry_id", "parse_entry_id"]
