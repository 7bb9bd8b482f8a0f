"""What the Dagster UI shows about the data: column schemas on every asset and its
materializations, row counts, a row preview, keyframe thumbnails, owners, plotted rates,
and failures that name the file."""

from __future__ import annotations

import base64
import io

import pyarrow as pa
import pytest
from dagster import (AssetKey, DagsterInstance, Failure, MetadataValue, TableSchema, build_sensor_context,
                     materialize)

from mediaintel_dagster import ui_metadata as ui
from mediaintel_dagster.lake import schemas
from conftest import window_of

# A materialization's metadata is stored in the event log for every run: the scenes event,
# with its thumbnails, stays under this (measured ~13 KB for 2 shots; docs/ui.md).
MAX_EVENT_BYTES = 32_000


def test_every_asset_declares_its_columns_and_owners():
    from mediaintel_dagster.definitions import build_defs

    graph = build_defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:media-intel"], key
        name = key.to_user_string()
        if name in schemas.SCHEMAS:
            schema = node.metadata.get("dagster/column_schema")
            assert schema is not None, f"{name} has no column schema"
            assert [c.name for c in schema.columns] == schemas.schema(name).names
    scenes = graph.get(AssetKey("scenes")).metadata["dagster/column_schema"]
    described = {c.name: c.description for c in scenes.columns}
    assert "Which detector decided" in described["detector"]
    assert described["keyframe_width"].startswith("keyframe JPEG size")
    assert "arrival window" in graph.get(AssetKey("scenes")).description, "the UI explains the missing windows"


def test_owners_are_configurable(monkeypatch):
    monkeypatch.setenv("MEDIAINTEL_OWNERS", "team:news, ops@example.com")
    from mediaintel_dagster.assets.scenes import SCENES

    spec = next(iter(SCENES.asset().specs))
    assert list(spec.owners) == ["team:news", "ops@example.com"]


def test_column_descriptions_come_from_the_schema_comments():
    notes = ui.column_descriptions()
    assert set(notes) == set(schemas.SCHEMAS)
    assert notes["media"]["source_uri"] == "first location this content was seen at"
    assert notes["embeddings"]["item_kind"] == "'scene', 'segment' or 'ocr'"
    assert "media_id" not in notes["scenes"], "an uncommented column has no description"
    schema = ui.table_schema("audit_log")
    assert isinstance(schema, TableSchema) and schema.columns[11].type == "timestamp (UTC)"


def test_preview_cuts_long_text_and_vectors():
    rows = pa.table({"text": ["x" * 500, "short|pipe"], "vector": [[0.1] * 384, [0.2] * 384],
                     "n": [1, None]})
    md = ui.preview_md(rows, limit=1).value
    assert "x" * 59 + "…" in md and "x" * 61 not in md
    assert "(384)" in md and md.count("0.1") == 3
    assert "1 of 2 rows shown" in md
    assert "short\\|pipe" in ui.preview_md(rows).value, "a | in a value does not break the table"
    assert "(no rows in this window)" in ui.preview_md(rows.slice(0, 0)).value


def test_thumbnail_is_a_small_jpeg():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1280, 720), (200, 30, 30)).save(buf, format="JPEG")
    uri = ui.thumbnail_data_uri(buf.getvalue())
    assert uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        assert im.size == (160, 90)
    assert len(uri) < 4000
    md = ui.thumbnails_md([{"media_id": "abcdef0123456789", "scene_index": 0, "keyframe_s": 0.5,
                            "keyframe_uri": "missing"}], read=lambda uri: (_ for _ in ()).throw(OSError(uri)))
    assert md is None, "an unreadable keyframe is skipped, never a failed run"


@pytest.fixture(scope="module")
def window_run(tmp_path_factory, models_dir):
    """media + scenes over one window holding a two-shot video and a file that is not media."""
    from conftest import set_home

    from mediaintel_dagster.assets import media_assets, scenes
    from mediaintel_dagster.media.samples import Shot, make_video
    from mediaintel_dagster.resources import LakehouseResource, LocalInboxResource, ObjectStoreResource

    with pytest.MonkeyPatch.context() as mp:
        h = set_home(mp, tmp_path_factory.mktemp("ui") / "mi", models_dir)
        video = h / "inbox" / "two.mp4"
        make_video(video, [Shot(1.0, "FIRST", style="gradient"), Shot(1.0, "SECOND", style="checker")],
                   size=(320, 180))
        lake = LakehouseResource(root=str(h / "lake"))
        resources = {"lake": lake, "inbox": LocalInboxResource(settle_seconds=0),
                     "objects": ObjectStoreResource(root=str(h / "objects"))}
        window = window_of(video)
        res = materialize([media_assets, scenes], partition_key=window, instance=DagsterInstance.ephemeral(),
                          resources=resources)
        assert res.success
        meta = {m.asset_key.to_user_string(): m.metadata for node in ("media_assets", "scenes")
                for m in res.asset_materializations_for_node(node)}
        yield {"meta": meta, "lake": lake, "resources": resources, "window": window, "home": h}


def test_materializations_carry_schema_rows_and_preview(window_run):
    meta = window_run["meta"]
    for name, rows in (("media", 1), ("media_sources", 1), ("scenes", 2)):
        m = meta[name]
        assert [c.name for c in m["dagster/column_schema"].schema.columns] == schemas.schema(name).names
        assert m["dagster/row_count"].value == rows, name
        assert m["table_rows_total"].value == rows
        assert isinstance(m["preview"], MetadataValue.md("").__class__)
    assert "two.mp4" in meta["media"]["preview"].value
    assert "| 1 | 1.000 | 2.000 |" in meta["scenes"]["preview"].value.replace("0 | 0.000", "x")
    assert meta["scenes"]["real_time_factor"].value > 0
    assert meta["scenes"]["quarantine_rate"].value == 0.0
    assert meta["media"]["quarantine_rate"].value == 0.0


def test_scenes_show_keyframe_thumbnails_and_stay_small(window_run):
    meta = window_run["meta"]["scenes"]
    md = meta["keyframes_preview"].value
    assert md.count("data:image/jpeg;base64,") == 2 and "#1 @ 1.4s" in md
    size = ui.metadata_size(meta)
    print(f"scenes materialization metadata: {size} bytes; media: {ui.metadata_size(window_run['meta']['media'])}")
    assert size < MAX_EVENT_BYTES


def test_a_step_failure_names_the_stage_window_and_file(window_run, monkeypatch):
    """Something outside the per-media quarantine breaks (here: the table write): the step
    fails with one line naming the stage and window, and the file when inside one."""
    from mediaintel_dagster.assets import scenes
    from mediaintel_dagster.assets import stage as stage_mod

    lake = window_run["lake"]

    def broken_replace(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(lake), "replace", broken_replace)
    res = materialize([scenes], partition_key=window_run["window"], instance=DagsterInstance.ephemeral(),
                      resources=window_run["resources"], run_config={"ops": {"scenes": {"config": {"force": True}}}},
                      raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    assert error.cls_name == "Failure"
    text = failure.step_failure_data.user_failure_data.description
    assert text.startswith(f"scenes failed in window {window_run['window']}") and "OSError: disk full" in text
    assert "\n" not in text
    # inside one file, the file is named
    err = OSError("boom")
    token = stage_mod.CURRENT_INPUT.set(str(window_run["home"] / "inbox" / "two.mp4"))
    try:
        class Ctx:
            has_partition_key, partition_key = True, "2026-11-02|1"
            log = type("L", (), {"error": staticmethod(lambda m: None)})()

        f = stage_mod.step_failure(stage_mod.Stage(name="x", table="scenes", code_version="1", description="",
                                                   group="g", compute=None), Ctx(), err)
    finally:
        stage_mod.CURRENT_INPUT.reset(token)
    assert isinstance(f, Failure) and "on two.mp4: OSError: boom" in f.description
    assert f.metadata["file"].value.endswith("two.mp4")


def test_a_sensor_failure_names_the_file(tmp_path):
    from mediaintel_dagster.resources import LocalInboxResource
    from mediaintel_dagster.sensors.inbox import InboxSensorError, inbox_sensor

    (tmp_path / "a.mp4").write_bytes(b"x")

    class BadInbox(LocalInboxResource):
        def list_files(self):
            for f in super().list_files():
                yield f._replace(mtime_ns="not a time")

    with DagsterInstance.ephemeral() as instance:
        ctx = build_sensor_context(instance=instance, resources={"inbox": BadInbox(roots=[str(tmp_path)],
                                                                                   settle_seconds=0)})
        with pytest.raises(InboxSensorError) as info:
            inbox_sensor(ctx)
    msg = str(info.value)
    assert msg.startswith(f"inbox_sensor failed on {tmp_path / 'a.mp4'}: TypeError"), msg
    assert "\n" not in msg
