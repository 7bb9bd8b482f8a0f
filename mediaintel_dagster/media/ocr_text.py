"""OCR of keyframes: RapidOCR (PP-OCRv4 det + rec, ONNX models inside the wheel), with the
spaces between words put back.

PP-OCRv4's recogniser often reads a caption "BREAKING NEWS" as "BREAKINGNEWS": its
character set has a space, but the CTC decoder rarely emits it for wide-tracked capitals.
Search needs the words, so each line is looked at again: RapidOCR's
``return_word_box=True`` gives the position of every recognised character, and the
line's ink profile (Otsu-binarised columns of the line's box) says how much empty space
lies between two neighbouring characters. A gap much wider than the line's usual gap
between letters is a word break. No dictionary is needed (none is installed here), so
names and codes split as well as words do.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field

import numpy as np

# Word-gap rules, measured on generated captions (320x180 to 1280x720, plain and
# patterned backgrounds; see tests/test_ocr.py): gaps between the letters of a word are
# mostly 0-25 % of the line box height, gaps between words 23-50 %; the two overlap across
# lines, so each line is judged against its own letter gaps. A gap is a word break when
# (a) it is wide for the line's height AND wide against the line's median letter gap, or
# (b) it sits above the widest jump in the line's sorted gaps (natural break) and that
#     group is still clearly wider than the letter gaps.
_WIDE_OF_HEIGHT = 0.28
_WIDE_OF_MEDIAN = 1.8
_MIN_GAP_OF_HEIGHT = 0.20
_MIN_GAP_OF_MEDIAN = 2.0
_MIN_JUMP_OF_HEIGHT = 0.10
# Below this line height (px) the ink profile is a few pixels wide and too coarse to judge.
_MIN_LINE_HEIGHT = 20


@dataclass
class OcrLine:
    """One text line read on an image (coordinates in the image's pixels)."""

    text: str  # with word spaces restored
    confidence: float  # RapidOCR's recognition score of the line, 0..1
    box: list[float]  # x0, y0, x1, y1, x2, y2, x3, y3 (clockwise from top-left)
    raw_text: str  # what the recogniser emitted
    spaces_added: int = 0
    char_confidences: list[float] = field(default_factory=list)


def rapidocr_version() -> str:
    try:
        return importlib.metadata.version("rapidocr-onnxruntime")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "unknown"


def _ink_columns(gray: np.ndarray) -> np.ndarray:
    """Per column of a line crop: does it hold ink? Ink = the minority class after Otsu
    (light captions on dark bands and dark print on paper alike)."""
    import cv2

    _, bw = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = bw > 0
    if ink.mean() > 0.5:
        ink = ~ink
    # Speckle (JPEG noise, a stray pixel of the background) is not a letter.
    return ink.sum(axis=0) > max(1, int(0.04 * gray.shape[0]))


def _longest_empty_run(cols: np.ndarray) -> int:
    best = run = 0
    for v in cols:
        run = 0 if v else run + 1
        best = max(best, run)
    return best


def _word_gap_threshold(gaps: list[int], height: int) -> float:
    """The narrowest gap (px) that counts as a word break on this line.

    Rule (a) above gives ``wide``; rule (b) splits the sorted gaps at their widest jump
    ("natural break") and accepts the split only when the upper group is wide for this
    text height and clearly wider than the letter gaps. The lower of the two wins.
    """
    g = sorted(gaps)
    wide = max(_WIDE_OF_HEIGHT * height, _WIDE_OF_MEDIAN * float(np.median(g)))
    best_jump, split = 0.0, None
    for lo, hi in zip(g, g[1:]):
        if hi - lo > best_jump:
            best_jump, split = hi - lo, (lo, hi)
    if split is None:
        return wide
    lo, hi = split
    letters = [v for v in g if v <= lo]
    median = float(np.median(letters))
    if hi < _MIN_GAP_OF_HEIGHT * height or hi < _MIN_GAP_OF_MEDIAN * max(median, 1.0) \
            or best_jump < _MIN_JUMP_OF_HEIGHT * height:
        return wide
    return min(wide, float(hi))


def restore_spaces(gray: np.ndarray, box: list[list[float]], chars: list[str],
                   char_boxes: list[list[list[float]]]) -> tuple[str, int]:
    """Put spaces back between the words of one recognised line.

    ``gray`` is the whole image (grayscale), ``box`` the line's 4 points, ``chars`` and
    ``char_boxes`` RapidOCR's per-character output. Returns (text, spaces added). Lines
    that are not horizontal, or whose character boxes do not match the characters, are
    returned as recognised.
    """
    text = "".join(chars)
    if len(chars) < 3 or len(chars) != len(char_boxes):
        return text, 0
    pts = np.asarray(box, dtype=np.float32)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    height = y1 - y0
    width = x1 - x0
    if height < _MIN_LINE_HEIGHT or width < 2 * height or abs(float(pts[1][1] - pts[0][1])) > 0.25 * height:
        return text, 0  # vertical or steeply rotated text: the column profile means nothing
    x0, y0 = max(0, x0), max(0, y0)
    crop = gray[y0:y1, x0:x1]
    if crop.size == 0:
        return text, 0
    cols = _ink_columns(crop)
    centres = [float(np.asarray(b, dtype=np.float32)[:, 0].mean()) - x0 for b in char_boxes]
    if any(b < a for a, b in zip(centres, centres[1:])):
        return text, 0  # mixed-script output is ordered differently from the boxes
    gaps: list[int | None] = []
    for i in range(len(chars) - 1):
        if chars[i].isspace() or chars[i + 1].isspace():
            gaps.append(None)  # the recogniser already split here
            continue
        a, b = int(round(centres[i])), int(round(centres[i + 1]))
        gaps.append(_longest_empty_run(cols[max(0, a):max(0, b)]))
    letter_gaps = [g for g in gaps if g is not None]
    if len(letter_gaps) < 2:
        return text, 0
    threshold = _word_gap_threshold(letter_gaps, height)
    out = [chars[0]]
    added = 0
    for ch, gap in zip(chars[1:], gaps):
        if gap is not None and gap >= threshold:
            out.append(" ")
            added += 1
        out.append(ch)
    return "".join(out), added
