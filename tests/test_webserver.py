"""`dagster dev` serves the code location: the asset graph, its partitions, the job and the sensor.

Starts the real `dagster dev` (webserver + daemon + code server) from workspace.yaml on a
free port over an isolated DAGSTER_HOME, and asks its GraphQL API what it loaded.
Field names follow dagster-graphql 1.13's schema (dagster_graphql/schema/).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO, VENV_BIN

pytestmark = pytest.mark.slow

LOAD_TIMEOUT_S = 120
LOCATION = "mediaintel"

LOCATION_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

ASSETS_QUERY = """
query {
  assetNodes {
    assetKey { path }
    groupName
    isPartitioned
    partitionDefinition {
      type
      dimensionTypes { name type }
    }
    partitionKeysByDimension { name type partitionKeys }
  }
}
"""

REPOS_QUERY = """
query {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        jobs { name }
        sensors { name minIntervalSeconds sensorState { status } }
      }
    }
    ... on PythonError { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(log: Path, n: int = 60) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError as exc:
        return f"(no log: {exc})"


def _signal_group(proc: subprocess.Popen, sig: int, wait_s: float) -> bool:
    """Signal the process group and wait for the leader; False if the group is gone."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return False
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        pass
    return True


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (webserver, daemon, code server), then SIGKILL
    whatever survived (the leader or an orphaned child; if the leader is already gone,
    its children may still hold the group)."""
    if proc.poll() is None and not _signal_group(proc, signal.SIGTERM, 20):
        return
    _signal_group(proc, signal.SIGKILL, 10)


@pytest.fixture
def dagster_dev(home):
    from mediaintel_dagster.instance import ensure_dagster_home

    dagster_home = ensure_dagster_home()
    assert "enabled: false" in (dagster_home / "dagster.yaml").read_text()
    port = _free_port()
    log = home / "dagster-dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", proc, log
    finally:
        _stop(proc)


def _gql(base: str, query: str) -> dict:
    r = requests.post(f"{base}/graphql", json={"query": query}, timeout=30)
    r.raise_for_status()
    body = r.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def _wait_loaded(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    last = "webserver not answering"
    served = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if not served:
                r = requests.get(f"{base}/server_info", timeout=5)
                served = r.ok
                last = f"/server_info: HTTP {r.status_code}"
            if served:
                ws = _gql(base, LOCATION_QUERY)["workspaceOrError"]
                assert ws["__typename"] == "Workspace", ws
                entries = {e["name"]: e for e in ws["locationEntries"]}
                entry = entries.get(LOCATION)
                last = f"location entries: {entries}"
                if entry and entry["loadStatus"] == "LOADED":
                    loc = entry["locationOrLoadError"]
                    if loc and loc["__typename"] == "PythonError":
                        pytest.fail(f"code location failed to load: {loc['message']}\n{loc['stack']}")
                    assert loc and loc["__typename"] == "RepositoryLocation", entry
                    return
        except requests.RequestException as exc:
            last = f"{exc.__class__.__name__}: {exc}"
        time.sleep(1)
    pytest.fail(f"code location not loaded after {LOAD_TIMEOUT_S}s ({last}); log tail:\n{_tail(log)}")


@pytest.mark.timeout(240)
def test_dagster_dev_serves_the_asset_graph(dagster_dev):
    base, proc, log = dagster_dev
    _wait_loaded(base, proc, log)

    nodes = {tuple(n["assetKey"]["path"]): n for n in _gql(base, ASSETS_QUERY)["assetNodes"]}
    assert ("media",) in nodes and ("media_sources",) in nodes, sorted(nodes)

    media = nodes[("media",)]
    assert media["isPartitioned"] and media["groupName"] == "ingest"
    pdef = media["partitionDefinition"]
    assert pdef["type"] == "MULTIPARTITIONED"
    assert {d["name"]: d["type"] for d in pdef["dimensionTypes"]} == {"date": "TIME_WINDOW", "shard": "STATIC"}
    dims = {d["name"]: d for d in media["partitionKeysByDimension"]}
    assert set(dims) == {"date", "shard"}
    assert dims["shard"]["partitionKeys"] == ["0", "1", "2", "3"]
    dates = dims["date"]["partitionKeys"]
    assert dates[0] == "2024-01-01" and dates == sorted(dates) and len(dates) > 300

    data = _gql(base, REPOS_QUERY)["repositoriesOrError"]
    assert data["__typename"] == "RepositoryConnection", data
    repos = [r for r in data["nodes"] if r["location"]["name"] == LOCATION]
    assert len(repos) == 1, data
    jobs = {j["name"] for j in repos[0]["jobs"]}
    sensors = {s["name"]: s for s in repos[0]["sensors"]}
    assert "ingest_job" in jobs, jobs
    assert "inbox_sensor" in sensors, sensors
    assert sensors["inbox_sensor"]["minIntervalSeconds"] == 15
    assert sensors["inbox_sensor"]["sensorState"]["status"] == "RUNNING"


RUNS_QUERY = """
query {
  runsOrError(filter: {tags: [{key: "mediaintel/trigger", value: "inbox_sensor"}]}) {
    __typename
    ... on Runs { results { runId status jobName tags { key value } } }
    ... on PythonError { message }
  }
}
"""


@pytest.mark.timeout(300)
def test_files_dropped_in_the_inbox_are_ingested_by_the_running_sensor(dagster_dev, home, media_dir):
    """The whole loop with nothing driven by hand: daemon -> sensor tick -> queued runs -> rows."""
    from conftest import copy_into, make_bad_files

    from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource

    base, proc, log = dagster_dev
    _wait_loaded(base, proc, log)
    # copy2 keeps the old mtimes, so the files count as settled at once.
    copy_into(media_dir, ["clip.mp4", "speech.wav", "poster.png"], home / "inbox")
    make_bad_files(home / "inbox" / "bad", media_dir / "clip.mp4")
    inbox = LocalInboxResource(roots=[str(home / "inbox")], settle_seconds=0)
    expected_windows = {str(f.partition_key()) for f in inbox.list_files()}
    lake = LakehouseResource(root=str(home / "lake"))

    deadline = time.monotonic() + 200
    runs = []
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode}:\n{_tail(log)}")
        data = _gql(base, RUNS_QUERY)["runsOrError"]
        runs = data.get("results", [])
        finished = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        if runs and len(finished) == len(runs) and len(runs) >= len(expected_windows):
            break
        time.sleep(2)
    else:
        pytest.fail(f"sensor runs did not finish: {runs}\n{_tail(log)}")

    assert {r["status"] for r in runs} == {"SUCCESS"}, runs
    partitions = {next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition") for r in runs}
    assert partitions == expected_windows
    assert lake.read("media").num_rows == 3
    assert lake.read("quarantine").num_rows == 5
    assert lake.read("media_sources").num_rows == 3
