"""Why an input could not be processed: one enumeration of quarantine error types.

Every `quarantine` row's ``error_type`` is one of these values, and every stage raises
:class:`MediaError` with one of them, so a user (or a script, or the retry rule) can act
on the type without reading messages. Each code says whether retrying the same input with
the same code and model can help (``retryable``): a file that was unreadable because of a
permission or a vanished mount may read next time; a file that is not media never will.

The stage skeleton (``assets/stage.py``) retries quarantined media by this flag: a
retryable error is retried on later runs up to ``max_attempts`` times; a permanent one
waits until something changes (the file's bytes, the stage's code version or model, the
upstream rows it was made from) or a run says ``force``. Values are stable: they are
stored in the lakehouse and queried by users. Add codes; never rename one.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """A quarantine error type: its stored value, what it means, and whether a retry helps."""

    def __new__(cls, value: str, retryable: bool, meaning: str):
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.retryable = retryable
        obj.meaning = meaning
        return obj

    # -- the input file ------------------------------------------------------------------
    EMPTY_FILE = ("empty_file", False, "The file has 0 bytes: nothing was delivered, or the copy failed.")
    UNREADABLE = ("unreadable", True,
                  "The file cannot be opened or read (missing, dangling link, permission, I/O error); "
                  "it may read after the cause is fixed.")
    NOT_A_FILE = ("not_a_file", False,
                  "A FIFO, socket, device, directory or a link to one: never opened for reading (it could "
                  "block for ever or never end).")
    BAD_PATH = ("bad_path", False,
                "The path cannot be opened as named: a symbolic link loop, or a path longer than PATH_MAX.")
    TOO_LARGE = ("too_large", False,
                 "The file is larger than MEDIAINTEL_MAX_FILE_BYTES; raise the limit, then redrive it.")
    READ_TIMEOUT = ("read_timeout", True,
                    "A read made no progress for MEDIAINTEL_READ_TIMEOUT_S (a hung mount or device); retried.")
    CHANGED_WHILE_READ = ("changed_while_read", True,
                          "The file's size or mtime moved while it was read (still being written, replaced or "
                          "deleted); retried on a later run.")
    NOT_MEDIA = ("not_media", False, "The bytes are not a video, audio or image FFmpeg can read.")
    TRUNCATED = ("truncated", False, "The file is cut short: a stream ends early or holds no data.")
    CORRUPT = ("corrupt", False, "The container opens but its frames or samples cannot be decoded.")
    NO_AUDIO = ("no_audio", False, "The audio stage was asked to decode a file that has no audio stream.")
    DECODE_ERROR = ("decode_error", True,
                    "An unexpected decoder failure (not a known kind of damage); retried in case it was "
                    "transient (memory, a busy filesystem).")
    # -- derived objects (keyframes) -------------------------------------------------------
    MISSING_KEYFRAME = ("missing_keyframe", True,
                        "A scene's keyframe object is missing (deleted, or not yet visible on the object store).")
    UNREADABLE_KEYFRAME = ("unreadable_keyframe", True,
                           "A scene's keyframe object is empty or not a decodable image (a partial write, a "
                           "damaged object); retried in case it is rewritten or restored, and redone when scenes "
                           "rewrites it.")
    UNSUPPORTED_URI = ("unsupported_uri", False, "A URI scheme this deployment cannot read (configuration).")
    # -- models ----------------------------------------------------------------------------
    MODEL_FAILED = ("model_failed", True,
                    "The model raised on this input (OCR engine, embedding batch, ASR); retried in case it "
                    "was transient (out of memory, a lost GPU).")
    # -- serving index ---------------------------------------------------------------------
    INDEX_FAILED = ("index_failed", True,
                    "The serving index (LanceDB or Pinecone) refused the write or did not answer in time; "
                    "retried, since the service usually comes back.")
    CHECK_FAILED = ("check_failed", True,
                    "A blocking check failed on a table upstream of the serving index for this window: its "
                    "media were taken out of the index; each retry looks at the check again and reindexes "
                    "them once the rows pass.")

    def __str__(self) -> str:
        return self.value


# Values written by releases before this enumeration, as they may sit in a lake: read as
# their code (new rows are never written with them).
LEGACY_VALUES = {"ocr_failed": "model_failed", "embed_failed": "model_failed"}


def error_code(value: "ErrorCode | str") -> ErrorCode:
    """The ErrorCode for a stored value; an unknown value fails loudly (no free text)."""
    try:
        return value if isinstance(value, ErrorCode) else ErrorCode(LEGACY_VALUES.get(value, value))
    except ValueError:
        raise ValueError(f"unknown quarantine error type {value!r}; known: "
                         f"{', '.join(c.value for c in ErrorCode)}") from None


class MediaError(Exception):
    """An input that cannot be processed: an :class:`ErrorCode` and a message a person understands.

    ``error_type`` is the code's stored value (what the `quarantine` table holds).
    """

    def __init__(self, code: "ErrorCode | str", message: str):
        super().__init__(message)
        self.code = error_code(code)
        self.error_type = self.code.value
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code.retryable


def error_table() -> list[tuple[str, bool, str]]:
    """(value, retryable, meaning) of every code, for docs and the CLI."""
    return [(c.value, c.retryable, c.meaning) for c in ErrorCode]
