"""Event-driven ingest over real queues: RabbitMQ on 127.0.0.1:5672 (skipped with a reason when
it does not answer, failed under CI=true) and, for AWS, S3 notifications into SQS served by
moto in server mode -- a stand-in for AWS, spoken to over the real HTTP protocol with boto3.

The sensor daemon's part (submitting RunRequests as runs with their run keys) and the run
workers are played by ``bench.burst.submit`` and ``bench.burst.drain`` (the ingest stage,
materialized in-process against the same SQLite instance)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from dagster import DagsterRunStatus, build_sensor_context

from mediaintel_dagster.bench.burst import Instrumented, drain, make_files, submit
from mediaintel_dagster.resources import ObjectStoreResource

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
RABBIT = "rabbitmq_ingest_sensor"
SQS = "sqs_ingest_sensor"


def _rabbit_up() -> str | None:
    try:
        import pika

        pika.BlockingConnection(pika.URLParameters(AMQP + "?connection_attempts=1&socket_timeout=3")).close()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no broker here
        return f"RabbitMQ does not answer on 127.0.0.1:5672 ({exc.__class__.__name__})"


@pytest.fixture
def rabbit(home, monkeypatch):
    why = _rabbit_up()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why + " and CI=true: the broker must run in CI")
        pytest.skip(why)
    from mediaintel_dagster.resources.queues import RabbitMQQueueResource

    monkeypatch.setenv("MEDIAINTEL_SHARDS", "2")
    src = RabbitMQQueueResource(url=AMQP, queue=f"mediaintel.test.{uuid.uuid4().hex[:10]}", delivery_limit=4)
    src.channel()
    yield src
    src.delete_queues()
    src.close()


@pytest.fixture
def env(home):
    from mediaintel_dagster.instance import get_instance
    from mediaintel_dagster.resources import LakehouseResource
    from mediaintel_dagster.resources.queues import QueuedInboxResource

    lake = LakehouseResource(root=str(home / "lake"))
    return get_instance(), lake, {"lake": lake, "inbox": QueuedInboxResource(roots=[str(home / "inbox")],
                                                                                settle_seconds=0)}


def tick(instance, source, name):
    from mediaintel_dagster.sensors.queue import evaluate_queue

    return evaluate_queue(build_sensor_context(instance=instance), source, name)


def run_until_empty(instance, source, name, resources, max_ticks=30):
    for _ in range(max_ticks):
        result = tick(instance, source, name)
        submitted = submit(instance, name, result)
        drain(instance, resources)
        depth = source.depth()
        source.close()
        if depth == 0 and not submitted and not result.run_requests:
            return
    raise AssertionError(f"queue not empty after {max_ticks} ticks")


def _uris(lake, table, col="source_uri"):
    return lake.read(table, columns=[col]).column(col).to_pylist()


def test_burst_with_redelivery_and_a_killed_tick_ingests_each_file_once(rabbit, env, home):
    instance, lake, resources = env
    files = make_files(home / "files", 15, copies_every=3)  # 5 byte copies among 15 files
    rnd = __import__("random").Random(3)
    rabbit.publish(json.dumps({"uri": str(rnd.choice(files))}) for _ in range(300))
    rabbit.close()
    src = Instrumented(rabbit)
    src.die_on_ack = True  # the first tick dies after receiving, before acknowledging
    with pytest.raises(RuntimeError):
        tick(instance, src, RABBIT)
    src.die_on_ack = False
    rabbit.close()
    assert rabbit.depth() == 300  # nothing lost: every message is back
    rabbit.close()
    run_until_empty(instance, src, RABBIT, resources)
    assert src.delivered > 300  # redelivered (the killed tick, and each message once more to be acked)
    named = {str(f) for f in files}
    sources, media = _uris(lake, "media_sources"), _uris(lake, "media", "media_id")
    assert sorted(sources) == sorted(named & {str(f) for f in files})  # each file once
    assert len(media) == len(set(media)) == len({hashlib.sha256(f.read_bytes()).digest() for f in files})
    keys = [r.tags["dagster/run_key"] for r in instance.get_runs()]
    assert len(keys) == len(set(keys))
    # Redelivery of everything again (a publisher replaying its log) is a no-op: no new run.
    rabbit.publish(json.dumps({"uri": str(f)}) for f in files)
    rabbit.close()
    runs_before = len(keys)
    result = tick(instance, rabbit, RABBIT)
    assert not result.run_requests and "15 acknowledged" in result.skip_reason.skip_message
    assert rabbit.depth() == 0 and len(instance.get_runs()) == runs_before


def test_a_sensor_killed_with_sigkill_mid_tick_loses_nothing(rabbit, home):
    rabbit.publish(json.dumps({"uri": f"/nowhere/{i}.png"}) for i in range(5))
    rabbit.close()
    code = ("import sys,time; from mediaintel_dagster.resources.queues import RabbitMQQueueResource as R;"
            f"s=R(url={AMQP!r}, queue={rabbit.queue!r}, delivery_limit={rabbit.delivery_limit}); got=s.receive(10); print(len(got), flush=True);"
            "time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "5"  # received, not acknowledged
        assert rabbit.depth() == 0
        rabbit.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    for _ in range(100):  # the broker sees the socket close and requeues
        depth = rabbit.depth()
        rabbit.close()
        if depth == 5:
            break
        time.sleep(0.1)
    assert depth == 5


def test_poison_messages_go_to_the_dead_letter_queue_and_can_be_redriven(rabbit, env, home):
    instance, _, _ = env
    good = make_files(home / "files", 1)[0]
    rabbit.publish(["{not json", json.dumps({"uri": str(home / "missing.png")}), json.dumps({"nope": 1}),
                    json.dumps({"uri": str(good)})])
    rabbit.close()
    result = tick(instance, rabbit, RABBIT)
    assert len(result.run_requests) == 1
    assert rabbit.dead_letter_depth() == 3 and rabbit.depth() == 1  # the good one waits for its run
    rabbit.close()
    from mediaintel_dagster.sensors.queue import redrive_queue_dead_letters

    assert redrive_queue_dead_letters(rabbit) == 3
    assert rabbit.dead_letter_depth() == 0 and rabbit.depth() == 4
    rabbit.close()


def test_a_message_that_crashes_every_tick_is_dead_lettered_by_the_delivery_limit(rabbit, home):
    rabbit.publish([json.dumps({"uri": "/x.png"})])
    rabbit.close()
    for _ in range(rabbit.delivery_limit + 1):  # each tick receives it and dies (never acks)
        got = rabbit.receive(10)
        rabbit.close()
        if not got:
            break
    assert rabbit.depth() == 0 and rabbit.dead_letter_depth() == 1
    rabbit.close()


def test_backpressure_holds_messages_in_the_queue(rabbit, env, home, monkeypatch):
    from dagster._core.test_utils import create_run_for_test

    instance, _, _ = env
    f = make_files(home / "files", 1)[0]
    rabbit.publish([json.dumps({"uri": str(f)})] * 3)
    rabbit.close()
    monkeypatch.setenv("MEDIAINTEL_MAX_PENDING_RUNS", "2")
    for _ in range(2):
        create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.STARTED)
    held = tick(instance, rabbit, RABBIT)
    assert not held.run_requests
    assert held.skip_reason.skip_message.startswith("backpressure: 2 runs queued or in progress")
    assert "3 messages wait in the queue" in held.skip_reason.skip_message
    monkeypatch.setenv("MEDIAINTEL_MAX_PENDING_RUNS", "10")
    monkeypatch.setenv("MEDIAINTEL_MAX_GPU_RUNS", "1")
    create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.STARTED,
                        tags={"mediaintel/gpu": "true"})
    gpu = tick(instance, rabbit, RABBIT)
    assert not gpu.run_requests and "GPU pool saturated, 1 GPU runs" in gpu.skip_reason.skip_message
    assert rabbit.depth() == 3
    rabbit.close()
    monkeypatch.setenv("MEDIAINTEL_MAX_GPU_RUNS", "5")
    assert len(tick(instance, rabbit, RABBIT).run_requests) == 1
    rabbit.close()


def test_a_tick_requests_no_more_runs_than_the_limits_leave_room_for(rabbit, env, home, monkeypatch):
    """Files of 4 windows, room for 2 runs: the tick requests 2 and sends the other windows'
    messages back to the queue; once room frees, the next tick requests the rest. Every file
    is requested once, and the limit is never passed (it overshot by a tick's worth)."""
    from conftest import window_of

    instance, _, _ = env
    monkeypatch.setenv("MEDIAINTEL_SHARDS", "16")
    files, n = [], 0
    while len({window_of(f) for f in files}) < 4:
        files += make_files(home / f"files{n}", 1)
        n += 1
    files = [f for i, f in enumerate(files) if window_of(f) not in {window_of(g) for g in files[:i]}][:4]
    rabbit.publish([json.dumps({"uri": str(f)}) for f in files])
    rabbit.close()
    monkeypatch.setenv("MEDIAINTEL_MAX_PENDING_RUNS", "2")
    first = tick(instance, rabbit, RABBIT)
    assert len(first.run_requests) == 2, [r.partition_key for r in first.run_requests]
    rabbit.close()
    assert rabbit.depth() == 4, "every message waits until its run is queued"
    submit(instance, RABBIT, first)  # the daemon queues them: the queue is full now
    held = tick(instance, rabbit, RABBIT)
    assert not held.run_requests and held.skip_reason.skip_message.startswith("backpressure: 2 runs")
    rabbit.close()
    monkeypatch.setenv("MEDIAINTEL_MAX_PENDING_RUNS", "4")
    second = tick(instance, rabbit, RABBIT)
    rabbit.close()
    requested = [str(r.partition_key) for r in first.run_requests + second.run_requests]
    assert sorted(requested) == sorted({window_of(f) for f in files}), requested


# ---- AWS: S3 -> SQS notifications, moto server as the stand-in for AWS --------------------

@pytest.fixture
def aws(home, monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MEDIAINTEL_SHARDS", "1")
    import boto3

    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    name = f"mi-{uuid.uuid4().hex[:8]}"
    dlq = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
    q = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"QueueConfigurations": [
        {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    from mediaintel_dagster.resources.queues import SqsQueueResource

    yield s3, name, SqsQueueResource(queue_url=q, dead_letter_queue_url=dlq, visibility_timeout_s=60)
    server.stop()


def test_s3_notifications_through_sqs_ingest_the_objects(aws, env, home):
    s3, bucket, source = aws
    instance, lake, resources = env
    files = make_files(home / "files", 3, copies_every=3)  # the third is a copy of the second
    for f in files:  # a space in the key: S3 notifications carry it URL-encoded ('+')
        s3.upload_file(str(f), bucket, f"in/my {f.name}")
    run_until_empty(instance, source, SQS, resources)
    sources = sorted(_uris(lake, "media_sources"))
    assert sources == sorted(f"s3://{bucket}/in/my {f.name}" for f in files)  # the URI, never the copy's name
    assert len(_uris(lake, "media", "media_id")) == 2
    from mediaintel_dagster.resources.queues import staged_path

    staged = staged_path(sources[0])
    assert staged.startswith(str(home / "staging")) and os.path.exists(staged)
    assert json.load(open(staged + ".json"))["sha256"] == hashlib.sha256(open(staged, "rb").read()).hexdigest()
    # The stages after ingest open an s3:// source_uri through its staged copy (media/files.py).
    from mediaintel_dagster.media.files import source_path

    assert source_path(sources[0]) == staged
    # A notification for an object that is gone is a dead letter.
    s3.upload_file(str(files[0]), bucket, "in/gone.png")
    s3.delete_object(Bucket=bucket, Key="in/gone.png")
    run_until_empty(instance, source, SQS, resources)
    assert source.dead_letter_depth() == 1


def test_a_step_without_the_staged_copy_fetches_the_object_and_checks_its_bytes(aws, env, home):
    """With the k8s executor a step pod runs on another node than the run that ingested: it has
    no staged copy. scenes fetches the object again (over the real S3 protocol, moto server as
    AWS's stand-in) and writes its rows; an object replaced since ingest is refused
    (changed_while_read, retried), never decoded as the media it is not."""
    import shutil

    from dagster import materialize

    from mediaintel_dagster.assets import scenes

    s3, bucket, source = aws
    instance, lake, resources = env
    resources = {**resources, "objects": ObjectStoreResource(root=str(home / "objects"))}
    f = make_files(home / "files", 1)[0]
    s3.upload_file(str(f), bucket, "in/pod.png")
    run_until_empty(instance, source, SQS, resources)
    (m,) = lake.read("media").to_pylist()
    (window,) = {r["arrival_partition"] for r in lake.read("media_sources").to_pylist()}
    shutil.rmtree(home / "staging")  # a fresh pod's disk

    assert materialize([scenes], partition_key=window, instance=instance, resources=resources).success
    assert [r["media_id"] for r in lake.read("scenes").to_pylist()] == [m["media_id"]]
    from mediaintel_dagster.resources.queues import staged_path

    assert hashlib.sha256(open(staged_path(m["source_uri"]), "rb").read()).hexdigest() == m["sha256"]

    shutil.rmtree(home / "staging")
    other = make_files(home / "other", 2)[1]  # different bytes under the same key
    s3.upload_file(str(other), bucket, "in/pod.png")
    assert materialize([scenes], partition_key=window, instance=instance, resources=resources,
                       run_config={"ops": {"scenes": {"config": {"force": True}}}}).success
    (q,) = lake.read("quarantine").to_pylist()
    assert q["stage"] == "scenes" and q["error_type"] == "changed_while_read" and "not the bytes ingested" in q["message"]
    assert not os.path.exists(staged_path(m["source_uri"]))  # the wrong bytes were not kept


def test_an_object_that_fails_n_times_is_a_dead_letter_until_redriven(aws, env, home):
    s3, bucket, source = aws
    instance, lake, resources = env
    f = make_files(home / "files", 1)[0]
    s3.upload_file(str(f), bucket, "in/flaky.png")
    result = tick(instance, source, SQS)
    (rr,) = result.run_requests
    s3.delete_object(Bucket=bucket, Key="in/flaky.png")  # gone before its run fetched it
    submit(instance, SQS, result)
    drain(instance, resources)
    from dagster import materialize

    from mediaintel_dagster.assets import media_assets

    for _ in range(3):  # the window is run again (a backfill, a later file): attempts 2, 3, then held
        assert materialize([media_assets], partition_key=rr.partition_key, instance=instance,
                           resources=resources).success
    (q,) = lake.read("quarantine").to_pylist()
    assert q["source_uri"] == f"s3://{bucket}/in/flaky.png" and q["error_type"] == "unreadable"
    assert q["attempts"] == 3 and "Cannot fetch" in q["message"]  # max_attempts: a dead letter now
    s3.upload_file(str(f), bucket, "in/flaky.png")  # the cause is fixed
    (marked,) = lake.request_redrive("media", None)  # what `mediaintel redrive` / redrive_job marks
    assert marked["source_uri"] == q["source_uri"]
    assert materialize([media_assets], partition_key=rr.partition_key, instance=instance,
                       resources=resources).success  # the run redrive_sensor requests
    assert _uris(lake, "media_sources") == [f"s3://{bucket}/in/flaky.png"]
    assert lake.read("quarantine").num_rows == 0


def test_mediaintel_redrive_queue_moves_the_brokers_dead_letters(rabbit, env, home, monkeypatch, capsys):
    from mediaintel_dagster import cli

    instance, _, _ = env
    rabbit.publish(["{not json", json.dumps({"nope": 1})])
    rabbit.close()
    tick(instance, rabbit, RABBIT)
    assert rabbit.dead_letter_depth() == 2
    rabbit.close()
    assert cli.main(["-q", "redrive", "--queue"]) == 2, "no queue configured: a user error"
    monkeypatch.setenv("MEDIAINTEL_QUEUE_URL", AMQP)
    monkeypatch.setenv("MEDIAINTEL_QUEUE_NAME", rabbit.queue)
    monkeypatch.setenv("MEDIAINTEL_QUEUE_DELIVERY_LIMIT", str(rabbit.delivery_limit))
    capsys.readouterr()
    assert cli.main(["-q", "redrive", "--queue", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["queue_dead_letters_moved"] == {"rabbitmq_queue": 2}
    assert rabbit.dead_letter_depth() == 2, "a dry run moves nothing"
    rabbit.close()
    assert cli.main(["-q", "redrive", "--queue"]) == 0
    assert json.loads(capsys.readouterr().out)["queue_dead_letters_moved"] == {"rabbitmq_queue": 2}
    assert rabbit.dead_letter_depth() == 0 and rabbit.depth() == 2
    rabbit.close()
