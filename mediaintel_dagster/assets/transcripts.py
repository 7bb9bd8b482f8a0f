"""Audio stage: what was said, when, in which language, with per-word timestamps."""

import os
from collections import Counter

from dagster import MetadataValue

from ..media.audio import decode_audio
from ..media.errors import ErrorCode, MediaError
from .stage import Outcome, Stage, StageRun, Stopwatch


VERDICT = "verdict:"


def transcribe_samples(whisper, samples) -> tuple:
    """(Transcript, [(segment, verdict)]): Whisper's result for 16 kHz mono float32 samples and
    the hallucination guard's verdict on each segment (None, 'flag:...' or 'drop:...'). The
    stage writes the segments not dropped; bench/speech.py measures exactly this."""
    result = whisper.transcribe(samples)
    return result, [(seg, whisper.verdict(seg)) for seg in result.segments]


def transcribe(run: StageRun, m: dict) -> Outcome:
    """One media's speech segments; undecodable audio raises MediaError (quarantined)."""
    whisper = run.model
    mid, uri = m["media_id"], m["source_uri"]
    if not m["has_audio"]:
        with run.lock:
            run.stats["media_without_audio"] += 1
        return Outcome(mid, note="no audio")  # an image or a silent video: nothing to hear, done
    # A file:// source_uri (non-UTF-8 name) decodes to its bytes; a source that vanished or
    # became a FIFO since ingest raises its MediaError instead of hanging the decoder; an s3://
    # one without a staged copy here is fetched and checked against the media's SHA-256.
    from ..media.files import source_path

    samples = decode_audio(source_path(uri, m.get("sha256")), expected_s=m["duration_s"])
    seconds = samples.size / 16000
    clock = Stopwatch()
    try:
        result, judged = transcribe_samples(whisper, samples)
    except Exception as exc:  # the model, not the file: worth a retry (memory, a lost GPU)
        raise MediaError(ErrorCode.MODEL_FAILED, f"{os.path.basename(uri)}: Whisper failed: "
                                                 f"{type(exc).__name__}: {exc}") from exc
    del samples
    rows = []
    verdicts = Counter(VERDICT + v for _, v in judged if v is not None)  # summarize reports them
    with run.lock:  # two media may be transcribed at once (WhisperResource.parallel_media)
        run.model_seconds += clock.seconds
        run.stats.update(verdicts)
    for seg, verdict in judged:
        if verdict is not None and verdict.startswith("drop:"):
            continue
        rows.append({
            "media_id": mid, "segment_index": len(rows), **seg,
            "language": result.language, "language_probability": result.language_probability,
            "model_id": whisper.model_id, "hallucination": verdict.split(":", 1)[1] if verdict else None,
            "code_version": TRANSCRIPTS.code_version,
        })
    return Outcome(mid, rows=rows, media_seconds=seconds,
                   note=f"{os.path.basename(uri)}: {seconds:.1f}s, {result.language} "
                        f"({result.language_probability:.2f})")


def summarize(run: StageRun, rows) -> dict:
    verdicts = {k[len(VERDICT):]: run.stats.pop(k) for k in [k for k in run.stats if k.startswith(VERDICT)]}
    return {
        "segments_dropped": MetadataValue.json({k.split(":", 1)[1]: v for k, v in verdicts.items() if k.startswith("drop:")}),
        "segments_flagged": MetadataValue.json({k.split(":", 1)[1]: v for k, v in verdicts.items() if k.startswith("flag:")}),
    }


TRANSCRIPTS = Stage(
    name="transcript_segments", table="transcript_segments", code_version="transcripts@4", group="audio",
    description=(
        "One row per speech segment of the window's media, recognised with faster-whisper (Whisper base; "
        "precision policy 'auto': int8 on CPU, float16 on GPU, the precision that ran is in audit_log): start "
        "and end in seconds from the start of the media, text, detected language and its probability, decoder "
        "confidence (avg_logprob, no_speech_prob, compression_ratio), every word with its own start, end and "
        "probability, and the hallucination guard's verdict (null = clean; flagged rows are kept but not "
        "embedded; segments Whisper itself calls silence are dropped). Media without an audio stream are "
        "recorded as done with no rows; media whose audio cannot be decoded are quarantined. Delta table "
        "`transcript_segments`."
    ),
    compute=transcribe, model="whisper", gpu=True, parallel=lambda run: run.model.parallel_media(),
    media_columns=("media_id", "source_uri", "sha256", "has_audio", "duration_s"), summarize=summarize,
)
TRANSCRIPTS_CODE_VERSION = TRANSCRIPTS.code_version
transcript_segments = TRANSCRIPTS.asset()
