"""Every setting read from the environment, in one place.

The CLI, `dagster dev`, the sensors, the checks and the tests all read settings through
this module (a test fails if another module reads ``os.environ``), so what a deployment
can set is this table, and the README's configuration section is generated from the same
words. Values are read when asked for, never frozen at import. Resources take their
deploy values from here (or from Dagster ``EnvVar`` in the production resource set,
``definitions.RESOURCES``).
"""

from __future__ import annotations

import os
from pathlib import Path

# name -> (default, meaning). None: unset by default.
SETTINGS: dict[str, tuple[str | None, str]] = {
    "MEDIAINTEL_DEPLOYMENT": ("local", "which resource set build_defs uses: `local` (embedded default) or `production`"),
    "MEDIAINTEL_HOME": (".mediaintel", "working folder of the embedded default"),
    "MEDIAINTEL_LAKE": (None, "Delta tables root (default `$MEDIAINTEL_HOME/lake`; `s3://bucket/prefix` in production)"),
    "MEDIAINTEL_INBOX": (None, "folder(s) the inbox sensor watches, `:`-separated (default `$MEDIAINTEL_HOME/inbox`)"),
    "MEDIAINTEL_OBJECTS": (None, "keyframes and other derived blobs (default `$MEDIAINTEL_HOME/objects`)"),
    "MEDIAINTEL_MODELS": (None, "where packaged models are assembled once (default `$MEDIAINTEL_HOME/models`)"),
    "MEDIAINTEL_CLIP_PRETRAINED": ("laion2b_s34b_b79k", "OpenCLIP tag (looked up in the HF cache) or a checkpoint file path"),
    "DAGSTER_HOME": (None, "Dagster instance (default `$MEDIAINTEL_HOME/dagster`)"),
    "MEDIAINTEL_MAX_FILE_BYTES": (str(64 << 30), "inbox files larger than this are quarantined (`too_large`) unread"),
    "MEDIAINTEL_READ_TIMEOUT_S": ("60", "a file read that makes no progress this long is quarantined (`read_timeout`, retried)"),
    "MEDIAINTEL_MAX_PENDING_RUNS": ("32", "the inbox sensor requests no runs while this many are queued or running (backpressure)"),
    "MEDIAINTEL_MAX_GPU_RUNS": ("8", "the queue sensors request no runs while this many GPU runs (tag mediaintel/gpu) are queued or running"),
    "MEDIAINTEL_QUEUE_URL": (None, "AMQP URL of the RabbitMQ broker; set, it turns on rabbitmq_ingest_sensor (docs/queues.md)"),
    "MEDIAINTEL_QUEUE_NAME": ("mediaintel.ingest", "RabbitMQ quorum queue of object-created events (dead letters in `<name>.dlq`)"),
    "MEDIAINTEL_QUEUE_DELIVERY_LIMIT": ("10", "RabbitMQ x-delivery-limit: deliveries of one message before the broker dead-letters it (fixed when the queue is declared)"),
    "MEDIAINTEL_SQS_QUEUE_URL": (None, "SQS queue of S3 object-created notifications; set, it turns on sqs_ingest_sensor"),
    "MEDIAINTEL_SQS_DLQ_URL": (None, "SQS dead-letter queue for messages that cannot become a run"),
    "MEDIAINTEL_QUEUE_BATCH": ("500", "messages a queue sensor receives per tick"),
    "MEDIAINTEL_INDEX_BACKEND": ("lancedb", "serving vector index: `lancedb` (embedded, on local disk or `s3://`) or `pinecone`"),
    "MEDIAINTEL_INDEX": (None, "LanceDB folder of the serving index and its keyword (BM25) index (default `$MEDIAINTEL_HOME/index`)"),
    "MEDIAINTEL_INDEX_ANN_MIN_ROWS": ("50000", "a LanceDB table this large gets an ANN index; smaller ones are searched exactly"),
    "MEDIAINTEL_SEARCH_MIN_SCORE": ("0.25", "search: a hit only text-vector search found needs this cosine (MiniLM); `0` keeps every hit, however weak"),
    "MEDIAINTEL_SEARCH_MIN_PICTURE_SCORE": ("0.2", "search: the same floor for CLIP's text-to-picture cosine (a scene hit)"),
    "MEDIAINTEL_SEARCH_RELATIVE_SCORE": ("0.5", "search: a vector hit also needs this share of the query's best cosine (keyword hits always stay)"),
    "MEDIAINTEL_API_KEYS": (None, "REST API keys, comma-separated (header `X-API-Key` or `Authorization: Bearer`); unset: no keys asked and `mediaintel serve` listens on loopback only"),
    "MEDIAINTEL_API_URL": (None, "where `mediaintel search` finds a running API (default: probe http://127.0.0.1:8765)"),
    "MEDIAINTEL_API_MAX_UPLOAD_MB": ("64", "REST API: largest file `POST /v1/similar` accepts, in MiB"),
    "MEDIAINTEL_API_MAX_QUERY_CHARS": ("500", "REST API: longest search query, in characters"),
    "MEDIAINTEL_API_MAX_K": ("100", "REST API: most hits per page (`k`)"),
    "MEDIAINTEL_API_MAX_PAGE": ("100", "REST API: deepest page of a search"),
    "MEDIAINTEL_API_TIMEOUT_S": ("30", "REST API: a search or similar request still running after this many seconds answers 504"),
    "PINECONE_API_KEY": (None, "Pinecone API key (production index; the live Pinecone test runs only when it is set)"),
    "PINECONE_INDEX_HOST": (None, "data-plane host of the Pinecone index (`https://<index>-<project>.svc.<region>.pinecone.io`), or several separated by commas: one index per vector dimension"),
    "MEDIAINTEL_PINECONE_TIMEOUT_S": ("10", "timeout of every Pinecone call"),
    "MEDIAINTEL_PINECONE_RETRIES": ("5", "retries (exponential backoff) of a Pinecone call answered 429 or 5xx, or timed out"),
    "MEDIAINTEL_PARTITION_START": ("2026-11-01", "first arrival date of the partitions (earlier mtimes go to it); set it to the day your data starts, never later than a window that has data (docs/ui.md)"),
    "MEDIAINTEL_OWNERS": ("team:media-intel", "owners of every asset in the Dagster UI, comma-separated (`team:name` or emails)"),
    "MEDIAINTEL_SHARDS": ("4", "shards per arrival date (changing it re-maps files to windows: pick once)"),
    "MEDIAINTEL_EXECUTOR": ("in_process", "`in_process`, `multiprocess` or `k8s` (a pod per step)"),
    "MEDIAINTEL_STEP_RETRIES": ("2", "a stage step that fails on a transient error (storage or network I/O, a lake commit or object store call out of its own retries, out of memory) is retried this many times within its run (Dagster's step retry, with a RetryPolicy's exponential backoff and jitter); a bug, a configuration error or Ctrl-C fails or stops it at once; `0`: never"),
    "MEDIAINTEL_STEP_RETRY_DELAY_S": ("10", "the first step retry waits about this long (plus or minus as much at random), the next 3x as long"),
    "MEDIAINTEL_WHISPER_BATCH_SIZE": ("auto", "speech recognition: pieces decoded at once by faster-whisper's batched pipeline (2.7x faster on a CPU, a little worse WER); `0`: the sequential decoder; `auto`: 16 on a GPU, sequential on a CPU (docs/perf.md)"),
    "MEDIAINTEL_WHISPER_WORKERS": ("0", "speech recognition on a CPU: media transcribed at once, each by its own worker (`0`: one per core, at most 4)"),
    "MEDIAINTEL_WHISPER_PIECE_S": ("60", "speech recognition, sequential decoder: media longer than 1.2x this are cut in pauses into pieces of about this many seconds, decoded at once on every worker, so a window's last media keeps every core busy (`0`: a media is one piece, on one worker; docs/perf.md)"),
    "MEDIAINTEL_OCR_DETECT_SIZE": ("min:360", "OCR text detection size: `min:N` scales keyframes whose short side is under N up to N (RapidOCR's own default is `min:736`: 3x slower on 360p, same words; docs/perf.md), `max:N` scales those whose long side is over N down"),
    "MEDIAINTEL_CHECKS_ENGINE": ("ge", "`ge` (Great Expectations) or `arrow` (the same rules without GE)"),
    "MEDIAINTEL_LOG_FORMAT": ("text", "`json`: one JSON object per log line"),
    "MEDIAINTEL_METRICS": ("", "`prometheus`: stage and sensor gauges"),
    "MEDIAINTEL_PROMETHEUS_TEXTFILE_DIR": (None, "node_exporter textfile folder for the gauges"),
    "MEDIAINTEL_PROMETHEUS_PUSHGATEWAY": (None, "host:port of a Pushgateway"),
    "MEDIAINTEL_PROMETHEUS_PORT": (None, "serve the gauges over HTTP on this port"),
    "MEDIAINTEL_PROMETHEUS_ADDR": ("127.0.0.1", "address of that HTTP endpoint"),
    "MEDIAINTEL_CHECK_TIME_TOLERANCE_S": ("0.25", "contract checks: slack on times against the media's duration"),
    "MEDIAINTEL_ALLOWED_LANGUAGES": (None, "contract checks: comma-separated language codes (default: Whisper's)"),
    "MEDIAINTEL_EMBEDDING_DIMS": (None, "contract checks: `model_id=dim,...` for models the checks do not know"),
    "MEDIAINTEL_UNIT_NORM_MODELS": (None, "contract checks: model_id prefixes whose vectors must have norm 1"),
    "MEDIAINTEL_DRIFT_REFERENCE_DAYS": ("7", "drift checks: dates in the reference window"),
    "MEDIAINTEL_DRIFT_MIN_ROWS": ("5", "drift checks: fewer rows on either side pass with a note"),
    "MEDIAINTEL_DRIFT_LANGUAGE_TVD": ("0.3", "drift: language-mix total variation threshold"),
    "MEDIAINTEL_DRIFT_LOGPROB_SHIFT": ("0.25", "drift: ASR mean avg_logprob shift threshold"),
    "MEDIAINTEL_DRIFT_OCR_CONFIDENCE_SHIFT": ("0.15", "drift: OCR mean confidence shift threshold"),
    "MEDIAINTEL_DRIFT_CENTROID_COSINE": ("0.2", "drift: embedding centroid cosine distance threshold"),
    "MEDIAINTEL_S3_MAX_ATTEMPTS": ("8", "tries of each S3 request (boto3 standard retries: 5xx, SlowDown, throttling, connection errors)"),
    "HF_HUB_OFFLINE": ("1", "`0` lets OpenCLIP download weights at run time; nothing else ever downloads"),
    "CUDA_VISIBLE_DEVICES": (None, "`` or `-1` hides GPUs from the device detection"),
}


def get(name: str) -> str | None:
    """The setting's value from the environment, or its default (unknown names fail)."""
    try:
        default = SETTINGS[name][0]
    except KeyError:
        raise KeyError(f"{name} is not a mediaintel setting; add it to config.SETTINGS") from None
    value = os.environ.get(name)
    # An empty value means "unset" where there is a default (MEDIAINTEL_SHARDS=""), and
    # stays empty where emptiness itself means something (CUDA_VISIBLE_DEVICES="").
    if value is None or (value == "" and default is not None):
        return default
    return value


# The AWS SDK's own variables, read as every AWS tool reads them (not mediaintel settings:
# the README's S3 section names them); the S3 lake and object store hand them to delta-rs and boto3.
AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ALLOW_HTTP", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME")


def aws_environment() -> dict[str, str]:
    """The AWS variables set (non-empty) in this process."""
    return {k: v for k in AWS_VARIABLES if (v := os.environ.get(k))}


def get_float(name: str) -> float:
    return float(get(name))


def get_int(name: str) -> int:
    return int(get(name))


def home() -> Path:
    return Path(get("MEDIAINTEL_HOME") or ".mediaintel").absolute()


def lake_root() -> str:
    return get("MEDIAINTEL_LAKE") or str(home() / "lake")


def lake_id(root: str | None = None) -> str:
    """A short, stable name of a lake root (its URI hashed): what a running API says it
    serves, so that a CLI never takes answers from a service over another lake."""
    import hashlib

    return hashlib.sha256((root or lake_root()).rstrip("/").encode()).hexdigest()[:16]


def inbox_roots() -> list[str]:
    value = get("MEDIAINTEL_INBOX")
    if value:
        return [p for p in value.split(os.pathsep) if p]
    return [str(home() / "inbox")]


def objects_root() -> str:
    return get("MEDIAINTEL_OBJECTS") or str(home() / "objects")


def models_root() -> str:
    return get("MEDIAINTEL_MODELS") or str(home() / "models")


def dagster_home() -> Path:
    value = get("DAGSTER_HOME")
    return Path(value).absolute() if value else home() / "dagster"


def index_root() -> str:
    return get("MEDIAINTEL_INDEX") or str(home() / "index")


def partition_start() -> str:
    return get("MEDIAINTEL_PARTITION_START")


def shard_count() -> int:
    return get_int("MEDIAINTEL_SHARDS")


def deployment() -> str:
    name = (get("MEDIAINTEL_DEPLOYMENT") or "local").strip().lower()
    if name not in ("local", "production"):
        raise ValueError(f"MEDIAINTEL_DEPLOYMENT={name!r}: expected local or production")
    return name


def hub_offline() -> bool:
    """True unless the user allowed hub downloads: a pipeline run must not wait on DNS."""
    return (get("HF_HUB_OFFLINE") or "1") not in ("0", "false", "False")
