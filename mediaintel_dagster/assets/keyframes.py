"""What the keyframe stages (OCR, image embeddings) share: the scenes of the media to do,
and opening a keyframe with a clear error when it is missing or not an image.

The ``scenes`` table (written by the scenes stage) holds one row per shot with
``keyframe_uri``: a local path or ``file://`` URI of a JPEG of the shot's keyframe.
"""

import os
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow.dataset as pads

from ..resources.lakehouse import LakehouseResource
from .common import audit_entry, done_media, quarantine_and_audit, quarantined_media, window_media

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


@dataclass
class KeyframePlan:
    """What a keyframe stage does for a window: ``work`` (media with scenes rows, in
    ``scenes``), ``empty`` (media to record with zero rows: no picture, or shots withdrawn),
    ``waiting`` (pictures without scenes yet), and the ``done`` media it skips."""

    media: list[dict]
    done: set[str]
    work: list[dict]
    empty: list[str]
    waiting: list[str]
    scenes: dict[str, list[dict]]


def plan_keyframe_work(context, lake: LakehouseResource, stage: str, *, code_version: str, model_id: str,
                       force: bool) -> KeyframePlan:
    """The window's media, less those done after scenes last wrote them (unless ``force``),
    split by what their scenes rows say."""
    media = window_media(lake, context.partition_key, columns=["media_id", "kind", "has_video", "duration_s"])
    ids = [m["media_id"] for m in media]
    done = set() if force else done_media(lake, stage, ids, code_version=code_version, model_id=model_id,
                                          after=["scenes"])
    # A media with a keyframe still in quarantine is not done, whatever an earlier audit row
    # says: every run retries it until the keyframe reads.
    done -= quarantined_media(lake, stage, done)
    todo = [m for m in media if m["media_id"] not in done]
    scenes = scenes_by_media(lake, [m["media_id"] for m in todo])
    work, empty, waiting = split_work(todo, scenes)
    withdrawn = scenes_withdrawn(lake, waiting)
    if withdrawn:  # their shots are gone: so are the rows made from them
        context.log.warning(f"{len(withdrawn)} media lost their scenes to quarantine; removing their rows: "
                            f"{sorted(withdrawn)}")
        empty += sorted(withdrawn)
        waiting = [mid for mid in waiting if mid not in withdrawn]
    if waiting:
        context.log.info(f"{len(waiting)} media have no scenes rows yet; left for a later run: {waiting}")
    return KeyframePlan(media=media, done=done, work=work, empty=empty, waiting=waiting, scenes=scenes)


def write_keyframe_rows(context, lake: LakehouseResource, stage: str, table: str, rows: list[dict], *,
                        plan: KeyframePlan, key_suffix: tuple, per_media: dict, failed_media: set[str],
                        bad: list[dict], ok_uris: list[str], code_version: str, model_id: str) -> tuple[list[str], int | None]:
    """One replace of ``table`` for every media the plan settled (keys ``(media_id, *key_suffix)``),
    their audit rows ('partial' when a keyframe was quarantined: the next run retries the
    media), the quarantine rows, and clearing the quarantine of keyframes that now read.
    Returns (media written, table version)."""
    written = [m["media_id"] for m in plan.work] + plan.empty
    version = lake.replace(table, rows, keys=[(mid, *key_suffix) for mid in written]) if written else None
    audit = [audit_entry(context, stage, table, mid, code_version=code_version, rows=per_media.get(mid, 0),
                         delta_version=version, model_id=model_id,
                         status="partial" if mid in failed_media else "written")
             for mid in written]
    audit += quarantine_and_audit(context, lake, stage, bad, code_version=code_version, model_id=model_id)
    lake.clear_quarantine(stage, ok_uris)
    lake.audit(audit)
    return written, version


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
