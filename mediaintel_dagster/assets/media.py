"""Ingest stage: find the window's files, hash them into media_id, probe each new content once.

Its unit is a file, not a media, so it brings its own loop (``ingest``) and uses the
skeleton's pieces for the rest: the retry rule, quarantine and audit rows, run metadata.
"""

import os
from collections import Counter

import pyarrow.dataset as pads
from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult

from ..checks.keys import FINGERPRINT_KEY
from .. import config as settings
from ..media.errors import MediaError, error_code
from ..media.files import display_name, hash_file, with_deadline
from ..media.probe import probe
from ..monitoring.metrics import record_stage
from ..resources.inbox import InboxFile, stat_file
from ..resources.lakehouse import utcnow
from .stage import (Stage, Stopwatch, audit_entry, bookkeeping_events, fingerprint, quarantine_metadata,
                    quarantine_row, should_retry, stage_data_version)
from .stage_config import StageConfig

STAGE = "media"


class MediaConfig(StageConfig):
    """``force``: re-hash and re-probe every file of the window, even content already done."""


def ingest(stage: Stage, context: AssetExecutionContext, config: MediaConfig):
    """Ingest the arrival window's inbox files into `media` and `media_sources`.

    A file whose location, size and mtime are already recorded is not even re-hashed;
    content already probed with this code version is not probed again. A quarantined file
    is retried when it changed (size or mtime), when the code version changed, or by the
    retry rule (``StageConfig.retry``: a retryable error, fewer than max_attempts times).
    """
    clock = Stopwatch()
    lake, inbox = context.resources.lake, context.resources.inbox
    cv = stage.code_version
    partition = context.partition_key
    files = inbox.files_in_partition(partition)
    listed = {f.source_uri for f in files}
    # What this stage recorded for the listed files or for this window, in one read per
    # table: the rows say which files need no re-hash or retry, and the window's rows name
    # files that belong to it but are not under the inbox's roots now (ingested with
    # `mediaintel process PATH`), which a UI backfill or forced rerun must find too.
    ours = pads.field("arrival_partition") == str(partition)
    if listed:
        ours = ours | pads.field("source_uri").isin(sorted(listed))
    known = {r["source_uri"]: r for r in lake.read("media_sources", filter=ours).to_pylist()}
    quarantined = {r["source_uri"]: r
                   for r in lake.read("quarantine", filter=(pads.field("stage") == STAGE) & ours).to_pylist()}
    for uri in sorted((set(known) | set(quarantined)) - listed):
        f = stat_file(uri)
        if f.size_bytes >= 0:  # files that are gone stay recorded
            files.append(f)

    stats = Counter()
    bad: list[dict] = []
    # uri -> (file, media_id, sha256 or None, source row needs writing)
    seen: dict[str, tuple[InboxFile, str, str | None, bool]] = {}
    limits = _Limits()
    for f in files:
        prior = known.get(f.source_uri)
        if (not config.force and f.error is None and prior and prior["size_bytes"] == f.size_bytes
                and prior["mtime_ns"] == f.mtime_ns):
            stats["unchanged_files"] += 1  # same location, size and mtime: same bytes, no re-hash
            seen[f.source_uri] = (f, prior["media_id"], None, False)
            continue
        q = quarantined.get(f.source_uri)
        if (not config.force and q and q["size_bytes"] == f.size_bytes and q["mtime_ns"] == f.mtime_ns
                and q["code_version"] == cv
                and not should_retry(config.retry, [q["error_type"]], q.get("attempts") or 1, config.max_attempts,
                                     q.get("redrive_requested_at") is not None)):
            stats["still_quarantined"] += 1
            continue
        if f.error is not None:  # the walk itself could not read it (loop, path too long, folder)
            bad.append(_quarantine(context, cv, f, MediaError(*f.error), None))
            continue
        try:
            h = limits.hash(f)
        except MediaError as err:
            bad.append(_quarantine(context, cv, f, err, None))
            continue
        stats["bytes_hashed"] += h.size_bytes
        seen[f.source_uri] = (f, h.media_id, h.sha256, True)

    # Content already probed with this code version needs no second look.
    existing = {r["media_id"]: r for r in lake.read_keys(
        "media", "media_id", sorted({v[1] for v in seen.values()}),
        columns=["media_id", "sha256", "code_version"]).to_pylist()}
    first_file: dict[str, tuple[InboxFile, str | None]] = {}
    for f, media_id, sha, _ in seen.values():
        if media_id not in first_file or (first_file[media_id][1] is None and sha is not None):
            first_file[media_id] = (f, sha)
    media_rows, failed = [], {}
    now = utcnow()
    for n, (media_id, (f, sha)) in enumerate(sorted(first_file.items()), 1):
        prior = existing.get(media_id)
        if prior and prior["code_version"] == cv and not config.force:
            stats["already_done_media"] += 1
            continue
        try:
            sha = sha or (prior or {}).get("sha256") or limits.hash(f).sha256
            facts = limits.probe(f)
        except MediaError as err:
            failed[media_id] = err
            continue
        media_rows.append({"media_id": media_id, "sha256": sha, "source_uri": f.source_uri, "size_bytes": f.size_bytes,
                           **facts, "arrival_partition": partition, "code_version": cv, "ingested_at": now})
        stats["media_seconds"] += facts["duration_s"] or 0.0
        context.log.info(f"[{n}/{len(first_file)}] {display_name(f.source_uri)}: {facts['kind']} "
                         f"{facts['duration_s']:.2f}s {media_id}")

    source_rows = []
    for uri, (f, media_id, sha, write) in seen.items():
        if media_id in failed:
            # Each file's row names that file: two bad copies of one content each get their own.
            bad.append(_quarantine(context, cv, f, _naming(failed[media_id], first_file[media_id][0], f), media_id))
        elif write:
            source_rows.append({"source_uri": uri, "media_id": media_id, "size_bytes": f.size_bytes,
                                "mtime_ns": f.mtime_ns, "arrival_partition": partition, "seen_at": now})
    stats["exact_copies"] = len(source_rows) - len({r["media_id"] for r in source_rows})
    for r in bad:
        context.log.warning(f"quarantined {r['source_uri']}: {r['message']}")

    audit: list[dict] = []
    media_version = sources_version = q_version = None
    if media_rows:
        media_version = lake.replace("media", media_rows, writer=STAGE)
        audit += [audit_entry(context, "media", "media", r["media_id"], code_version=cv, rows=1,
                              delta_version=media_version) for r in media_rows]
    if source_rows:
        sources_version = lake.replace("media_sources", source_rows, writer=STAGE)
        per_media = Counter(r["media_id"] for r in source_rows)
        audit += [audit_entry(context, "media_sources", "media_sources", mid, code_version=cv, rows=count,
                              delta_version=sources_version) for mid, count in sorted(per_media.items())]
        lake.clear_quarantine(STAGE, [r["source_uri"] for r in source_rows])
    if bad:
        q_version = lake.quarantine(bad)
        audit += [audit_entry(context, "media", "quarantine", r["media_id"], code_version=cv, rows=1,
                              delta_version=q_version, status="quarantined", source_uri=r["source_uri"]) for r in bad]
    at = utcnow()
    audit = [{**e, "at": at} for e in audit]
    a_version = lake.audit(audit, at=at)

    wall, cpu = clock.seconds, clock.cpu_seconds
    media_minutes = stats["media_seconds"] / 60.0
    common = {"files_in_window": len(files), **quarantine_metadata(bad),
              "wall_seconds": round(wall, 3)}
    # Data versions and fingerprints from the window's content and the stage's audit rows,
    # so a new file in a window (and only that) marks this partition downstream stale.
    window_ids = [r["media_id"] for r in lake.window_media(partition, columns=["media_id"])]
    window_uris = lake.read("media_sources", columns=["source_uri"],
                            filter=pads.field("arrival_partition") == str(partition)).column("source_uri").to_pylist()
    latest = lake.latest_audit(["media", "media_sources"], window_ids)
    media_meta = {
        **common, "new_media": len(media_rows), "already_done_media": stats["already_done_media"],
        "media_seconds": round(stats["media_seconds"], 3),
        "media_seconds_per_wall_second": round(stats["media_seconds"] / wall, 2) if wall else 0.0,
        "bytes_hashed": stats["bytes_hashed"],
        "delta_version": media_version if media_version is not None else lake.version("media"),
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_media_minute": round(cpu / media_minutes, 3) if media_minutes > 0 else 0.0,
        FINGERPRINT_KEY: fingerprint({m: r for (a, m), r in latest.items() if a == "media"}),
    }
    backlog = context.run.tags.get("mediaintel/inbox_backlog")
    if backlog is not None:  # runs the inbox sensor requested
        media_meta["inbox_backlog"] = int(backlog)
    record_stage("media", partition, media_meta)
    selected = context.selected_asset_keys
    if AssetKey("media") in selected:
        yield MaterializeResult(asset_key="media", metadata=media_meta, data_version=stage_data_version(cv, None, window_ids))
    if AssetKey("media_sources") in selected:
        yield MaterializeResult(
        asset_key="media_sources", data_version=stage_data_version(cv, None, window_uris),
        metadata={**common, "sources_written": len(source_rows), "unchanged_files": stats["unchanged_files"],
                  "still_quarantined": stats["still_quarantined"], "exact_copies": stats["exact_copies"],
                  "delta_version": sources_version if sources_version is not None else lake.version("media_sources"),
                  FINGERPRINT_KEY: fingerprint({m: r for (a, m), r in latest.items() if a == "media_sources"})
                  + f"-{len(window_uris)}"},
    )
    bookkeeping_events(context, quarantine_version=q_version, quarantined=len(bad), audit_version=a_version,
                       audited=len(audit), stage=STAGE)


class _Limits:
    """The configured size limit and read deadline, applied to every read of an inbox file."""

    def __init__(self):
        self.max_bytes = settings.get_int("MEDIAINTEL_MAX_FILE_BYTES")
        self.stall_s = settings.get_float("MEDIAINTEL_READ_TIMEOUT_S")

    def hash(self, f: InboxFile):
        return hash_file(f.path, max_bytes=self.max_bytes, stall_s=self.stall_s)

    def probe(self, f: InboxFile) -> dict:
        # FFmpeg reports no progress while it demuxes, so its deadline is the stall time
        # plus what reading the file at a slow disk's 20 MB/s would take.
        return with_deadline(lambda _: probe(f.path), stall_s=self.stall_s + max(f.size_bytes, 0) / 20e6,
                             what="probing", name=display_name(f.source_uri))


def _naming(err: MediaError, probed: InboxFile, f: InboxFile) -> MediaError:
    """The error of one file as the error of its exact copy ``f``: its message names ``f``."""
    if probed.source_uri == f.source_uri:
        return err
    message = err.message
    for old, new in ((probed.path, f.path), (os.path.basename(probed.path), os.path.basename(f.path)),
                     (display_name(probed.source_uri), display_name(f.source_uri))):
        message = message.replace(old, new)
    return MediaError(error_code(err.error_type), message)


def _quarantine(context, cv: str, f: InboxFile, err: MediaError, media_id) -> dict:
    return quarantine_row(context, STAGE, source_uri=f.source_uri, error=err, code_version=cv, media_id=media_id,
                          size_bytes=f.size_bytes, mtime_ns=f.mtime_ns)


MEDIA_SOURCES = AssetSpec(
    "media_sources", group_name="ingest", kinds={"delta"},
    description=("One row per file location where content was found (source_uri as found, media_id, size, "
                 "mtime, arrival window). Exact copies are several rows with one media_id. Delta table "
                 "`media_sources`."),
)

# media@2: the probe records display size and sample aspect ratio, pixel format, interlacing
# and stream start/end times, and reads every file safely (media.files); rows of media@1 are
# re-probed (not re-hashed), and files media@1 quarantined are tried again.
MEDIA = Stage(
    name="media", table="media", code_version="media@2", group="ingest", deps=(),
    description=(
        "One row per distinct content (media_id = first 16 hex digits of the SHA-256 of the bytes): kind "
        "(video/audio/image, from the content, not the file name), container, duration, streams, codecs, "
        "width/height/fps, sample rate and channels, probed with PyAV by demuxing every packet. Bad input "
        "(empty, unreadable, not media, truncated, corrupt) gets a `quarantine` row and the run goes on. "
        "Delta table `media`."
    ),
    compute=None, run=ingest, op_name="media_assets", resources=("inbox",), config=MediaConfig, also=(MEDIA_SOURCES,),
)
MEDIA_CODE_VERSION = MEDIA.code_version
media_assets = MEDIA.asset()
