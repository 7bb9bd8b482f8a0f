"""S3 access shared by the lakehouse, the object store and the keyframe readers.

Credentials and endpoint come from the standard AWS variables, read by both delta-rs and
boto3: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or a role: IRSA's web identity token,
an instance profile), ``AWS_REGION``, and for an S3-compatible store ``AWS_ENDPOINT_URL``
(``AWS_ENDPOINT_URL_S3`` wins) with ``AWS_ALLOW_HTTP=true`` for a plain-http one. Nothing
here holds a secret; every call builds on that environment.

Concurrent Delta commits on S3 are safe only where the store honours conditional writes
(``If-None-Match: *``, on AWS S3 since 2024-11): delta-rs 1.x commits version N+1 with
such a PUT and retries when it finds the version taken. A store that ignores the header
lets two writers both "win" version N+1 and one commit silently disappears (measured in
tests/test_s3.py: 4 writers, 20 commits acknowledged, 11 in the table).
``conditional_writes_honoured`` asks the store once, before the lakehouse writes to it.
"""

from __future__ import annotations

import functools
import os
import threading
import uuid

from .. import config

# How often boto3 tries a request before giving up (standard retry mode: 500/502/503/504,
# SlowDown, throttling and connection errors, with jittered exponential backoff).
S3_MAX_ATTEMPTS = config.get_int("MEDIAINTEL_S3_MAX_ATTEMPTS")


def is_s3(uri: str) -> bool:
    return str(uri).startswith(("s3://", "s3a://"))


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``."""
    rest = str(uri).split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri!r}: no bucket")
    return bucket, key


def endpoint_url() -> str | None:
    env = config.aws_environment()
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


def delta_storage_options(given: dict[str, str] | None = None) -> dict[str, str]:
    """delta-rs storage options for an ``s3://`` table: the standard AWS variables of this
    process, then ``given`` (the resource's ``storage_options``) over them.

    Nothing here turns conditional writes off: delta-rs 1.x's default (conditional PUT of
    each commit) is the safe setting. ``aws_conditional_put=disabled`` is refused, since
    with it delta-rs cannot commit at all.
    """
    opts = config.aws_environment()
    if "AWS_ENDPOINT_URL_S3" in opts:
        opts["AWS_ENDPOINT_URL"] = opts.pop("AWS_ENDPOINT_URL_S3")
    if "AWS_REGION" not in opts and "AWS_DEFAULT_REGION" in opts:
        opts["AWS_REGION"] = opts["AWS_DEFAULT_REGION"]
    opts.pop("AWS_DEFAULT_REGION", None)
    opts.update(given or {})
    if str(opts.get("aws_conditional_put", opts.get("conditional_put", ""))).lower() == "disabled":
        raise ValueError("storage option aws_conditional_put=disabled: delta-rs commits to S3 are conditional "
                         "PUTs; leave it unset (the default) so concurrent writers stay safe")
    return opts


_clients: dict = {}
_clients_lock = threading.Lock()


def client(endpoint: str | None = None):
    """A boto3 S3 client for this process's AWS environment (one per endpoint and process;
    boto3 clients are thread-safe). Retries 503 SlowDown and other transient errors."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint or endpoint_url()
    env = config.aws_environment()
    key = (os.getpid(), endpoint, env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_REGION"))
    with _clients_lock:
        if key not in _clients:
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
            _clients[key] = boto3.client(
                "s3", endpoint_url=endpoint, region_name=region,
                config=Config(retries={"mode": "standard", "max_attempts": S3_MAX_ATTEMPTS},
                              connect_timeout=10, read_timeout=60))
        return _clients[key]


def get_bytes(uri: str) -> bytes:
    bucket, key = split_uri(uri)
    return client().get_object(Bucket=bucket, Key=key)["Body"].read()


def is_missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


@functools.lru_cache(maxsize=64)
def _probe(bucket: str, prefix: str, endpoint: str | None, pid: int) -> bool:
    from botocore.exceptions import ClientError

    s3 = client(endpoint)
    key = f"{prefix.strip('/') + '/' if prefix.strip('/') else ''}_mediaintel/conditional-write-probe-{uuid.uuid4().hex}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    try:
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return True
            raise
        return False
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def conditional_writes_honoured(root: str, endpoint: str | None = None) -> bool:
    """Whether the store under ``root`` refuses a PUT with ``If-None-Match: *`` over an
    existing object (what keeps concurrent Delta commits from overwriting each other).
    Asked once per process and endpoint: two small PUTs and a DELETE under ``_mediaintel/``."""
    bucket, prefix = split_uri(root)
    return _probe(bucket, prefix, endpoint or endpoint_url(), os.getpid())
