"""What every model resource shares: one load per process, the device to run on, and the
offline rule (no download at run time).

Model resources are ConfigurableResources (tests and production swap them by config).
Dagster may build a resource object per step, so the loaded model lives in a process-wide
cache keyed by the resource's configuration: a run that embeds 500 keyframes or
transcribes 40 files loads each model once.
"""

from __future__ import annotations

import threading

from .. import config
from collections.abc import Callable
from typing import Any

_CACHE: dict[tuple, Any] = {}
# Re-entrant: a factory may itself ask for something cached (the device, another model).
_LOCK = threading.RLock()


def load_once(key: tuple, factory: Callable[[], Any]) -> Any:
    """The object ``factory()`` built for ``key`` in this process, building it on first use."""
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = factory()
        return _CACHE[key]


def loaded_models() -> list[tuple]:
    """Keys of the models this process has loaded (tests use it to show one load per process)."""
    return list(_CACHE)


def resolve_device(device: str = "auto") -> str:
    """'cuda' when asked for or when 'auto' finds a GPU, else 'cpu'.

    Without an NVIDIA driver on the machine the answer is 'cpu' without importing torch:
    build_defs asks (for model ids) at every code-location load, and importing torch costs
    seconds that the webserver, the daemon and every run would pay.
    """
    if device != "auto":
        return device
    return load_once(("resolve_device",), _detect_device)


def _detect_device() -> str:
    from ..media.device import detect_device

    return detect_device()


def offline() -> bool:
    """True unless the user allowed hub downloads: a pipeline run must not wait on DNS."""
    return config.hub_offline()


class ModelUnavailable(RuntimeError):
    """Weights are not on this machine; the message says how to install them."""
