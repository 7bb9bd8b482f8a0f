"""Message queues that announce new media: RabbitMQ (on premises) and SQS (S3 notifications).

One interface, :class:`QueueSource`: ``receive(max_n)``, ``ack(handles)``,
``requeue(handles)``, ``dead_letter(handle, reason)``, ``depth()``. The queue sensors
(``sensors/queue.py``) share one code path over it. A message names one or more files:

- a JSON object-created event: ``{"uri": "/path/or/s3://bucket/key"}`` (also ``path`` or
  ``source_uri``), optionally ``size_bytes`` and ``mtime_ns``;
- an S3 event notification body (``{"Records": [{"s3": {"bucket": {"name": ..}, "object":
  {"key": ..}}}]}``; keys are URL-encoded, decoded with ``unquote_plus``), bare or wrapped by
  SNS (``{"Message": "<json>"}``).

At least once, no duplicates: a message is acknowledged only once a Dagster run covering
all its files exists in the instance; until then it goes back to the queue and comes again
(RabbitMQ: the tick's connection closes with it unacknowledged; SQS: its visibility is
reset). The *queue ledger* (Dagster's key-value storage: SQLite here, PostgreSQL in
production) records each file's signature with the run key that covers it, so a message
seen again is acknowledged without a new run, and the run finds the files of its window
(:class:`QueuedInboxResource`). A message that cannot become a run (not JSON, names no
file, a file or object that does not exist) goes to the dead-letter queue at once; one
delivered more than ``delivery_limit`` times (a message that crashes the tick every time)
is dead-lettered by the broker itself (RabbitMQ quorum queue ``x-delivery-limit``; SQS
redrive policy ``maxReceiveCount``).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from .. import config
from ..media.errors import ErrorCode
from ..media.files import split_s3, staged_path  # noqa: F401 - staged_path: the queue sensors' API too
from ..partitions import partition_for, split_key
from .inbox import InboxFile, LocalInboxResource, stat_file

LEDGER_PREFIX = "mediaintel/queue"


class PoisonMessage(Exception):
    """A message that can never become a run (it goes to the dead-letter queue)."""


@dataclass
class Message:
    handle: Any  # delivery tag (RabbitMQ) or receipt handle (SQS)
    body: bytes
    deliveries: int = 1  # how often the broker delivered it (1 = first time)


@dataclass(frozen=True)
class ObjectRef:
    """A file a message names, as found now: its location, size and version."""

    source_uri: str
    size_bytes: int
    mtime_ns: int
    etag: str = ""

    @property
    def signature(self) -> str:
        return f"{self.source_uri}|{self.size_bytes}|{self.mtime_ns}|{self.etag}"

    def partition_key(self):
        return partition_for(self.source_uri, self.mtime_ns)


def parse_message(body: bytes) -> list[str]:
    """The URIs a message names (an object-created event or an S3 notification); PoisonMessage if none."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("Message"), str):  # SNS envelope
        return parse_message(data["Message"].encode())
    if not isinstance(data, dict):
        raise PoisonMessage("not a JSON object")
    if data.get("Event") == "s3:TestEvent":
        return []  # S3 sends one when notifications are configured: nothing to ingest
    if "Records" in data:
        uris = []
        for rec in data["Records"] or []:
            try:
                bucket, key = rec["s3"]["bucket"]["name"], rec["s3"]["object"]["key"]
            except (KeyError, TypeError):
                raise PoisonMessage("an S3 record without s3.bucket.name and s3.object.key") from None
            if str(rec.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
                uris.append(f"s3://{bucket}/{urllib.parse.unquote_plus(key)}")
        return uris
    uri = data.get("uri") or data.get("source_uri") or data.get("path")
    if not isinstance(uri, str) or not uri:
        raise PoisonMessage("names no file (expected uri, source_uri or path, or S3 Records)")
    return [uri]


def _s3():
    import boto3

    # boto3 reads AWS_ENDPOINT_URL, AWS_REGION and the credentials from the environment itself.
    return boto3.client("s3")


def resolve(uri: str) -> ObjectRef:
    """The file behind a URI as it is now; PoisonMessage when it does not exist."""
    if uri.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        try:
            head = _s3().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            raise PoisonMessage(f"{uri}: {exc.response.get('Error', {}).get('Code', exc)}") from None
        return ObjectRef(uri, int(head["ContentLength"]), int(head["LastModified"].timestamp() * 1e9),
                         head.get("ETag", "").strip('"'))
    f = stat_file(uri)
    if f.size_bytes < 0 or f.error is not None:
        raise PoisonMessage(f"{uri}: no such file" if f.error is None else f"{uri}: {f.error[1]}")
    return ObjectRef(f.source_uri, f.size_bytes, f.mtime_ns)


# ---- the ledger ------------------------------------------------------------------------

def ledger_key(sensor: str, window) -> str:
    date, shard = split_key(window)
    return f"{LEDGER_PREFIX}/{sensor}/{date}|{shard}"


def read_ledger(instance, sensor: str, windows) -> dict[str, dict]:
    """{window key: {signature: entry}} for the windows, from the instance's key-value storage."""
    keys = {str(w): ledger_key(sensor, w) for w in windows}
    raw = instance.run_storage.get_cursor_values(set(keys.values())) if keys else {}
    return {w: json.loads(raw[k]) if raw.get(k) else {} for w, k in keys.items()}


def write_ledger(instance, sensor: str, ledgers: dict[str, dict]) -> None:
    if ledgers:
        instance.run_storage.set_cursor_values({ledger_key(sensor, w): json.dumps(v, sort_keys=True)
                                                for w, v in ledgers.items()})


# ---- staging of remote objects -----------------------------------------------------------

class StagedFile(InboxFile):
    """An inbox file whose source_uri is remote (s3://): its ``path`` is the staged copy
    (media.files.local_path maps s3:// URIs there, for ingest and every later stage alike)."""

    __slots__ = ()


def stage_object(entry: dict) -> StagedFile:
    """Download an s3:// object the ledger names into staging (once per version: the sidecar
    records its ETag and the SHA-256 of the bytes), its mtime set to LastModified so that its
    window is the one the sensor requested. A missing object becomes an `unreadable` entry,
    which the ingest stage quarantines (retried, up to max_attempts)."""
    uri, path = entry["uri"], staged_path(entry["uri"])
    side = path + ".json"
    want = {"etag": entry.get("etag", ""), "size": entry["size"]}
    try:
        with open(side) as fh:
            have = json.load(fh)
    except (OSError, ValueError):
        have = {}
    if {k: have.get(k) for k in want} != want or not os.path.exists(path):
        from botocore.exceptions import ClientError

        os.makedirs(os.path.dirname(path), exist_ok=True)
        bucket, key = split_s3(uri)
        tmp = path + ".part"
        try:
            _s3().download_file(bucket, key, tmp)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", str(exc))
            return StagedFile(uri, -1, entry["mtime_ns"], entry["mtime_ns"],
                              error=(ErrorCode.UNREADABLE.value,
                                     f"Cannot fetch {uri}: {code} (deleted or not readable since it was announced)."))
        h = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        os.utime(tmp, ns=(entry["mtime_ns"], entry["mtime_ns"]))
        os.replace(tmp, path)
        with open(side, "w") as fh:
            json.dump({**want, "sha256": h.hexdigest(), "source_uri": uri}, fh)
    st = os.stat(path)
    return StagedFile(uri, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class QueuedInboxResource(LocalInboxResource):
    """The inbox folders, plus the files the queue sensors announced for a window (their
    ledger in the Dagster instance). Remote objects are fetched into MEDIAINTEL_HOME/staging
    and keep their s3:// URI as source_uri."""

    sensors: list[str] = Field(default_factory=lambda: ["rabbitmq_ingest_sensor", "sqs_ingest_sensor"],
                               description="Queue sensors whose announced files belong to the inbox.")
    _instance: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._instance = context.instance

    def files_in_partition(self, partition_key) -> list[InboxFile]:
        files = super().files_in_partition(partition_key)
        if self._instance is None:
            return files
        have = {f.source_uri for f in files}
        want = split_key(partition_key)
        for sensor in self.sensors:
            for entry in read_ledger(self._instance, sensor, [partition_key])[str(partition_key)].values():
                if entry["uri"] in have:
                    continue
                f = stage_object(entry) if entry["uri"].startswith("s3://") else stat_file(entry["uri"])
                if f.error is not None or split_key(f.partition_key()) == want or f.size_bytes < 0:
                    files.append(f)
                    have.add(f.source_uri)
        return files


# ---- the sources -------------------------------------------------------------------------

class QueueSource(ConfigurableResource):
    """A queue of object-created events (the interface the queue sensors use)."""

    def receive(self, max_n: int) -> list[Message]:
        raise NotImplementedError

    def ack(self, handles: list) -> None:
        raise NotImplementedError

    def requeue(self, handles: list) -> None:
        raise NotImplementedError

    def dead_letter(self, message: Message, reason: str) -> None:
        raise NotImplementedError

    def depth(self) -> int:
        raise NotImplementedError

    def dead_letter_depth(self) -> int:
        raise NotImplementedError

    def redrive_dead_letters(self, max_n: int = 10_000) -> int:
        """Move dead letters back to the queue (after their cause was fixed); returns how many."""
        raise NotImplementedError

    def close(self) -> None:
        """End the tick: what was received and not acknowledged goes back to the queue."""


class RabbitMQQueueResource(QueueSource):
    """A RabbitMQ quorum queue (pika). Each tick opens one connection and closes it: delivery
    tags belong to that channel, so whatever the tick did not acknowledge is redelivered."""

    url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/%2F", description="AMQP URL of the broker.")
    queue: str = Field(default="mediaintel.ingest", description="Quorum queue of object-created events.")
    dead_letter_queue: str = Field(default="", description="Dead-letter queue (default `<queue>.dlq`).")
    delivery_limit: int = Field(default=10, description="x-delivery-limit: deliveries before the broker "
                                "dead-letters a message (each message is delivered at least twice: once to "
                                "request its run, once to acknowledge it).")

    _conn: Any = PrivateAttr(default=None)
    _chan: Any = PrivateAttr(default=None)

    @property
    def dlq(self) -> str:
        return self.dead_letter_queue or f"{self.queue}.dlq"

    def channel(self):
        if self._chan is None or self._chan.is_closed:
            import pika

            self._conn = pika.BlockingConnection(pika.URLParameters(self.url))
            self._chan = self._conn.channel()
            self.declare(self._chan)
        return self._chan

    def declare(self, chan) -> None:
        chan.queue_declare(self.dlq, durable=True, arguments={"x-queue-type": "quorum"})
        chan.queue_declare(self.queue, durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.dlq})

    def publish(self, bodies, queue: str | None = None) -> None:
        import pika

        chan = self.channel()
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        for body in bodies:
            chan.basic_publish("", queue or self.queue, body if isinstance(body, bytes) else body.encode(), props)

    def receive(self, max_n: int) -> list[Message]:
        chan, out = self.channel(), []
        while len(out) < max_n:
            method, props, body = chan.basic_get(self.queue, auto_ack=False)
            if method is None:
                break
            count = int((props.headers or {}).get("x-delivery-count", 0)) if props else 0
            out.append(Message(method.delivery_tag, body, count + 1))
        return out

    def ack(self, handles: list) -> None:
        for tag in handles:
            self.channel().basic_ack(tag)

    def requeue(self, handles: list) -> None:
        for tag in handles:
            self.channel().basic_nack(tag, requeue=True)

    def dead_letter(self, message: Message, reason: str) -> None:
        # reject without requeue: the queue's dead-letter exchange routes it to the DLQ, with
        # x-death headers saying why (rejected); the reason goes to the sensor's log.
        self.channel().basic_reject(message.handle, requeue=False)

    def depth(self) -> int:
        return self.channel().queue_declare(self.queue, passive=True).method.message_count

    def dead_letter_depth(self) -> int:
        return self.channel().queue_declare(self.dlq, passive=True).method.message_count

    def redrive_dead_letters(self, max_n: int = 10_000) -> int:
        chan, n = self.channel(), 0
        while n < max_n:
            method, _props, body = chan.basic_get(self.dlq, auto_ack=False)
            if method is None:
                break
            self.publish([body])
            chan.basic_ack(method.delivery_tag)
            n += 1
        return n

    def delete_queues(self) -> None:
        chan = self.channel()
        chan.queue_delete(self.queue)
        chan.queue_delete(self.dlq)

    def close(self) -> None:
        if self._conn is not None and self._conn.is_open:
            self._conn.close()  # unacknowledged deliveries go back to the queue
        self._conn = self._chan = None


class SqsQueueResource(QueueSource):
    """An SQS queue of S3 object-created notifications (boto3). A received message stays
    invisible for ``visibility_timeout_s``; one not acknowledged by the tick is made visible
    again at once, and one whose tick died reappears when its visibility runs out."""

    queue_url: str = Field(description="URL of the SQS queue.")
    dead_letter_queue_url: str = Field(default="", description="URL of its dead-letter queue, where messages that "
                                       "cannot become a run are sent (give the queue a redrive policy to the same "
                                       "queue for messages that crash every tick).")
    visibility_timeout_s: int = Field(default=120, description="How long a received message stays invisible.")

    _client: Any = PrivateAttr(default=None)

    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs")
        return self._client

    def receive(self, max_n: int) -> list[Message]:
        out = []
        while len(out) < max_n:
            got = self.client().receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=min(10, max_n - len(out)),
                VisibilityTimeout=self.visibility_timeout_s, WaitTimeSeconds=0,
                MessageSystemAttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
            if not got:
                break
            out += [Message(m["ReceiptHandle"], m["Body"].encode(),
                            int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1))) for m in got]
        return out

    def _batches(self, items, size=10):
        for i in range(0, len(items), size):
            yield items[i:i + size]

    def ack(self, handles: list) -> None:
        for batch in self._batches(handles):
            self.client().delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(batch)])

    def requeue(self, handles: list) -> None:
        for batch in self._batches(handles):
            self.client().change_message_visibility_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(batch)])

    def dead_letter(self, message: Message, reason: str) -> None:
        if not self.dead_letter_queue_url:
            raise ValueError("SqsQueueResource.dead_letter_queue_url is not set: a poison message would be lost")
        self.client().send_message(QueueUrl=self.dead_letter_queue_url, MessageBody=message.body.decode(errors="replace"),
                                   MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}})
        self.ack([message.handle])

    def _count(self, url: str) -> int:
        attrs = self.client().get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])

    def depth(self) -> int:
        return self._count(self.queue_url)

    def dead_letter_depth(self) -> int:
        return self._count(self.dead_letter_queue_url) if self.dead_letter_queue_url else 0

    def redrive_dead_letters(self, max_n: int = 10_000) -> int:
        n = 0
        while n < max_n:
            got = self.client().receive_message(QueueUrl=self.dead_letter_queue_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            for m in got:
                self.client().send_message(QueueUrl=self.queue_url, MessageBody=m["Body"])
                self.client().delete_message(QueueUrl=self.dead_letter_queue_url, ReceiptHandle=m["ReceiptHandle"])
                n += 1
        return n
