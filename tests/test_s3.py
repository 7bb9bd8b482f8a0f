"""The lakehouse and the object store on S3.

STAND-IN: there is no AWS here. S3 is moto 5.2.5's server (``moto_server``) on 127.0.0.1,
spoken to over the real S3 HTTP protocol by delta-rs (Delta commits) and boto3 (keyframes).
Faults moto cannot make (503 SlowDown, a store ignoring conditional writes) come from a small
proxy in front of it (tests/s3_standin.py). Configuration is the product's: MEDIAINTEL_LAKE /
MEDIAINTEL_OBJECTS = s3://..., and the standard AWS_* variables.
"""

from __future__ import annotations

import time

import pytest

from conftest import VENV_BIN, copy_into, pipeline_resources, set_home
from processes import run_spawned
from s3_standin import FaultProxy


BUCKET = "mediaintel-test"
WRITERS, COMMITS = 4, 5


@pytest.fixture(scope="module")
def moto_s3():
    """moto's S3 server (the stand-in for AWS S3) with one bucket, in its own process; yields its port.

    Its own process, not moto's in-process ThreadedMotoServer: some deltalake calls
    (``DeltaTable.history``) keep the GIL while they wait on S3, and a server thread in the
    same interpreter then cannot answer (the request times out after 3 minutes of retries).
    """
    import socket
    import subprocess

    import boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on port {port}")
                time.sleep(0.2)
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _aws_env(mp_: pytest.MonkeyPatch, endpoint: str) -> None:
    for k, v in {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        mp_.setenv(k, v)
    mp_.delenv("AWS_ENDPOINT_URL_S3", raising=False)


@pytest.fixture
def aws(moto_s3, monkeypatch):
    """The standard AWS_* variables pointing at the stand-in; yields its endpoint URL."""
    endpoint = f"http://127.0.0.1:{moto_s3}"
    _aws_env(monkeypatch, endpoint)
    return endpoint


def _scenes(media_id: str, n: int = 2) -> list[dict]:
    return [{"media_id": media_id, "scene_index": i, "start_s": float(i), "end_s": i + 1.0, "keyframe_s": i + 0.5}
            for i in range(n)]


# ---- concurrent writers: spawned processes (a forked child near deltalake panics) ----------
def _writer(args) -> int:
    from mediaintel_dagster.resources import LakehouseResource

    root, endpoint, unsafe, worker, barrier = args
    lake = LakehouseResource(root=root, storage_options={"AWS_ENDPOINT_URL": endpoint},
                             allow_unconditional_store=unsafe)
    lake.ensure("scenes")
    acknowledged = 0
    for i in range(COMMITS):
        barrier.wait(timeout=120)  # every writer commits at the same moment: a race each round
        lake.replace("scenes", _scenes(f"w{worker}c{i}"))
        acknowledged += 1
    return acknowledged


def _run_writers(root: str, endpoint: str, unsafe: bool) -> int:
    return sum(run_spawned(_writer, [(root, endpoint, unsafe, w) for w in range(WRITERS)]))


def test_concurrent_writers_are_safe_on_s3_and_lose_commits_where_conditional_writes_are_ignored(aws, moto_s3):
    from mediaintel_dagster.resources import LakehouseResource

    attempted = WRITERS * COMMITS
    # The product's default on S3: conditional-PUT commits, nothing lost.
    safe_root = f"s3://{BUCKET}/concurrency/safe"
    LakehouseResource(root=safe_root).ensure("scenes")
    assert _run_writers(safe_root, aws, unsafe=False) == attempted
    safe = LakehouseResource(root=safe_root)
    media = {r["media_id"] for r in safe.read("scenes").to_pylist()}
    assert len(media) == attempted and safe.read("scenes").num_rows == 2 * attempted
    assert safe.version("scenes") == attempted, "one Delta version per commit (version 0 is the create)"

    # A store that ignores If-None-Match (the proxy strips it). The lakehouse refuses it by default...
    proxy = FaultProxy(moto_s3, strip_conditional=True)
    try:
        unsafe_root = f"s3://{BUCKET}/concurrency/unsafe"
        refused = LakehouseResource(root=unsafe_root, storage_options={"AWS_ENDPOINT_URL": proxy.url})
        with pytest.raises(RuntimeError, match="ignores conditional writes"):
            refused.replace("scenes", _scenes("x"))
        assert refused.delta_table("scenes") is None, "nothing was written to the refused store"

        # ...and the control shows why: forced on, every commit is acknowledged and some vanish.
        LakehouseResource(root=unsafe_root, storage_options={"AWS_ENDPOINT_URL": proxy.url},
                          allow_unconditional_store=True).ensure("scenes")
        assert _run_writers(unsafe_root, proxy.url, unsafe=True) == attempted, "every writer saw success"
    finally:
        proxy.close()
    landed = {r["media_id"] for r in LakehouseResource(root=unsafe_root).read("scenes").to_pylist()}
    print(f"\nS3 concurrent writers ({WRITERS} x {COMMITS}): conditional PUT {len(media)}/{attempted} commits landed; "
          f"store ignoring conditional writes {len(landed)}/{attempted}")
    assert len(landed) < attempted, "racing commits overwrote each other without conditional writes"


def test_a_503_during_a_commit_is_retried_and_one_that_persists_fails_cleanly(aws, moto_s3):
    from mediaintel_dagster.resources import LakehouseResource

    root = f"s3://{BUCKET}/faults/lake"
    LakehouseResource(root=root).replace("scenes", _scenes("m0"))
    proxy = FaultProxy(moto_s3, fail_puts=3)  # the first 3 PUTs to _delta_log/ answer 503 SlowDown
    try:
        lake = LakehouseResource(root=root, storage_options={"AWS_ENDPOINT_URL": proxy.url})
        before = lake.version("scenes")
        assert lake.replace("scenes", _scenes("m1")) == before + 1
        assert proxy.failed == 3, "the commit met three 503s and was retried past them"
        assert lake.version("scenes") == before + 1, "retried, not committed twice"
        assert sorted({r["media_id"] for r in lake.read("scenes").to_pylist()}) == ["m0", "m1"]

        # A store that keeps answering 503: the write fails (with few retries, to keep the test short)...
        proxy.fail_puts, proxy.failed = 10**6, 0
        impatient = LakehouseResource(root=root, storage_options={"AWS_ENDPOINT_URL": proxy.url, "max_retries": "2",
                                                                   "retry_timeout": "5s"})
        with pytest.raises(OSError, match="PUT"):
            impatient.replace("scenes", _scenes("m2"))
        assert proxy.failed >= 1
        # ...and leaves the table readable at its previous version, nothing lost, nothing half-written.
        assert impatient.version("scenes") == before + 1
        assert sorted({r["media_id"] for r in impatient.read("scenes").to_pylist()}) == ["m0", "m1"]

        # Once the store recovers, the same write lands.
        proxy.fail_puts = 0
        impatient.replace("scenes", _scenes("m2"))
        assert sorted({r["media_id"] for r in lake.read("scenes").to_pylist()}) == ["m0", "m1", "m2"]
    finally:
        proxy.close()


def test_object_store_on_s3(aws, moto_s3, monkeypatch):
    from mediaintel_dagster.resources import ObjectStoreResource

    store = ObjectStoreResource(root=f"s3://{BUCKET}/objects")
    uri = store.put("keyframes/m1/0.jpg", b"jpeg-0")
    store.put("keyframes/m1/1.jpg", b"jpeg-1")
    store.put("keyframes/m10/0.jpg", b"other media")
    assert uri == f"s3://{BUCKET}/objects/keyframes/m1/0.jpg" == store.uri("keyframes/m1/0.jpg")
    assert store.get(uri) == store.get("keyframes/m1/0.jpg") == b"jpeg-0"
    assert store.exists(uri) and not store.exists("keyframes/m1/9.jpg")
    with pytest.raises(FileNotFoundError):
        store.get("keyframes/m1/9.jpg")
    for bad in ("../escape", f"s3://{BUCKET}/elsewhere/x.jpg", "s3://other-bucket/objects/x"):
        with pytest.raises(ValueError):
            store.uri(bad) if not bad.startswith("s3://") else store.get(bad)
    store.delete_prefix("keyframes/m1")
    assert not store.exists("keyframes/m1/0.jpg") and not store.exists("keyframes/m1/1.jpg")
    assert store.get("keyframes/m10/0.jpg") == b"other media", "a prefix is a folder, not a string prefix"

    # 503 SlowDown on the first two PUTs of a keyframe: boto3's retries get it through.
    proxy = FaultProxy(moto_s3, fail_puts=2, fail_match="/keyframes/")
    try:
        _aws_env(monkeypatch, proxy.url)
        flaky = ObjectStoreResource(root=f"s3://{BUCKET}/objects")
        flaky.put("keyframes/m2/0.jpg", b"after two 503s")
        assert proxy.failed == 2 and flaky.get("keyframes/m2/0.jpg") == b"after two 503s"
    finally:
        proxy.close()


def test_a_pipeline_window_on_s3(aws, tmp_path, monkeypatch, models_dir, media_dir):
    """The real ingest_job over one window with MEDIAINTEL_LAKE and MEDIAINTEL_OBJECTS on
    (stand-in) S3: the stages run unchanged; the tables read back with deltalake and DuckDB."""
    import duckdb
    from deltalake import DeltaTable

    from conftest import ingest_one_window
    from mediaintel_dagster.lake.s3 import delta_storage_options
    from mediaintel_dagster.resources import LakehouseResource, ObjectStoreResource

    h = set_home(monkeypatch, tmp_path / "mi", models_dir)
    monkeypatch.setenv("MEDIAINTEL_SHARDS", "1")  # both files in one window: one run
    lake_root, objects_root = f"s3://{BUCKET}/pipeline/lake", f"s3://{BUCKET}/pipeline/objects"
    monkeypatch.setenv("MEDIAINTEL_LAKE", lake_root)
    monkeypatch.setenv("MEDIAINTEL_OBJECTS", objects_root)
    files = copy_into(media_dir, ["clip.mp4", "poster.png"], h / "inbox")
    # The lake and the object store as configured by the environment, like production's.
    resources = pipeline_resources(h, models_dir, lake=LakehouseResource(), objects=ObjectStoreResource())
    assert resources["lake"].root == lake_root and resources["objects"].root == objects_root
    started = time.monotonic()
    result = ingest_one_window(resources, files)
    print(f"\npipeline window on S3: {time.monotonic() - started:.1f} s")
    failures = [(e.step_key, e.event_specific_data.error.message[:2000]) for e in result.all_events
                if e.is_step_failure]
    assert result.success, failures

    def table(name):
        return DeltaTable(f"{lake_root}/{name}", storage_options=delta_storage_options()).to_pyarrow_dataset()

    con = duckdb.connect()
    for name in ("media", "scenes", "ocr_text", "embeddings", "transcript_segments", "audit_log"):
        con.register(name, table(name))
    media = con.sql("SELECT source_uri, kind FROM media ORDER BY kind").fetchall()
    assert [(u.rsplit("/", 1)[-1], k) for u, k in media] == [("poster.png", "image"), ("clip.mp4", "video")]
    assert resources["lake"].read("quarantine").num_rows == 0  # (a table written only when something fails)
    scenes = con.sql("SELECT media_id, scene_index, keyframe_uri FROM scenes").fetchall()
    assert len(scenes) >= 3  # two shots of the clip, one scene of the poster
    objects = ObjectStoreResource()
    for _, _, uri in scenes:  # every keyframe is an object in the bucket, read back as a JPEG
        assert uri.startswith(objects_root + "/keyframes/"), uri
        assert objects.get(uri)[:2] == b"\xff\xd8"
    # The stages downstream read those keyframes from S3: OCR text and scene vectors.
    ocr = " ".join(t for (t,) in con.sql("SELECT text FROM ocr_text").fetchall()).upper()
    assert "OPENING" in ocr.replace(" ", "") or "GRAND" in ocr, ocr
    assert con.sql("SELECT count(*) FROM embeddings WHERE item_kind = 'scene'").fetchall()[0][0] == len(scenes)
    assert con.sql("SELECT count(*) FROM transcript_segments").fetchall()[0][0] >= 1
    assert con.sql("SELECT count(DISTINCT asset) FROM audit_log").fetchall()[0][0] >= 6
