"""Which device a model runs on here: one detection for every model (Whisper, CLIP, TransNetV2)."""

from __future__ import annotations

import functools
import os

from .. import config


@functools.lru_cache(maxsize=None)
def detect_device() -> str:
    """'cuda' when torch can use a GPU here, else 'cpu'.

    Without an NVIDIA driver on the machine the answer is 'cpu' without importing torch:
    the code location asks at every load (for model ids), and importing torch costs seconds
    that the webserver, the daemon and every run would pay. ``CUDA_VISIBLE_DEVICES`` set
    to ``""`` or ``-1`` hides the GPUs.
    """
    if config.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return "cpu"
    if not os.path.exists("/proc/driver/nvidia/version") and not os.path.exists("/dev/nvidia0"):
        return "cpu"
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"
