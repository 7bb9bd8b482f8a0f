"""What the keyframe stages (OCR, image embeddings) share: the scenes of the media to do,
and opening a keyframe with a clear error when it is missing or not an image.

The ``scenes`` table (written by the scenes stage) holds one row per shot with
``keyframe_uri``: a local path or ``file://`` URI of a JPEG of the shot's keyframe.
"""

import os
from collections import defaultdict
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow.dataset as pads

from ..resources.lakehouse import LakehouseResource

SCENE_COLUMNS = ["media_id", "scene_index", "start_s", "end_s", "keyframe_s", "keyframe_uri"]


class KeyframeError(Exception):
    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def scenes_by_media(lake: LakehouseResource, media_ids: list[str]) -> dict[str, list[dict]]:
    """The scenes rows of these media, grouped by media and ordered by scene_index."""
    out: dict[str, list[dict]] = defaultdict(list)
    if not media_ids:
        return out
    for row in lake.read_keys("scenes", "media_id", media_ids, columns=SCENE_COLUMNS).to_pylist():
        out[row["media_id"]].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r["scene_index"])
    return out


def open_quarantine(lake: LakehouseResource, stage: str, media_ids: list[str]) -> set[str]:
    """Media with a keyframe still in quarantine for ``stage``: not done, whatever an
    earlier audit row says, so every run retries them until the keyframe reads."""
    if not media_ids:
        return set()
    flt = (pads.field("stage") == stage) & pads.field("media_id").isin(sorted(set(media_ids)))
    return set(lake.read("quarantine", columns=["media_id"], filter=flt).column("media_id").to_pylist())


def split_work(media: list[dict], scenes: dict[str, list[dict]]) -> tuple[list[dict], list[str], list[str]]:
    """(media with keyframes, media with nothing to read, media still waiting for scenes).

    A media without a picture (audio) has nothing for these stages: it is recorded as done
    with zero rows. A media with a picture (video, or a still image) but no scenes rows yet
    (the scenes stage has not run for it, or quarantined it) is left for a later run, not
    recorded as done.
    """
    work, empty, waiting = [], [], []
    for m in media:
        if scenes.get(m["media_id"]):
            work.append(m)
        elif m.get("has_video") or m.get("kind") == "image":
            waiting.append(m["media_id"])
        else:
            empty.append(m["media_id"])
    return work, empty, waiting


def scenes_withdrawn(lake: LakehouseResource, media_ids: list[str]) -> set[str]:
    """Media whose newest `scenes` audit row is a quarantine: a forced rescan found the file
    broken (cut short after ingest) and removed its shots and keyframes, so the rows these
    stages derived from the old shots must go too. Recorded as done with zero rows; when
    scenes writes the media again, that newer row makes them redo it (done_media after=).
    """
    if not media_ids:
        return set()
    log = lake.read("audit_log", columns=["media_id", "status", "at"],
                    filter=(pads.field("asset") == "scenes") & pads.field("media_id").isin(sorted(set(media_ids)))
                    & pads.field("status").isin(["written", "quarantined"])).to_pylist()
    newest: dict[str, tuple] = {}
    for r in log:
        if r["media_id"] not in newest or r["at"] >= newest[r["media_id"]][0]:
            newest[r["media_id"]] = (r["at"], r["status"])
    return {mid for mid, (_, status) in newest.items() if status == "quarantined"}


def keyframe_path(uri: str) -> str:
    if not uri:
        raise KeyframeError("missing_keyframe", "the scenes row has no keyframe_uri")
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    if "://" in uri:
        raise KeyframeError("unsupported_uri", f"keyframe {uri!r}: only local paths and file:// URIs are read here")
    return uri


def _check_file(uri: str) -> str:
    path = keyframe_path(uri)
    if not os.path.exists(path):
        raise KeyframeError("missing_keyframe", f"keyframe {uri} does not exist")
    if os.path.getsize(path) == 0:
        raise KeyframeError("unreadable_keyframe", f"keyframe {uri} is an empty file")
    return path


def open_keyframe_bgr(uri: str) -> np.ndarray:
    """The keyframe as an OpenCV-order (BGR) array, decoded by Pillow so that a truncated
    JPEG fails instead of coming back half grey."""
    return np.ascontiguousarray(np.asarray(open_keyframe_pil(uri))[:, :, ::-1])


def open_keyframe_pil(uri: str):
    """The keyframe as an RGB PIL image, fully decoded (a truncated JPEG fails here)."""
    from PIL import Image, UnidentifiedImageError

    path = _check_file(uri)
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise KeyframeError("unreadable_keyframe", f"keyframe {uri} is not a decodable image: {exc}") from exc
