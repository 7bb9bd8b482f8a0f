"""`dagster dev` serves the code location: the asset graph, its partitions, the job and the
sensor; and a headless Chromium drives its UI to materialize a partition.

Starts the real `dagster dev` (webserver + daemon + code server) from workspace.yaml on a
free port over an isolated DAGSTER_HOME, once for the module (the start is the slow part),
and asks its GraphQL API what it loaded. Field names follow dagster-graphql 1.13's schema
(dagster_graphql/schema/). The browser test uses Debian's chromium (/usr/bin/chromium,
never a downloaded browser) through playwright; it skips without it, and fails under CI=true.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO, VENV_BIN, set_home

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
    description
    owners { __typename ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
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


@pytest.fixture(scope="module")
def web_home(tmp_path_factory, models_dir):
    """One MEDIAINTEL_HOME for the module's `dagster dev` and its tests."""
    with pytest.MonkeyPatch.context() as mp:
        yield set_home(mp, tmp_path_factory.mktemp("web") / "mi", models_dir)


@pytest.fixture(scope="module")
def dagster_dev(web_home):
    """A running `dagster dev` over ``web_home``: (base URL, process, log path)."""
    from mediaintel_dagster.instance import ensure_dagster_home

    home = web_home

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
    from mediaintel_dagster import config

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
    # The partitions start at the configured start (a recent date by default), not years back.
    start = dt.date.fromisoformat(config.partition_start())
    assert dates[0] == start.isoformat() and dates == sorted(dates)
    assert len(dates) == (dt.datetime.now(dt.timezone.utc).date() - start).days + 1
    assert "shows as missing: that is not a backlog" in media["description"], "the page says why windows are missing"
    assert media["owners"] == [{"__typename": "TeamAssetOwner", "team": "media-intel"}]

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
def test_files_dropped_in_the_inbox_are_ingested_by_the_running_sensor(dagster_dev, web_home, media_dir):
    """The whole loop with nothing driven by hand: daemon -> sensor tick -> queued runs -> rows."""
    from conftest import copy_into, make_bad_files

    from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource

    home = web_home
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


# ---- the UI in a real browser ----------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / ".mediaintel" / "screenshots"  # kept after the run for a human to look at (gitignored)

RUN_QUERY = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }
"""

PARTITION_RUNS_QUERY = """
query($value: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $value}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


def _browser_or_skip():
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install playwright==1.65.2; it drives Debian's chromium)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " - required under CI=true")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    return sync_playwright


def _shot(page, name: str) -> Path:
    """A full-page screenshot; asserted non-trivial (a blank or broken page is a few KB of one colour)."""
    from PIL import Image, ImageStat

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as im:
        assert im.width >= 1000 and im.height >= 600, (path, im.size)
        spread = ImageStat.Stat(im.convert("L")).stddev[0]
    assert path.stat().st_size > 20_000 and spread > 10, f"{path}: looks blank ({path.stat().st_size} B, stddev {spread:.1f})"
    return path


@pytest.mark.timeout(300)
def test_the_ui_materializes_a_partition_and_shows_its_data(dagster_dev, web_home, media_dir):
    """Headless Chromium opens the asset graph, launches `media` for one window from the
    asset's Materialize dialog (date x shard pickers), and the run succeeds; the asset page
    then shows the column schema, owners, and the materialization's row count and preview; the
    scenes of the sensor test's video show their keyframes as inline thumbnails."""
    sync_playwright = _browser_or_skip()
    from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource
    from mediaintel_dagster.ui_metadata import THUMBNAILS

    base, proc, log = dagster_dev
    _wait_loaded(base, proc, log)
    # The window of a file in the inbox (the sensor test's, or one put there now): the run
    # launched from the UI has rows to show, and is a no-op if the sensor got there first.
    inbox = web_home / "inbox"
    if not any(inbox.rglob("poster.png")):
        shutil.copy2(media_dir / "poster.png", inbox / "poster.png")
    poster = next(f for f in LocalInboxResource(roots=[str(inbox)], settle_seconds=0).list_files()
                  if f.source_uri.endswith("poster.png"))
    window = poster.partition_key()
    date, shard = window.keys_by_dimension["date"], window.keys_by_dimension["shard"]
    before = {r["runId"] for r in _gql_vars(base, PARTITION_RUNS_QUERY, {"value": str(window)})
              ["runsOrError"]["results"]}

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/locations/{LOCATION}/asset-groups/ingest", wait_until="networkidle", timeout=60_000)
            _dismiss_welcome(page)
            page.get_by_text("media_sources").first.wait_for(timeout=30_000)
            page.get_by_text("Materialize all").first.wait_for()
            _shot(page, "1-asset-graph")

            page.goto(f"{base}/assets/media", wait_until="networkidle", timeout=60_000)
            _dismiss_welcome(page)
            page.get_by_text("first location this content was seen at").wait_for(timeout=30_000)  # column schema
            page.get_by_text("media-intel").first.wait_for()  # owners
            page.get_by_role("button", name="Materialize…").click()
            dialog = page.locator("[role=dialog]")
            dates = dialog.get_by_placeholder("ex: ", exact=False)
            dates.fill(date)
            dates.press("Enter")
            dialog.get_by_text("Select a partition or create one").click()
            page.keyboard.type(shard)
            page.get_by_role("menuitem").filter(has_text=shard).last.click()
            page.keyboard.press("Escape")  # close the shard list, not the dialog
            launch = dialog.get_by_role("button", name="Launch 1 run")
            launch.wait_for(timeout=15_000)
            _shot(page, "2-materialize-dialog")
            launch.click()

            run_id = _wait_new_run(base, str(window), before, proc, log)
            page.goto(f"{base}/runs/{run_id}", wait_until="networkidle", timeout=60_000)
            page.get_by_text("Success", exact=False).first.wait_for(timeout=60_000)
            _shot(page, "3-run-succeeded")

            page.goto(f"{base}/assets/media?view=events&partition={window}", wait_until="networkidle",
                      timeout=60_000)
            page.get_by_text("dagster/row_count").first.wait_for(timeout=30_000)
            page.get_by_text("poster.png").first.wait_for(timeout=30_000)  # the preview's rows
            _shot(page, "4-materialization-metadata")

            # The sensor test's run of clip.mp4 (a two-shot video) wrote scenes: its keyframes
            # show as inline thumbnails. (Run alone, this test has no video ingested.)
            clip = [f for f in LocalInboxResource(roots=[str(inbox)], settle_seconds=0).list_files()
                    if f.source_uri.endswith("clip.mp4")]
            if clip:
                clip_window = str(clip[0].partition_key())
                # Windows are shards of a path hash, and the pytest folder is in the path: the
                # poster (an image: one scene, one keyframe) shares the clip's window in some
                # runs. So the expected count is the window's keyframed scenes, from the lake.
                lake = LakehouseResource(root=str(web_home / "lake"))
                uris = {m["media_id"]: m["source_uri"]
                        for m in lake.window_media(clip_window, columns=["media_id", "source_uri"])}
                keyed = [r for r in lake.read("scenes", columns=["media_id", "keyframe_uri"]).to_pylist()
                         if r["media_id"] in uris and r["keyframe_uri"]]
                assert sum(uris[r["media_id"]].endswith("clip.mp4") for r in keyed) == 2, keyed
                page.goto(f"{base}/assets/scenes?view=events&partition={clip_window}",
                          wait_until="networkidle", timeout=60_000)
                row = page.locator("tr", has_text="keyframes_preview")
                row.get_by_text("[Show Markdown]").click(timeout=30_000)
                thumbs = page.locator("img[src^='data:image/jpeg;base64,']")
                thumbs.first.wait_for(timeout=15_000)
                assert thumbs.count() == min(len(keyed), THUMBNAILS), (thumbs.count(), keyed)
                assert thumbs.first.evaluate("img => img.naturalWidth") == 160, "a decoded 160 px thumbnail"
                _shot(page, "5-keyframe-thumbnails")
        except Exception:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "failed.png"))  # what the page showed when it failed
            raise
        finally:
            browser.close()


def _dismiss_welcome(page) -> None:
    """A fresh instance greets with a 'Join the Dagster community' dialog: skip it if shown."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=3_000)
    except Exception:  # noqa: BLE001 - not shown (already dismissed on this instance)
        pass


def _gql_vars(base: str, query: str, variables: dict) -> dict:
    r = requests.post(f"{base}/graphql", json={"query": query, "variables": variables}, timeout=30)
    r.raise_for_status()
    body = r.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def _wait_new_run(base: str, partition: str, before: set, proc, log: Path) -> str:
    """The run the UI launched for ``partition``, once it finished successfully."""
    deadline = time.monotonic() + 180
    runs = []
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode}:\n{_tail(log)}")
        runs = [r for r in _gql_vars(base, PARTITION_RUNS_QUERY, {"value": partition})["runsOrError"]["results"]
                if r["runId"] not in before and not any(t["key"] == "mediaintel/trigger" for t in r["tags"])]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            assert runs[0]["status"] == "SUCCESS", f"{runs[0]}\n{_tail(log)}"
            return runs[0]["runId"]
        time.sleep(2)
    pytest.fail(f"no finished run of {partition} launched from the UI: {runs}\n{_tail(log)}")
