"""Named reports: documented DuckDB queries over the lakehouse, the views `mediaintel sql` opens.

``mediaintel report --list`` names them, ``mediaintel report NAME [--json]`` runs one. Each
is plain SQL over the same views (one per Delta table, see ``connect``), so any report is
also a starting point for your own ``mediaintel sql``: ``mediaintel report NAME --sql``
prints its query.

``connect`` is the DuckDB connection of ``mediaintel sql`` and the reports. It imports
neither Dagster nor the model stack (deltalake, pyarrow and duckdb only), so a query starts
in well under a second; ``resources.duckdb.connect`` does the same for a configured
``LakehouseResource`` inside Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import config
from .lake import schemas


def _dataset(root: str, table: str, as_of_version: int | None):
    """One Delta table as an Arrow dataset (filters push down), as LakehouseResource.dataset
    reads it; an empty dataset with the contract schema when the table does not exist yet."""
    import pyarrow.dataset as pads
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from .lake.datasets import delta_dataset

    uri = f"{root.rstrip('/')}/{table}"
    try:
        dtab = DeltaTable(uri)
    except TableNotFoundError:
        if as_of_version is not None:
            raise ValueError(f"--as-of {table}={as_of_version}: table {table} has no versions yet "
                             "(nothing was written to it)") from None
        return pads.dataset(schemas.schema(table).empty_table())
    if as_of_version is not None:
        latest = dtab.version()
        if not 0 <= as_of_version <= latest:
            raise ValueError(f"--as-of {table}={as_of_version}: table {table} has versions 0 to {latest}")
        try:
            dtab.load_as_version(as_of_version)
        except Exception as exc:  # a version whose log entry was vacuumed or checkpointed away
            raise ValueError(f"--as-of {table}={as_of_version}: cannot read that version ({exc})") from None
    return delta_dataset(dtab, uri)


def connect(as_of: dict[str, int] | None = None, root: str | None = None):
    """A DuckDB connection with one view per lakehouse table, under ``root`` (default: the
    configured lake). ``as_of`` maps tables to earlier Delta versions (the audit_log's
    ``delta_version`` says which version a run wrote). Raises ValueError for an unknown
    table or a version the table does not have."""
    import duckdb

    as_of = as_of or {}
    unknown = sorted(set(as_of) - set(schemas.TABLES))
    if unknown:
        raise ValueError(f"--as-of: unknown table(s) {', '.join(unknown)}; known: {', '.join(schemas.TABLES)}")
    root = root or config.lake_root()
    con = duckdb.connect()
    for table in schemas.TABLES:
        con.register(table, _dataset(root, table, as_of.get(table)))
    return con


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str  # what the rows mean, for `report --list` and docs/cli.md
    sql: str


REPORTS: dict[str, Report] = {r.name: r for r in (
    Report(
        "media-per-day", "Media per arrival day",
        "Media first seen each UTC day (their arrival window's date), by kind, with their hours of "
        "content and bytes.",
        """
        SELECT split_part(arrival_partition, '|', 1) AS day,
               count(*) AS media,
               count(*) FILTER (WHERE kind = 'video') AS video,
               count(*) FILTER (WHERE kind = 'audio') AS audio,
               count(*) FILTER (WHERE kind = 'image') AS image,
               round(coalesce(sum(duration_s), 0) / 3600, 3) AS hours,
               sum(size_bytes) AS bytes
        FROM media GROUP BY day ORDER BY day
        """),
    Report(
        "speech-by-language", "Hours of speech by language",
        "Transcribed speech per spoken language: media, segments, hours (segments the hallucination "
        "guard flagged are counted apart, not as speech).",
        """
        SELECT coalesce(language, '?') AS language,
               count(DISTINCT media_id) AS media,
               count(*) FILTER (WHERE hallucination IS NULL) AS segments,
               round(coalesce(sum(end_s - start_s) FILTER (WHERE hallucination IS NULL), 0) / 3600, 4) AS hours,
               count(*) FILTER (WHERE hallucination IS NOT NULL) AS flagged_segments
        FROM transcript_segments GROUP BY ALL ORDER BY hours DESC, language
        """),
    Report(
        "top-onscreen-terms", "Top on-screen terms",
        "The 25 words read most often on keyframes (OCR), lowercased, three letters or more and "
        "not a stopword: how many times, on how many media, and an example line.",
        """
        WITH words AS (
            SELECT media_id, text, unnest(regexp_extract_all(lower(text), '[\\pL\\pN]+')) AS term
            FROM ocr_text)
        SELECT term, count(*) AS times, count(DISTINCT media_id) AS media, min(text) AS example
        FROM words WHERE length(term) >= 3 AND term NOT IN (SELECT unnest(string_split(
            'and are for from has have its our that the this was were will with you', ' ')))
        GROUP BY term ORDER BY times DESC, media DESC, term LIMIT 25
        """),
    Report(
        "duplicate-clusters", "Near-duplicate clusters",
        "Media that show the same content (re-encoded, resized, trimmed copies: near_duplicates), "
        "grouped into clusters, each named by its smallest media_id; exact copies of one file at "
        "several locations count as extra locations. `mediaintel duplicates` names each cluster's "
        "canonical media.",
        """
        WITH RECURSIVE
        edges AS (
            SELECT media_id AS a, duplicate_of AS b FROM near_duplicates
            UNION SELECT duplicate_of, media_id FROM near_duplicates),
        reach(node, root) AS (
            SELECT a, a FROM edges
            UNION SELECT e.b, r.root FROM reach r JOIN edges e ON e.a = r.node),
        cluster_of AS (SELECT node AS media_id, min(root) AS cluster FROM reach GROUP BY node),
        methods AS (
            SELECT c.cluster, string_agg(DISTINCT d.method, ', ' ORDER BY d.method) AS methods
            FROM near_duplicates d JOIN cluster_of c USING (media_id) GROUP BY c.cluster),
        locations AS (SELECT media_id, count(*) AS n FROM media_sources GROUP BY media_id)
        SELECT c.cluster, count(*) AS media, sum(coalesce(l.n, 1)) AS locations, any_value(x.methods) AS methods,
               string_agg(regexp_extract(m.source_uri, '[^/]+$'), ', ' ORDER BY m.source_uri) AS files
        FROM cluster_of c LEFT JOIN media m USING (media_id) LEFT JOIN locations l USING (media_id)
        LEFT JOIN methods x ON x.cluster = c.cluster
        GROUP BY c.cluster
        HAVING count(*) > 1 OR sum(coalesce(l.n, 1)) > 1
        ORDER BY media DESC, locations DESC, c.cluster
        """),
    Report(
        "slowest-stages", "Slowest stages",
        "Per stage, seconds per run it was computed in: the time from the run's previous stage "
        "mark to this stage's (audit_log `at`; a run's first stage has no earlier mark and is "
        "left out). Exact for the in-process executor, which runs steps one after another; "
        "each materialization's `wall_seconds` in the Dagster UI is the exact figure.",
        """
        WITH marks AS (
            SELECT run_id, asset, min("at") AS at_, sum("rows") AS rows_, count(DISTINCT media_id) AS media
            FROM audit_log WHERE run_id IS NOT NULL AND status <> 'removed' GROUP BY run_id, asset),
        timed AS (
            SELECT *, epoch(at_ - lag(at_) OVER (PARTITION BY run_id ORDER BY at_, asset)) AS seconds
            FROM marks)
        SELECT asset AS stage, count(*) AS runs, sum(media) AS media, sum(rows_) AS "rows",
               round(avg(seconds), 2) AS mean_s, round(max(seconds), 2) AS max_s,
               round(sum(seconds), 2) AS total_s
        FROM timed WHERE seconds IS NOT NULL
        GROUP BY asset ORDER BY total_s DESC, stage
        """),
    Report(
        "quarantine", "What was quarantined and why",
        "Every open quarantine row: the file (or item), the stage that set it aside, the error type, "
        "whether a retry can help, attempts, whether a redrive is pending, and the message.",
        """
        SELECT regexp_extract(source_uri, '[^/]+$') AS file, stage, error_type, retryable, attempts,
               redrive_requested_at IS NOT NULL AS redrive_pending, message, source_uri, media_id, seen_at
        FROM quarantine ORDER BY stage, error_type, file
        """),
)}


def get(name: str) -> Report:
    try:
        return REPORTS[name]
    except KeyError:
        raise ValueError(f"unknown report {name!r}; known: {', '.join(REPORTS)}") from None


def run(name: str, con=None) -> tuple[list[str], list[tuple]]:
    """(columns, rows) of the named report, over ``con`` (default: a new ``connect()``)."""
    report = get(name)
    rel = (con or connect()).sql(report.sql)
    return rel.columns, rel.fetchall()


__all__ = ["REPORTS", "Report", "connect", "get", "run"]
