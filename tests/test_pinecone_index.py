"""The Pinecone serving index through the real ``pinecone`` client, against a local stand-in.

``tests/pinecone_standin.py`` is a stand-in for Pinecone's data plane (it says what it
covers); the last test runs against real Pinecone, only when PINECONE_API_KEY and
PINECONE_INDEX_HOST are set.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import numpy as np
import pyarrow as pa
import pytest

from mediaintel_dagster.resources.pinecone_index import (PineconeIndexError, PineconeIndexTimeout,
                                                         PineconeVectorIndexResource, pinecone_filter, source_dirs)
from mediaintel_dagster.resources.vector_index import ENTRY_SCHEMA, IndexFilter, entry_id
from pinecone_standin import PineconeStandIn

KEY = "test-key"
MODEL = "sentence-transformers/all-MiniLM-L6-v2@1"
OTHER = "open-clip/ViT-B-32@laion2b"


@pytest.fixture
def standin():
    with PineconeStandIn(api_key=KEY, dimension=4) as s:
        yield s


def index_at(server: PineconeStandIn, **kw) -> PineconeVectorIndexResource:
    opts = dict(api_key=KEY, host=server.host, timeout_s=2.0, retries=3, backoff_s=0.01, backoff_max_s=0.05)
    return PineconeVectorIndexResource(**{**opts, **kw})


def entries(rows: list[dict], model_id: str = MODEL) -> pa.Table:
    full = []
    for r in rows:
        r = {"item_kind": "segment", "media_kind": "video", "duration_s": 10.0, "language": "en",
             "arrived_at_s": 1_700_000_000.0, "source_uri": f"s3://bucket/inbox/{r['media_id']}.mp4", **r}
        full.append({**r, "model_id": model_id, "entry_id": entry_id(r["media_id"], r["item_kind"], r["item_index"],
                                                                     model_id)})
    return pa.Table.from_pylist(full, schema=ENTRY_SCHEMA)


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


RNG = np.random.default_rng(7)
ROWS = [
    dict(media_id="m1", item_index=0, vector=[1, 0, 0, 0], media_kind="video", duration_s=5.0, language="en",
         arrived_at_s=100.0, source_uri="s3://bucket/inbox/news/m1.mp4"),
    dict(media_id="m1", item_index=1, item_kind="ocr", vector=[0.9, 0.1, 0, 0], media_kind="video", duration_s=5.0,
         language="en", arrived_at_s=100.0, source_uri="s3://bucket/inbox/news/m1.mp4"),
    dict(media_id="m2", item_index=0, vector=[0, 1, 0, 0], media_kind="audio", duration_s=60.0, language="de",
         arrived_at_s=200.0, source_uri="s3://bucket/inbox/news2/m2.wav"),
    dict(media_id="m3", item_index=0, item_kind="scene", vector=[0.5, 0.5, 0.5, 0], media_kind="image",
         duration_s=None, language=None, arrived_at_s=300.0, source_uri="s3://bucket/archive/m3.png"),
    dict(media_id="m4", item_index=2, vector=[-1, 0.2, 0, 0.1], media_kind="video", duration_s=10.0, language="fr",
         arrived_at_s=299.999, source_uri="/data/inbox/m4.mp4"),
    dict(media_id="m5", item_index=0, vector=[0.3, -0.2, 0.8, 0.4], media_kind="video", duration_s=60.0,
         language="en", arrived_at_s=400.0, source_uri="/data/inbox"),
]


def reference(rows: list[dict], flt: IndexFilter) -> set[str]:
    """What an IndexFilter admits, written from its docstring (not from the Pinecone translation)."""
    out = set()
    for r in entries(rows).to_pylist():
        def within(values, v):
            return values is None or (v is not None and v in values)
        ok = (within(flt.media_kinds, r["media_kind"]) and within(flt.item_kinds, r["item_kind"])
              and within(flt.languages, r["language"]) and within(flt.media_ids, r["media_id"])
              and (not flt.exclude_media_ids or r["media_id"] not in flt.exclude_media_ids)
              and (flt.min_duration_s is None or (r["duration_s"] is not None and r["duration_s"] >= flt.min_duration_s))
              and (flt.max_duration_s is None or (r["duration_s"] is not None and r["duration_s"] <= flt.max_duration_s))
              and (flt.arrived_from_s is None or r["arrived_at_s"] >= flt.arrived_from_s)
              and (flt.arrived_to_s is None or r["arrived_at_s"] < flt.arrived_to_s))
        p = flt.source_prefix
        if ok and p:  # a folder ('/'-terminated) or a whole last path component
            ok = r["source_uri"].startswith(p if p.endswith("/") else p + "/") or r["source_uri"] == p
        if ok:
            out.add(r["entry_id"])
    return out


def test_upsert_query_fetch_counts_through_the_real_client(standin):
    idx = index_at(standin)
    assert idx.backend == "pinecone"
    table = entries(ROWS)
    assert idx.upsert(MODEL, table) == len(ROWS)
    q = np.array([1.0, 0.05, 0.0, 0.0], dtype=np.float32)
    got = idx.query(MODEL, q, k=3)
    want = sorted(table.to_pylist(), key=lambda r: -cosine(r["vector"], q))[:3]
    assert [m.entry_id for m in got] == [r["entry_id"] for r in want]
    for m, r in zip(got, want):
        assert m.score == pytest.approx(cosine(r["vector"], q), abs=1e-6)
        assert (m.media_id, m.item_kind, m.item_index, m.model_id) == (r["media_id"], r["item_kind"], r["item_index"],
                                                                      MODEL)
    ids = table.column("entry_id").to_pylist()
    fetched = idx.fetch(MODEL, [ids[0], ids[3], "nope:segment:0:" + MODEL])
    assert set(fetched) == {ids[0], ids[3]}
    assert fetched[ids[3]].dtype == np.float32 and fetched[ids[3]].tolist() == pytest.approx([0.5, 0.5, 0.5, 0])
    assert idx.counts() == {MODEL: len(ROWS)}
    assert idx.upsert(MODEL, table) == len(ROWS)  # idempotent: same ids replace
    assert idx.counts() == {MODEL: len(ROWS)}

    # What went over the wire: the API key and version headers, the namespace, metadata
    # without nulls (the stand-in answers 400 to a null, as Pinecone does), source_dirs.
    up = standin.calls("/vectors/upsert")[0]
    assert up.headers["api-key"] == KEY and up.headers["x-pinecone-api-version"]
    assert up.body["namespace"] == MODEL
    by_id = {v["id"]: v["metadata"] for v in up.body["vectors"]}
    m3 = by_id[ids[3]]
    assert "language" not in m3 and "duration_s" not in m3
    assert m3["source_dirs"] == ["s3:/", "s3://", "s3://bucket/", "s3://bucket/archive/"]
    assert by_id[ids[0]]["item_index"] == 0 and by_id[ids[0]]["media_kind"] == "video"
    assert standin.calls("/query")[0].body["includeMetadata"] is False


FILTERS = [
    IndexFilter(media_kinds=["video"]),
    IndexFilter(item_kinds=["ocr", "scene"]),
    IndexFilter(languages=["en", "fr"]),
    IndexFilter(min_duration_s=10.0),
    IndexFilter(max_duration_s=10.0),
    IndexFilter(min_duration_s=5.0, max_duration_s=10.0, media_kinds=["video", "audio"]),
    IndexFilter(arrived_from_s=200.0, arrived_to_s=300.0),
    IndexFilter(arrived_to_s=299.999),
    IndexFilter(source_prefix="s3://bucket/inbox/"),
    IndexFilter(source_prefix="s3://bucket/inbox/news/"),
    IndexFilter(source_prefix="s3://bucket/inbox/news"),  # whole component: not news2/
    IndexFilter(source_prefix="/data/inbox"),  # the folder, and the file of that name
    IndexFilter(source_prefix=""),
    IndexFilter(media_ids=["m1", "m3"]),
    IndexFilter(exclude_media_ids=["m1", "m2"]),
    IndexFilter(exclude_media_ids=[]),
    IndexFilter(media_kinds=["video"], languages=["en"], arrived_from_s=100.0, exclude_media_ids=["m5"],
                source_prefix="s3://"),
]


def test_filters_select_what_index_filter_says(standin):
    idx = index_at(standin)
    idx.upsert(MODEL, entries(ROWS))
    q = np.ones(4, dtype=np.float32)
    for flt in FILTERS:
        got = {m.entry_id for m in idx.query(MODEL, q, k=100, flt=flt)}
        assert got == reference(ROWS, flt), flt
    assert {m.media_id for m in idx.query(MODEL, q, k=100, flt=FILTERS[10])} == {"m1"}
    # An empty inclusion list admits nothing, and nothing is asked.
    before = len(standin.calls("/query"))
    assert idx.query(MODEL, q, k=5, flt=IndexFilter(media_kinds=[])) == []
    assert len(standin.calls("/query")) == before


def test_filter_translation():
    flt = IndexFilter(media_kinds=["video"], min_duration_s=1, arrived_to_s=5, source_prefix="s3://b/in",
                      exclude_media_ids=["x"])
    assert pinecone_filter(flt) == {"$and": [
        {"media_kind": {"$in": ["video"]}},
        {"media_id": {"$nin": ["x"]}},
        {"duration_s": {"$gte": 1.0}},
        {"arrived_at_s": {"$lt": 5.0}},
        {"$or": [{"source_uri": {"$eq": "s3://b/in"}}, {"source_dirs": {"$in": ["s3://b/in/"]}}]},
    ]}
    assert pinecone_filter(IndexFilter(source_prefix="/a/")) == {"source_dirs": {"$in": ["/a/"]}}
    assert pinecone_filter(IndexFilter()) is None and pinecone_filter(None) is None
    assert source_dirs("/data/in/a.mp4") == ["/", "/data/", "/data/in/"]
    assert source_dirs("a.mp4") == []


def test_namespaces_per_model_never_mix(standin):
    idx = index_at(standin)
    idx.upsert(MODEL, entries(ROWS[:3], MODEL))
    idx.upsert(OTHER, entries([{**r, "vector": [0, 0, 1, 0]} for r in ROWS[:2]], OTHER))
    assert idx.counts() == {MODEL: 3, OTHER: 2}
    got = idx.query(OTHER, np.array([1, 0, 0, 0], dtype=np.float32), k=10)
    assert len(got) == 2 and all(m.entry_id.endswith(":" + OTHER) and m.model_id == OTHER for m in got)
    assert all(m.score == pytest.approx(0.0, abs=1e-6) for m in got)  # OTHER's own vectors, not MODEL's
    assert idx.fetch(OTHER, entries(ROWS[:1], MODEL).column("entry_id").to_pylist()) == {}
    with pytest.raises(ValueError, match="other models"):
        idx.upsert(MODEL, entries(ROWS[:1], OTHER))
    idx.drop(OTHER)
    assert idx.counts() == {MODEL: 3}
    idx.drop(OTHER)  # dropping what is gone is a no-op (Pinecone answers 404 "Namespace not found")
    assert len(idx.query(MODEL, np.ones(4, dtype=np.float32), k=10)) == 3


def test_delete_and_batching(standin):
    idx = index_at(standin, batch_size=100)
    rows = [dict(media_id=f"m{i:03d}", item_index=i, vector=RNG.normal(size=4).tolist()) for i in range(250)]
    table = entries(rows)
    assert idx.upsert(MODEL, table) == 250
    assert [len(c.body["vectors"]) for c in standin.calls("/vectors/upsert")] == [100, 100, 50]
    assert idx.counts() == {MODEL: 250}
    ids = table.column("entry_id").to_pylist()
    fetched = idx.fetch(MODEL, ids)
    assert len(fetched) == 250 and len(standin.calls("/vectors/fetch")) == 5  # 50 ids per GET
    assert idx.delete(MODEL, ids[:230] + ["unknown:segment:0:" + MODEL]) == 231
    assert [len(c.body["ids"]) for c in standin.calls("/vectors/delete")] == [100, 100, 31]
    assert set(idx.fetch(MODEL, ids)) == set(ids[230:])
    assert idx.delete(MODEL, []) == 0
    assert idx.delete("empty/model@1", ids[:3]) == 3  # a namespace that holds nothing: nothing to do


def test_batches_stay_under_two_megabytes():
    # 1024-d vectors, batch_size 1000: the 2 MB request limit cuts the batches, not the count
    # (the stand-in answers 413 to a body over 2 MB, as Pinecone does).
    with PineconeStandIn(api_key=KEY, dimension=1024) as s:
        idx = index_at(s, batch_size=1000)
        rows = [dict(media_id=f"m{i}", item_index=0, vector=RNG.normal(size=1024).tolist()) for i in range(200)]
        assert idx.upsert(MODEL, entries(rows)) == 200
        calls = s.calls("/vectors/upsert")
        assert len(calls) >= 3 and all(c.status == 200 for c in calls)
        assert sum(len(c.body["vectors"]) for c in calls) == 200


def test_one_index_per_dimension():
    # MiniLM (384-d) and CLIP (512-d) cannot share a Pinecone index: PINECONE_INDEX_HOST lists
    # one per dimension, and each model's vectors go to the index of their dimension.
    with PineconeStandIn(api_key=KEY, dimension=4) as small, PineconeStandIn(api_key=KEY, dimension=6) as wide:
        idx = index_at(small, host=f"{small.host}, {wide.host}")
        assert idx.upsert(MODEL, entries(ROWS[:3], MODEL)) == 3
        assert idx.upsert(OTHER, entries([{**r, "vector": [0, 0, 0, 0, 1, 0]} for r in ROWS[:2]], OTHER)) == 2
        assert set(small.namespaces) == {MODEL} and set(wide.namespaces) == {OTHER}
        assert idx.counts() == {MODEL: 3, OTHER: 2}
        assert [m.model_id for m in idx.query(OTHER, np.eye(6, dtype=np.float32)[4], k=5)] == [OTHER, OTHER]
        assert len(idx.query(MODEL, np.ones(4, dtype=np.float32), k=5)) == 3
        other_ids = entries(ROWS[:2], OTHER).column("entry_id").to_pylist()
        assert set(idx.fetch(OTHER, other_ids)) == set(other_ids)
        idx.delete(OTHER, other_ids[:1])  # asked of both indexes; the 4-d one has no such namespace
        idx.drop(MODEL)
        assert idx.counts() == {OTHER: 1}
        with pytest.raises(PineconeIndexError, match=r"no Pinecone index for 5-d vectors.*\[4, 6\]"):
            idx.query(MODEL, np.ones(5, dtype=np.float32), k=1)


def test_429_then_503_then_success_is_one_call_with_two_retries(standin):
    idx = index_at(standin)
    standin.fail_next(1, 429)
    standin.fail_next(1, 503)
    assert idx.upsert(MODEL, entries(ROWS[:2])) == 2
    assert [c.status for c in standin.calls("/vectors/upsert")] == [429, 503, 200]
    assert idx.stats() == {"calls": 1, "tries": 3, "retries": 2, "retried": {"429": 1, "503": 1}}
    assert idx.counts() == {MODEL: 2}


def test_one_try_is_one_request(standin):
    # The client's own transport retries are off: with retries=0 a 503 is final after one request.
    idx = index_at(standin, retries=0)
    standin.fail_next(1, 503)
    with pytest.raises(PineconeIndexError, match="failed on all 1 tries") as err:
        idx.counts()
    assert err.value.status == 503
    assert len(standin.calls("/describe_index_stats")) == 1


def test_retries_run_out(standin):
    idx = index_at(standin, retries=2)
    standin.fail_next(3, 500)
    with pytest.raises(PineconeIndexError, match=r"500, 500, 500.*MEDIAINTEL_PINECONE_RETRIES"):
        idx.query(MODEL, np.ones(4, dtype=np.float32), k=1)
    assert len(standin.calls("/query")) == 3


def test_a_4xx_is_not_retried(standin):
    idx = index_at(standin)
    with pytest.raises(PineconeIndexError, match="dimension") as err:  # the server's own message
        idx.upsert(MODEL, entries([dict(media_id="m1", item_index=0, vector=[1.0, 0, 0])]))
    assert err.value.status == 400 and len(standin.calls("/vectors/upsert")) == 1
    standin.fail_next(1, 400)
    with pytest.raises(PineconeIndexError, match="not retried"):
        idx.query(MODEL, np.ones(4, dtype=np.float32), k=1)
    assert len(standin.calls("/query")) == 1
    with pytest.raises(PineconeIndexError, match="PINECONE_API_KEY") as err:
        index_at(standin, api_key="wrong-key").counts()
    assert err.value.status == 401
    standin.fail_next(1, 404)
    with pytest.raises(PineconeIndexError, match="PINECONE_INDEX_HOST"):
        idx.query(MODEL, np.ones(4, dtype=np.float32), k=1)
    assert idx.stats()["retries"] == 0


def test_a_slow_reply_is_retried_then_every_slow_try_is_a_clear_timeout(standin):
    idx = index_at(standin, timeout_s=0.3, retries=2)
    idx.upsert(MODEL, entries(ROWS[:1]))
    standin.slow_next(1, 1.0)
    assert len(idx.query(MODEL, np.ones(4, dtype=np.float32), k=1)) == 1
    assert idx.stats()["retried"] == {"timeout": 1}
    standin.reset_calls()
    standin.slow_next(3, 1.0)
    with pytest.raises(PineconeIndexTimeout, match=r"no answer within 0.3 s on any of 3 tries.*"
                                                   r"MEDIAINTEL_PINECONE_TIMEOUT_S") as err:
        idx.counts()
    assert isinstance(err.value, TimeoutError)
    assert len(standin.calls("/describe_index_stats")) == 3


def test_settings_and_a_wrong_host(monkeypatch, standin):
    monkeypatch.setenv("PINECONE_API_KEY", KEY)
    monkeypatch.setenv("PINECONE_INDEX_HOST", standin.host)
    monkeypatch.setenv("MEDIAINTEL_PINECONE_TIMEOUT_S", "0.7")
    monkeypatch.setenv("MEDIAINTEL_PINECONE_RETRIES", "1")
    idx = PineconeVectorIndexResource()  # read when constructed, not at import
    assert (idx.api_key, idx.host, idx.timeout_s, idx.retries, idx.batch_size) == (KEY, standin.host, 0.7, 1, 100)
    assert idx.counts() == {}
    monkeypatch.delenv("PINECONE_INDEX_HOST")
    with pytest.raises(PineconeIndexError, match="set PINECONE_INDEX_HOST"):
        PineconeVectorIndexResource().counts()
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    wrong = PineconeVectorIndexResource(host=closed, backoff_s=5.0)
    with pytest.raises(PineconeIndexError, match="cannot connect.*check PINECONE_INDEX_HOST"):
        wrong.counts()
    assert wrong.stats()["tries"] == 1
    with pytest.raises(PineconeIndexError, match="PINECONE_INDEX_HOST"):
        PineconeVectorIndexResource(host="not a host").counts()


LIVE = bool(os.environ.get("PINECONE_API_KEY") and os.environ.get("PINECONE_INDEX_HOST"))


@pytest.mark.skipif(not LIVE, reason="live Pinecone test: set PINECONE_API_KEY and PINECONE_INDEX_HOST "
                                     "(a dense cosine index) to run it")
def test_live_pinecone():
    idx = PineconeVectorIndexResource()
    dim = idx._client(idx.hosts()[0]).describe_index_stats().dimension
    model = f"mediaintel-test/{uuid.uuid4().hex[:12]}@1"
    rng = np.random.default_rng(1)
    rows = [dict(media_id=f"live{i}", item_index=i, vector=rng.normal(size=dim).tolist(),
                 media_kind="video" if i % 2 else "audio") for i in range(6)]
    table = entries(rows, model)
    try:
        assert idx.upsert(model, table) == 6
        deadline = time.time() + 90  # Pinecone is eventually consistent: writes show within seconds
        while idx.counts().get(model, 0) < 6 and time.time() < deadline:
            time.sleep(2)
        assert idx.counts().get(model) == 6
        q = np.asarray(rows[3]["vector"], dtype=np.float32)
        got = idx.query(model, q, k=3, flt=IndexFilter(media_kinds=["video"]))
        assert got[0].media_id == "live3" and got[0].score == pytest.approx(1.0, abs=1e-3)
        assert {m.media_id for m in got} <= {"live1", "live3", "live5"}
        ids = table.column("entry_id").to_pylist()
        assert set(idx.fetch(model, ids[:2])) == set(ids[:2])
        idx.delete(model, ids[:2])
    finally:
        idx.drop(model)
