"""``mediaintel/image-features-v1``: the declared fallback image embedder, pure numpy/OpenCV
(no weights), used when OpenCLIP weights are not on the machine (see ``resources/clip.py``)."""

from __future__ import annotations

import numpy as np

FALLBACK_MODEL_ID = "mediaintel/image-features-v1"


class ImageFeatureEmbedder:
    """``mediaintel/image-features-v1``: a 512-d vector made of

    - a joint HSV colour histogram (12 hue x 4 saturation x 4 value = 192 bins),
    - gradient-orientation histograms on a 4 x 4 grid (8 orientations, magnitude-weighted:
      128 values; the layout of edges),
    - a 16 x 12 grayscale thumbnail, mean-removed (192 values; the coarse composition),

    each block L2-normalised, then the whole vector L2-normalised. Deterministic, no
    weights, ~ms per image on a CPU. Good for finding visually similar keyframes and near-
    duplicates; it knows nothing about language, so it cannot serve text -> image search.
    """

    model_id = FALLBACK_MODEL_ID
    dim = 512
    is_fallback = True

    def __init__(self, reason: str = ""):
        self.reason = reason
        self.forward_calls = 0
        self.batch_sizes: list[int] = []
        self.device = "cpu"

    @staticmethod
    def features(image) -> np.ndarray:
        import cv2

        rgb = np.asarray(image.convert("RGB"))
        small = cv2.resize(rgb, (256, 144) if rgb.shape[1] >= rgb.shape[0] else (144, 256),
                           interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        colour = cv2.calcHist([hsv], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()

        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.hypot(gx, gy)
        ori = (np.arctan2(gy, gx) % np.pi) / np.pi * 8  # unsigned orientation, 8 bins
        bins = np.minimum(ori.astype(np.int64), 7)
        h, w = gray.shape
        grad = np.zeros((4, 4, 8), np.float32)
        for i in range(4):
            for j in range(4):
                sl = (slice(i * h // 4, (i + 1) * h // 4), slice(j * w // 4, (j + 1) * w // 4))
                grad[i, j] = np.bincount(bins[sl].ravel(), weights=mag[sl].ravel(), minlength=8)[:8]

        thumb = cv2.resize(gray, (16, 12), interpolation=cv2.INTER_AREA).ravel()
        thumb = thumb - thumb.mean()

        blocks = []
        for block in (np.sqrt(colour), grad.ravel(), thumb):
            block = block.astype(np.float32)
            n = np.linalg.norm(block)
            blocks.append(block / n if n > 0 else block)
        vec = np.concatenate(blocks)
        return vec / np.linalg.norm(vec)

    def embed(self, images: list) -> np.ndarray:
        self.forward_calls += 1
        self.batch_sizes.append(len(images))
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.features(im) for im in images]).astype(np.float32)

    embeds_text = False

    def embed_text(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError(f"{self.model_id} has no text tower: text search over scenes needs CLIP weights")
