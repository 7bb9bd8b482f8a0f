"""A small real `scenes` asset for the visual-stage tests, until the scenes stage lands.

It keeps the scenes contract (media_id, scene_index, start_s, end_s, keyframe_s,
keyframe_uri, phash, code_version; keyframe_uri = a local JPEG) with the simplest rule
that fits the generated test media: a video is cut every ``SCENE_S`` seconds (the tests
make one shot per second) and the keyframe is the frame in the middle of each piece; an
image is one scene whose keyframe is the image itself, re-encoded as JPEG.
"""

import os
from pathlib import Path

import av
from dagster import AssetExecutionContext, MaterializeResult, asset
from PIL import Image

from mediaintel_dagster import config
from mediaintel_dagster.assets.common import window_media
from mediaintel_dagster.partitions import arrival_partitions
from mediaintel_dagster.resources import LakehouseResource

SCENE_S = 1.0


def _keyframes(source_uri: str, kind: str, duration_s: float, out_dir: Path) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        path = out_dir / "0.jpg"
        with Image.open(source_uri) as im:
            im.convert("RGB").save(path, quality=90)
        return [{"scene_index": 0, "start_s": 0.0, "end_s": 0.0, "keyframe_s": 0.0, "keyframe_uri": str(path)}]
    n = max(1, round(duration_s / SCENE_S))
    wanted = [(i + 0.5) * SCENE_S for i in range(n)]
    rows = []
    with av.open(source_uri) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            if wanted and t >= wanted[0] - 1e-6:
                i = len(rows)
                path = out_dir / f"{i}.jpg"
                frame.to_image().save(path, quality=90)
                rows.append({"scene_index": i, "start_s": i * SCENE_S, "end_s": min(duration_s, (i + 1) * SCENE_S),
                             "keyframe_s": t, "keyframe_uri": str(path)})
                wanted.pop(0)
    return rows


@asset(name="scenes", partitions_def=arrival_partitions, deps=["media"], code_version="test-scenes@1")
def scenes(context: AssetExecutionContext, lake: LakehouseResource) -> MaterializeResult:
    """Test stand-in for the scenes stage: fixed one-second scenes and their middle frames."""
    rows = []
    media = window_media(lake, context.partition_key)
    for m in media:
        if not m["has_video"] and m["kind"] != "image":
            continue
        out = Path(config.objects_root()) / "keyframes" / m["media_id"]
        for r in _keyframes(m["source_uri"], m["kind"], m["duration_s"] or 0.0, out):
            rows.append({"media_id": m["media_id"], "phash": None, "code_version": "test-scenes@1", **r})
    if rows:
        lake.replace("scenes", rows)
    return MaterializeResult(metadata={"rows": len(rows)})


def window_of(path: os.PathLike) -> str:
    """The arrival window (partition key) of a file, as the inbox sensor computes it."""
    from mediaintel_dagster.resources.inbox import stat_file

    return str(stat_file(str(path)).partition_key())
