"""Opening a scene's keyframe JPEG, with a clear error when it is missing or not an image.

The ``scenes`` table holds one row per shot with ``keyframe_uri``: a local path or
``file://`` URI of a JPEG of the shot's keyframe, or an ``s3://`` URI when the object
store is on S3 (written by the scenes stage through the object store resource).
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

import numpy as np

from .errors import ErrorCode, MediaError


def keyframe_path(uri: str) -> str:
    if not uri:
        raise MediaError(ErrorCode.MISSING_KEYFRAME, "the scenes row has no keyframe_uri")
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    if "://" in uri:
        raise MediaError(ErrorCode.UNSUPPORTED_URI,
                         f"keyframe {uri!r}: only local paths, file:// and s3:// URIs are read here")
    return uri


def _s3_bytes(uri: str) -> bytes:
    from ..lake import s3

    try:
        data = s3.get_bytes(uri)
    except Exception as exc:
        if s3.is_missing(exc):
            raise MediaError(ErrorCode.MISSING_KEYFRAME, f"keyframe {uri} does not exist") from exc
        raise
    if not data:
        raise MediaError(ErrorCode.UNREADABLE_KEYFRAME, f"keyframe {uri} is an empty object")
    return data


def _check_file(uri: str) -> str:
    path = keyframe_path(uri)
    if not os.path.exists(path):
        raise MediaError(ErrorCode.MISSING_KEYFRAME, f"keyframe {uri} does not exist")
    if os.path.getsize(path) == 0:
        raise MediaError(ErrorCode.UNREADABLE_KEYFRAME, f"keyframe {uri} is an empty file")
    return path


def open_keyframe_bgr(uri: str) -> np.ndarray:
    """The keyframe as an OpenCV-order (BGR) array, decoded by Pillow so that a truncated
    JPEG fails instead of coming back half grey."""
    return np.ascontiguousarray(np.asarray(open_keyframe_pil(uri))[:, :, ::-1])


def open_keyframe_pil(uri: str):
    """The keyframe as an RGB PIL image, fully decoded (a truncated JPEG fails here)."""
    from PIL import Image, UnidentifiedImageError

    from ..lake.s3 import is_s3

    if is_s3(uri):
        import io

        path = io.BytesIO(_s3_bytes(uri))
    else:
        path = _check_file(uri)
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaError(ErrorCode.UNREADABLE_KEYFRAME, f"keyframe {uri} is not a decodable image: {exc}") from exc
