"""Audio stage: what was said, when, in which language, with per-word timestamps."""


import os
from collections import Counter

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from ..audio import decode_audio
from ..jobs import GPU_OP_TAGS, GPU_POOL
from ..partitions import arrival_partitions
from ..probe import MediaError
from ..resources import LakehouseResource
from ..resources.whisper import WhisperResource
from .common import (
    MODEL_RESOURCE_KEY, Stopwatch, audit_entry, done_media, quarantine_and_audit, quarantine_row, stage_data_version,
    stage_metadata, window_media,
)
from ..checks.stats import table_stats
from ..lake.schemas import to_arrow
from .stage_config import StageConfig

# Bump when what this stage writes changes: media done with an older version are redone.
TRANSCRIPTS_CODE_VERSION = "transcripts@1"
STAGE = "transcripts"
ASSET = "transcript_segments"
TABLE = "transcript_segments"


class TranscriptsConfig(StageConfig):
    """``force``: transcribe every media of the window again, even those already done."""


@asset(
    name=ASSET,
    deps=["media"],
    partitions_def=arrival_partitions,
    code_version=TRANSCRIPTS_CODE_VERSION,
    group_name="audio",
    kinds={"delta", "python"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    metadata={MODEL_RESOURCE_KEY: "whisper"},  # a Whisper model change marks this stage stale
)
def transcript_segments(context: AssetExecutionContext, config: TranscriptsConfig, lake: LakehouseResource,
                        whisper: WhisperResource) -> MaterializeResult:
    """One row per speech segment of the window's media, recognised with faster-whisper
    (Whisper base, int8 on CPU / float16 on GPU): start and end in seconds from the start of
    the media, text, detected language and its probability, decoder confidence (avg_logprob,
    no_speech_prob, compression_ratio), every word with its own start, end and probability,
    and the hallucination guard's verdict (null = clean; flagged rows are kept but not
    embedded; segments Whisper itself calls silence are dropped). Media without an audio
    stream are recorded as done with no rows; media whose audio cannot be decoded are
    quarantined (stage 'transcripts'). Delta table `transcript_segments`.
    """
    clock = Stopwatch()
    partition = context.partition_key
    media = window_media(lake, partition, columns=["media_id", "source_uri", "has_audio", "duration_s"])
    model_id = whisper.model_id
    done = set() if config.force else done_media(lake, ASSET, [m["media_id"] for m in media],
                                                 code_version=TRANSCRIPTS_CODE_VERSION, model_id=model_id)
    todo = [m for m in media if m["media_id"] not in done]
    context.log.info(f"window {partition}: {len(media)} media, {len(done)} already transcribed with {model_id}")

    rows: list[dict] = []
    written: dict[str, int] = {}  # media_id -> rows, for every media this run settles
    bad: list[dict] = []
    stats: Counter = Counter()
    languages: Counter = Counter()
    audio_seconds = 0.0
    asr_seconds = 0.0  # time inside the model: GPU seconds when it runs on a GPU
    for n, m in enumerate(todo, 1):
        mid, uri = m["media_id"], m["source_uri"]
        if not m["has_audio"]:
            written[mid] = 0  # an image or a silent video: nothing to hear, done
            stats["no_audio"] += 1
            continue
        try:
            samples = decode_audio(uri, expected_s=m["duration_s"])
        except MediaError as err:
            bad.append(quarantine_row(context, STAGE, source_uri=uri, error_type=err.error_type, message=err.message,
                                      code_version=TRANSCRIPTS_CODE_VERSION, media_id=mid))
            context.log.warning(f"[{n}/{len(todo)}] quarantined {uri}: {err.message}")
            continue
        seconds = samples.size / 16000
        audio_seconds += seconds
        asr_clock = Stopwatch()
        result = whisper.transcribe(samples)
        asr_seconds += asr_clock.seconds
        del samples
        kept = 0
        for seg in result.segments:
            verdict = whisper.verdict(seg)
            if verdict is not None:
                stats[verdict] += 1
                if verdict.startswith("drop:"):
                    continue
            rows.append({
                "media_id": mid, "segment_index": kept, **seg,
                "language": result.language, "language_probability": result.language_probability,
                "model_id": model_id, "hallucination": verdict.split(":", 1)[1] if verdict else None,
                "code_version": TRANSCRIPTS_CODE_VERSION,
            })
            kept += 1
        written[mid] = kept
        languages[result.language] += 1
        context.log.info(f"[{n}/{len(todo)}] {os.path.basename(uri)}: {seconds:.1f}s, {result.language} "
                         f"({result.language_probability:.2f}), {kept} segment(s)")

    version = None
    audit: list[dict] = []
    if written:
        # Keys of every settled media, rows or not: a media that now has no speech loses old rows.
        version = lake.replace(TABLE, rows, keys=[(mid,) for mid in written])
        audit += [audit_entry(context, ASSET, TABLE, mid, code_version=TRANSCRIPTS_CODE_VERSION, rows=count,
                              delta_version=version, model_id=model_id) for mid, count in sorted(written.items())]
        uris = [m["source_uri"] for m in todo if m["media_id"] in written]
        lake.clear_quarantine(STAGE, uris)
    audit += quarantine_and_audit(context, lake, ASSET, bad, code_version=TRANSCRIPTS_CODE_VERSION,
                                  model_id=model_id)
    lake.audit(audit)

    flagged = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("flag:")}
    dropped = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("drop:")}
    # ASR confidence (mean avg_logprob, exp of it) and the language mix, plotted per run.
    quality = table_stats(TABLE, to_arrow(TABLE, rows))
    quality["languages"] = MetadataValue.json(dict(languages))
    return MaterializeResult(
        data_version=stage_data_version(TRANSCRIPTS_CODE_VERSION, model_id, [m["media_id"] for m in media]),
        metadata=stage_metadata(
            window_media_count=len(media), processed=len(written), skipped_done=len(done), failed=len(bad),
            rows=len(rows), media_seconds=audio_seconds, wall_seconds=clock.seconds,
            delta_version=version if version is not None else lake.version(TABLE), model_id=model_id,
            cpu_seconds=clock.cpu_seconds, asset=ASSET, partition=context.partition_key,
            gpu_seconds=asr_seconds if whisper.resolved_device() == "cuda" else None,
            media_without_audio=stats["no_audio"],
            segments_dropped=MetadataValue.json(dropped), segments_flagged=MetadataValue.json(flagged),
            **quality,
        ))
