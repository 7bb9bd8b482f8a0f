"""Stage 1: find the window's files, hash them into media_id, probe each new content once."""


import os
from collections import Counter

import pyarrow.dataset as pads
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from ..partitions import arrival_partitions
from ..probe import MediaError, hash_file, probe
from ..resources import InboxFile, LakehouseResource, LocalInboxResource
from ..resources.inbox import stat_file
from ..resources.lakehouse import utcnow
from .stage_config import StageConfig
from ..monitoring.metrics import record_stage
from .common import Stopwatch, audit_entry, quarantine_and_audit, quarantine_row, stage_data_version, window_media

# Bump when what this stage writes changes: media done with an older version are redone.
MEDIA_CODE_VERSION = "media@1"
STAGE = "media"


class MediaConfig(StageConfig):
    """``force``: re-hash and re-probe every file of the window, even content already done."""


@multi_asset(
    specs=[
        AssetSpec(
            "media",
            description=(
                "One row per distinct content (media_id = first 16 hex digits of the SHA-256 of the "
                "bytes): kind (video/audio/image, from the content, not the file name), container, "
                "duration, streams, codecs, width/height/fps, sample rate and channels, probed with "
                "PyAV by demuxing every packet. Delta table `media`."
            ),
            code_version=MEDIA_CODE_VERSION,
            group_name="ingest",
            kinds={"delta", "python"},
        ),
        AssetSpec(
            "media_sources",
            description=(
                "One row per file location where content was found (source_uri as found, media_id, "
                "size, mtime, arrival window). Exact copies are several rows with one media_id. "
                "Delta table `media_sources`."
            ),
            code_version=MEDIA_CODE_VERSION,
            group_name="ingest",
            kinds={"delta"},
        ),
    ],
    partitions_def=arrival_partitions,
)
def media_assets(context: AssetExecutionContext, config: MediaConfig, lake: LakehouseResource,
                 inbox: LocalInboxResource):
    """Ingest the arrival window's inbox files into `media` and `media_sources`.

    Bad input (empty, unreadable, not media, truncated, corrupt) gets a `quarantine` row and
    the run goes on. Content already probed with this code version is skipped, and files
    whose location, size and mtime are already recorded are not even re-hashed, so a rerun
    of a window is cheap and writes nothing.
    """
    clock = Stopwatch()
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
    quarantined = {
        r["source_uri"]: r
        for r in lake.read("quarantine", filter=(pads.field("stage") == STAGE) & ours).to_pylist()
    }
    for uri in sorted((set(known) | set(quarantined)) - listed):
        f = stat_file(uri)
        if f.size_bytes >= 0:  # files that are gone stay recorded
            files.append(f)
    extra = len(files) - len(listed)
    context.log.info(f"window {partition}: {len(files)} file(s)"
                     + (f", {extra} of them recorded earlier outside the inbox" if extra else ""))

    stats = Counter()
    bad: list[dict] = []
    # uri -> (file, media_id, sha256 or None, size, source row needs writing)
    seen: dict[str, tuple[InboxFile, str, str | None, int, bool]] = {}
    for i, f in enumerate(files, 1):
        prior = known.get(f.source_uri)
        if not config.force and prior and prior["size_bytes"] == f.size_bytes and prior["mtime_ns"] == f.mtime_ns:
            # Same location, size and mtime: same bytes as last time, no need to re-hash.
            stats["unchanged_files"] += 1
            seen[f.source_uri] = (f, prior["media_id"], None, f.size_bytes, False)
            continue
        q = quarantined.get(f.source_uri)
        if (not config.force and q and q["size_bytes"] == f.size_bytes and q["mtime_ns"] == f.mtime_ns
                and q["code_version"] == MEDIA_CODE_VERSION):
            stats["still_quarantined"] += 1
            continue
        try:
            h = hash_file(f.source_uri)
        except MediaError as err:
            bad.append(_quarantine_row(context, f, err, None))
            context.log.warning(f"[{i}/{len(files)}] quarantined {f.source_uri}: {err.message}")
            continue
        stats["bytes_hashed"] += h.size_bytes
        seen[f.source_uri] = (f, h.media_id, h.sha256, h.size_bytes, True)

    # Content already probed with this code version needs no second look.
    ids = sorted({v[1] for v in seen.values()})
    existing = {
        r["media_id"]: r
        for r in lake.read_keys("media", "media_id", ids, columns=["media_id", "sha256", "code_version"]).to_pylist()
    }
    first_file: dict[str, tuple[InboxFile, str | None, int]] = {}
    for f, media_id, sha, size, _ in seen.values():
        if media_id not in first_file or (first_file[media_id][1] is None and sha is not None):
            first_file[media_id] = (f, sha, size)
    media_rows: list[dict] = []
    failed_ids: dict[str, MediaError] = {}
    now = utcnow()
    for n, (media_id, (f, sha, size)) in enumerate(sorted(first_file.items()), 1):
        prior = existing.get(media_id)
        if prior and prior["code_version"] == MEDIA_CODE_VERSION and not config.force:
            stats["already_done_media"] += 1
            continue
        try:
            sha = sha or (prior or {}).get("sha256") or hash_file(f.source_uri).sha256
            facts = probe(f.source_uri)
        except MediaError as err:
            failed_ids[media_id] = err
            context.log.warning(f"[{n}/{len(first_file)}] quarantined {f.source_uri}: {err.message}")
            continue
        media_rows.append({
            "media_id": media_id, "sha256": sha, "source_uri": f.source_uri, "size_bytes": size,
            **facts, "arrival_partition": partition, "code_version": MEDIA_CODE_VERSION,
            "ingested_at": now,
        })
        stats["media_seconds"] += facts["duration_s"] or 0.0
        context.log.info(
            f"[{n}/{len(first_file)}] {os.path.basename(f.source_uri)}: {facts['kind']} "
            f"{facts['duration_s']:.2f}s {media_id}"
        )

    source_rows = []
    for uri, (f, media_id, sha, size, write) in seen.items():
        if media_id in failed_ids:
            bad.append(_quarantine_row(context, f, failed_ids[media_id], media_id))
            continue
        if not write:
            continue
        source_rows.append({
            "source_uri": uri, "media_id": media_id, "size_bytes": size, "mtime_ns": f.mtime_ns,
            "arrival_partition": partition, "seen_at": now,
        })
    stats["exact_copies"] = len(source_rows) - len({r["media_id"] for r in source_rows})

    audit: list[dict] = []
    media_version = sources_version = None
    if media_rows:
        media_version = lake.replace("media", media_rows)
        audit += [audit_entry(context, "media", "media", r["media_id"], code_version=MEDIA_CODE_VERSION,
                              rows=1, delta_version=media_version) for r in media_rows]
    if source_rows:
        sources_version = lake.replace("media_sources", source_rows)
        per_media = Counter(r["media_id"] for r in source_rows)
        audit += [audit_entry(context, "media_sources", "media_sources", mid, code_version=MEDIA_CODE_VERSION,
                              rows=count, delta_version=sources_version) for mid, count in sorted(per_media.items())]
        lake.clear_quarantine(STAGE, [r["source_uri"] for r in source_rows])
    audit += quarantine_and_audit(context, lake, "media", bad, code_version=MEDIA_CODE_VERSION)
    lake.audit(audit)

    by_type = Counter(r["error_type"] for r in bad)
    wall = clock.seconds
    common = {
        "files_in_window": len(files),
        "quarantined": len(bad),
        "quarantined_by_type": MetadataValue.json(dict(by_type)),
        "wall_seconds": round(wall, 3),
    }
    cpu = clock.cpu_seconds
    media_minutes = stats["media_seconds"] / 60.0
    backlog = context.run.tags.get("mediaintel/inbox_backlog")
    media_meta = {
        **common,
        "new_media": len(media_rows),
        "already_done_media": stats["already_done_media"],
        "media_seconds": round(stats["media_seconds"], 3),
        "media_seconds_per_wall_second": round(stats["media_seconds"] / wall, 2) if wall else 0.0,
        "bytes_hashed": stats["bytes_hashed"],
        "delta_version": media_version if media_version is not None else lake.version("media"),
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_media_minute": round(cpu / media_minutes, 3) if media_minutes > 0 else 0.0,
    }
    if backlog is not None:  # runs the inbox sensor requested
        media_meta["inbox_backlog"] = int(backlog)
    record_stage("media", partition, media_meta)
    # Data versions from the window's content, so a new file in a window (and only that)
    # marks this partition of the stages downstream stale in the UI.
    window_ids = [r["media_id"] for r in window_media(lake, partition, columns=["media_id"])]
    window_uris = lake.read("media_sources", columns=["source_uri"],
                            filter=pads.field("arrival_partition") == str(partition)).column("source_uri").to_pylist()
    yield MaterializeResult(asset_key="media", metadata=media_meta,
                            data_version=stage_data_version(MEDIA_CODE_VERSION, None, window_ids))
    yield MaterializeResult(
        asset_key="media_sources",
        data_version=stage_data_version(MEDIA_CODE_VERSION, None, window_uris),
        metadata={
            **common,
            "sources_written": len(source_rows),
            "unchanged_files": stats["unchanged_files"],
            "still_quarantined": stats["still_quarantined"],
            "exact_copies": stats["exact_copies"],
            "delta_version": sources_version if sources_version is not None else lake.version("media_sources"),
        },
    )


def _quarantine_row(context: AssetExecutionContext, f: InboxFile, err: MediaError, media_id: str | None) -> dict:
    return quarantine_row(context, STAGE, source_uri=f.source_uri, error_type=err.error_type, message=err.message,
                          code_version=MEDIA_CODE_VERSION, media_id=media_id, size_bytes=f.size_bytes,
                          mtime_ns=f.mtime_ns)
