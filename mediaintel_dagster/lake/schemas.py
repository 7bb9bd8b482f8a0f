"""The lakehouse contract: every Delta table's Arrow schema, in one place.

Table and column names are a contract (DESIGN.md): users, DuckDB queries and tools rely
on them. Add columns freely; rename none. ``KEYS`` says which columns identify the rows a
writer replaces: writing a media's rows replaces its old rows, so reruns are idempotent.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "media": pa.schema(
        [
            ("media_id", pa.string()),
            ("sha256", pa.string()),
            ("source_uri", pa.string()),  # first location this content was seen at
            ("size_bytes", pa.int64()),
            ("kind", pa.string()),  # 'video', 'audio' or 'image', from the content
            ("container", pa.string()),
            ("duration_s", pa.float64()),
            ("has_video", pa.bool_()),
            ("has_audio", pa.bool_()),
            ("video_codec", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("fps", pa.float64()),
            # width/height: the coded picture as stored. rotation: the display matrix's
            # counter-clockwise degrees (a phone held upright: -90 or 90). What a player
            # shows, upright and in square pixels, is display_width x display_height.
            ("rotation", pa.int32()),
            ("sample_aspect_ratio", pa.string()),  # 'num:den' of a pixel; '64:45' is 16:9 PAL
            ("display_width", pa.int32()),
            ("display_height", pa.int32()),
            ("pixel_format", pa.string()),  # FFmpeg's name: yuv420p, yuv420p10le, yuv422p, ...
            ("interlaced", pa.bool_()),
            ("video_start_s", pa.float64()),  # first timestamp of the stream after the media's start
            ("video_end_s", pa.float64()),  # where the picture ends: before duration_s if the sound outlasts it
            ("audio_start_s", pa.float64()),
            ("video_frames", pa.int64()),
            ("audio_codec", pa.string()),
            ("sample_rate", pa.int32()),
            ("channels", pa.int32()),
            ("bit_rate", pa.int64()),
            ("streams", pa.string()),  # JSON list: index, type, codec, language per stream
            ("arrival_partition", pa.string()),
            ("code_version", pa.string()),
            ("ingested_at", TS),
        ]
    ),
    "media_sources": pa.schema(
        [
            ("source_uri", pa.string()),
            ("media_id", pa.string()),
            ("size_bytes", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("arrival_partition", pa.string()),
            ("seen_at", TS),
        ]
    ),
    "quarantine": pa.schema(
        [
            ("source_uri", pa.string()),
            ("stage", pa.string()),
            ("error_type", pa.string()),
            ("message", pa.string()),
            ("media_id", pa.string()),  # null when the bytes could not be read
            ("size_bytes", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("arrival_partition", pa.string()),
            ("run_id", pa.string()),
            ("code_version", pa.string()),
            ("seen_at", TS),
            # How many times this stage quarantined this input with this code version (and,
            # for files, these bytes): the retry rule stops retrying at max_attempts.
            ("attempts", pa.int64()),
            ("retryable", pa.bool_()),  # media.errors.ErrorCode.retryable of error_type
            # Set by `mediaintel redrive` (or redrive_job): the next run retries this input once,
            # whatever the retry rule says; a new failure writes a fresh row without it.
            ("redrive_requested_at", TS),
        ]
    ),
    "scenes": pa.schema(
        [
            ("media_id", pa.string()),
            ("scene_index", pa.int32()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("keyframe_s", pa.float64()),
            ("keyframe_uri", pa.string()),
            ("phash", pa.string()),
            ("code_version", pa.string()),
            ("start_frame", pa.int64()),  # index of the shot's first decoded frame
            ("frame_count", pa.int64()),  # decoded frames in the shot
            ("keyframe_width", pa.int32()),  # keyframe JPEG size, upright
            ("keyframe_height", pa.int32()),
            ("cut_score", pa.float64()),  # detector score of the cut that starts the shot (0 for the first)
            # Which detector decided the boundary that starts the shot: 'yuvdiff-adaptive@2'
            # (cheap), 'transnetv2@1.0.5' (neural), 'image' for an image.
            ("detector", pa.string()),
            # How the shot begins: 'start' (the first shot), 'cut', 'dissolve', 'fade' or 'wipe';
            # the transition's first and last frame (both the cut frame for a cut; null for 'start').
            ("transition", pa.string()),
            ("transition_start_s", pa.float64()),
            ("transition_end_s", pa.float64()),
            # Keyframes beyond the representative one, for a shot whose picture changes (OCR reads them).
            ("extra_keyframe_s", pa.list_(pa.float64())),
            ("extra_keyframe_uris", pa.list_(pa.string())),
        ]
    ),
    "transcript_segments": pa.schema(
        [
            ("media_id", pa.string()),
            ("segment_index", pa.int32()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("text", pa.string()),
            ("language", pa.string()),
            ("avg_logprob", pa.float64()),
            ("model_id", pa.string()),
            ("language_probability", pa.float64()),  # of the media's detected language
            ("no_speech_prob", pa.float64()),
            ("compression_ratio", pa.float64()),
            ("words", pa.list_(pa.struct([("word", pa.string()), ("start", pa.float64()),
                                          ("end", pa.float64()), ("probability", pa.float64())]))),
            # The hallucination guard's verdict: null = clean; 'no_speech', 'repetitive' or
            # 'empty' = kept but flagged (not embedded). Dropped segments are not written.
            ("hallucination", pa.string()),
            ("code_version", pa.string()),
        ]
    ),
    "ocr_text": pa.schema(
        [
            ("media_id", pa.string()),
            ("scene_index", pa.int32()),
            ("line_index", pa.int32()),
            ("text", pa.string()),  # spaces between words restored (see resources/ocr.py)
            ("confidence", pa.float64()),
            ("model_id", pa.string()),
            ("raw_text", pa.string()),  # as the recogniser read it
            ("box", pa.list_(pa.float32())),  # x0, y0, x1, y1, x2, y2, x3, y3 in keyframe pixels
            ("keyframe_s", pa.float64()),
        ]
    ),
    "embeddings": pa.schema(
        [
            ("media_id", pa.string()),
            ("item_kind", pa.string()),  # 'scene', 'segment' or 'ocr'
            ("item_index", pa.int32()),
            ("model_id", pa.string()),
            ("vector", pa.list_(pa.float32())),
        ]
    ),
    "index_entries": pa.schema(
        [
            ("entry_id", pa.string()),
            ("media_id", pa.string()),
            ("item_kind", pa.string()),
            ("item_index", pa.int32()),
            ("model_id", pa.string()),
            # 'lancedb' or 'pinecone' for vectors; 'lancedb-fts' for the keyword (BM25) index.
            ("backend", pa.string()),
            ("namespace", pa.string()),  # the LanceDB table or Pinecone namespace holding it
            ("dim", pa.int32()),  # vector length (null for keyword entries)
            ("indexed_at", TS),
            ("code_version", pa.string()),
        ]
    ),
    # Per keyframe (representative and extra) of a media: the fingerprints near_duplicates
    # compares (media/fingerprints.py), so a new media meets every media in the lake
    # without decoding their keyframes again.
    "keyframe_hashes": pa.schema(
        [
            ("media_id", pa.string()),
            ("scene_index", pa.int32()),
            ("keyframe_n", pa.int32()),  # 0: the shot's representative keyframe; n: its n-th extra one
            ("keyframe_s", pa.float64()),
            ("keyframe_uri", pa.string()),
            # 64-bit pHash (16 hex digits) of the picture without black bars, at centred crops
            # keeping 100 %, 90 % and 80 % of each side.
            ("hash", pa.string()),
            ("hash_90", pa.string()),
            ("hash_80", pa.string()),
            # ... and at corner crops keeping 90 % of each side: top-left, top-right, bottom-left, bottom-right.
            ("hash_tl", pa.string()),
            ("hash_tr", pa.string()),
            ("hash_bl", pa.string()),
            ("hash_br", pa.string()),
            ("informative", pa.bool_()),  # false: never evidence of a duplicate
            ("low_info_reason", pa.string()),  # 'near_black', 'near_uniform', 'low_edges' or null
            ("luma_mean", pa.float64()),
            ("luma_std", pa.float64()),
            ("edge_density", pa.float64()),
            ("content_width", pa.int32()),  # the picture inside the bars, keyframe pixels
            ("content_height", pa.int32()),
            ("bar_top", pa.int32()),
            ("bar_bottom", pa.int32()),
            ("bar_left", pa.int32()),
            ("bar_right", pa.int32()),
            ("code_version", pa.string()),
        ]
    ),
    # One row per (media, other media) found showing the same content, as seen when
    # `media_id` was processed (the row belongs to media_id: rerunning it replaces them);
    # the pair's other direction is the other media's row. Exact copies (one content at
    # several locations) are media_id == duplicate_of, method 'exact_bytes', one row per
    # further location.
    "near_duplicates": pa.schema(
        [
            ("media_id", pa.string()),
            ("duplicate_of", pa.string()),
            ("method", pa.string()),  # 'exact_bytes' or 'keyframe_sequence'
            ("score", pa.float64()),  # 0-1: the aligned share of the more covered media (1.0: same bytes)
            ("relation", pa.string()),  # 'same_bytes', 'copy', 'contained_in' (media_id inside the other), 'contains'
            ("matched_keyframes", pa.int32()),
            ("evidence", pa.float64()),  # rarity-weighted aligned informative keyframes
            ("coverage", pa.float64()),  # of media_id's informative keyframes
            ("duplicate_coverage", pa.float64()),  # of duplicate_of's
            ("mean_hash_distance", pa.float64()),  # bits of 64, over the aligned keyframes
            # Share of one media's keyframes, where the two timelines overlap, that show another picture.
            ("contradiction", pa.float64()),
            ("speed_ratio", pa.float64()),  # seconds of duplicate_of per second of media_id
            ("offset_s", pa.float64()),  # t(duplicate_of) = speed_ratio * t(media_id) + offset_s
            ("source_uri", pa.string()),  # media_id's first location
            # exact_bytes: another location of the same bytes; keyframe_sequence: duplicate_of's first location.
            ("duplicate_source_uri", pa.string()),
            ("code_version", pa.string()),
            ("computed_at", TS),
        ]
    ),
    "audit_log": pa.schema(
        [
            ("asset", pa.string()),
            ("partition", pa.string()),
            ("media_id", pa.string()),
            ("source_uri", pa.string()),  # for quarantined files that have no media_id
            ("table_name", pa.string()),
            ("status", pa.string()),  # 'written', 'partial' (some items quarantined) or 'quarantined'
            ("run_id", pa.string()),
            ("code_version", pa.string()),
            ("model_id", pa.string()),  # the model that made the rows (a fallback's own id when routed)
            ("rows", pa.int64()),
            ("delta_version", pa.int64()),
            ("at", TS),
            # The stage's configured (logical) model: what its code version and done-check use,
            # the same on every machine. model_route says why model_id differs from it (a
            # fallback) and is null when the configured model ran.
            ("model_requested", pa.string()),
            ("model_route", pa.string()),
            # Where and how the step ran: recorded beside the model, never inside its id.
            ("device", pa.string()),
            ("compute_type", pa.string()),
            ("batch_size", pa.int64()),
        ]
    ),
}

# Columns that identify the rows one write replaces (None: append-only log).
KEYS: dict[str, list[str] | None] = {
    "media": ["media_id"],
    "media_sources": ["source_uri"],
    "quarantine": ["source_uri", "stage"],
    "scenes": ["media_id"],
    "transcript_segments": ["media_id"],
    "ocr_text": ["media_id"],
    # Two stages (CLIP on scenes, text models on segments/OCR) share this table, and
    # vectors of two models live side by side: a write replaces only its own kind+model.
    "embeddings": ["media_id", "item_kind", "model_id"],
    # The index stage writes all of a media's entries in one backend at once (every model
    # whose vectors the media has, so two model versions stay side by side).
    "index_entries": ["media_id", "backend"],
    "keyframe_hashes": ["media_id"],
    "near_duplicates": ["media_id"],
    "audit_log": None,
}

TABLES = tuple(SCHEMAS)


def schema(table: str) -> pa.Schema:
    try:
        return SCHEMAS[table]
    except KeyError:
        raise KeyError(f"unknown lakehouse table {table!r}; known: {', '.join(TABLES)}") from None


def to_arrow(table: str, rows: list[dict]) -> pa.Table:
    """Rows (dicts) as an Arrow table with the contract schema; missing columns are null."""
    sch = schema(table)
    return pa.Table.from_pylist([{name: row.get(name) for name in sch.names} for row in rows], schema=sch)
