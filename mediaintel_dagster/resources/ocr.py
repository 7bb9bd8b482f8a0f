"""The OCR resource: RapidOCR (PP-OCRv4 det + rec, ONNX models inside the wheel), loaded once
per process; the word-space restoration it applies lives in ``media/ocr_text.py``."""

from __future__ import annotations

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from ..media.ocr_text import OcrLine, rapidocr_version, restore_spaces
from .. import config
from .models import load_once


def _detect_size() -> tuple[str, int]:
    """MEDIAINTEL_OCR_DETECT_SIZE (`min:N` or `max:N`; its default is in config.SETTINGS): (rule, side)."""
    rule, _, side = config.get("MEDIAINTEL_OCR_DETECT_SIZE").partition(":")
    if rule not in ("min", "max") or not side.isdigit():
        raise ValueError(f"MEDIAINTEL_OCR_DETECT_SIZE={rule}:{side}: expected min:N or max:N")
    return rule, int(side)


class OcrResource(ConfigurableResource):
    """RapidOCR on ONNX Runtime (CPU), loaded once per process.

    The models (PP-OCRv4 detection and recognition, PP-OCR v2 direction classifier) ship
    inside the ``rapidocr-onnxruntime`` wheel: nothing is downloaded.
    """

    text_score: float = Field(default=0.5, description="RapidOCR drops lines whose recognition score is below this.")
    min_confidence: float = Field(default=0.6, description="Lines below this confidence are not written.")
    box_thresh: float = Field(default=0.5, description="Detector: minimum mean score of a text box.")
    # 2.0, not RapidOCR's 1.6: at the keyframe's own size a 1.6 box hugs the line so tightly
    # that the recogniser drops word spaces ("GRANDOPENING" on a 960x540 still); 2.0 gives
    # it the margin the upscaled detection used to give.
    unclip_ratio: float = Field(default=2.0, description="Detector: how far a text box is grown around its core.")
    restore_spaces: bool = Field(default=True, description="Put back the spaces the recogniser drops between words.")
    threads: int = Field(default=-1, description="ONNX Runtime intra-op threads (-1: runtime default).")
    # RapidOCR's own rule ('min', 736) scales every image *up* until its short side is 736
    # pixels: a 640x360 keyframe is detected at 1308x736, four times the pixels, for the same
    # caption words (docs/perf.md). 'min' 360 detects keyframes of 360p and up at their own
    # size (3x faster OCR on the bench) and still scales tiny ones up.
    det_limit_type: str = Field(default_factory=lambda: _detect_size()[0], description="Detector resize rule: 'min' (the short side scaled up to "
                                                           "at least det_limit_side_len) or 'max' (the long side "
                                                           "scaled down to at most that).")
    det_limit_side_len: int = Field(default_factory=lambda: _detect_size()[1], description="The side length that rule uses, in pixels.")

    @property
    def model_id(self) -> str:
        return f"rapidocr-onnxruntime/{rapidocr_version()}@ppocr-v4"

    def runtime(self) -> dict:
        return {"device": "cpu", "compute_type": "float32", "batch_size": 1}

    def engine(self):
        def build():
            from rapidocr_onnxruntime import RapidOCR

            return RapidOCR(text_score=self.text_score, intra_op_num_threads=self.threads,
                            box_thresh=self.box_thresh, unclip_ratio=self.unclip_ratio,
                            det_limit_type=self.det_limit_type, det_limit_side_len=self.det_limit_side_len)

        return load_once(("rapidocr", rapidocr_version(), self.text_score, self.threads, self.box_thresh,
                          self.unclip_ratio, self.det_limit_type, self.det_limit_side_len), build)

    def read(self, image: np.ndarray) -> list[OcrLine]:
        """Text lines on a BGR (OpenCV order) image, top to bottom, with confidence >= min_confidence."""
        return self.read_counted(image)[0]

    def read_counted(self, image: np.ndarray) -> tuple[list[OcrLine], bool]:
        """(lines, whether recognition ran). Detection runs first; when it finds no text box
        the direction classifier and the recogniser are not run at all (RapidOCR returns
        straight after detection), so a keyframe without text costs one detector pass."""
        import cv2

        result, _ = self.engine()(image, return_word_box=True, text_score=self.text_score,
                                  box_thresh=self.box_thresh, unclip_ratio=self.unclip_ratio)
        if not result:
            return [], result is not None
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        lines = []
        for item in result:
            box, raw, score = item[0], str(item[1]), float(item[2])
            if score < self.min_confidence or not raw.strip():
                continue
            chars = list(item[4]) if len(item) > 4 and item[4] else []
            char_boxes = item[3] if len(item) > 3 and item[3] else []
            char_conf = [float(c) for c in item[5]] if len(item) > 5 and item[5] else []
            text, added = raw, 0
            if self.restore_spaces and "".join(chars) == raw:
                text, added = restore_spaces(gray, box, chars, char_boxes)
            lines.append(OcrLine(
                text=" ".join(text.split()), confidence=score,
                box=[float(v) for pt in box for v in pt], raw_text=raw, spaces_added=added,
                char_confidences=char_conf,
            ))
        return lines, True
