"""Run config every stage accepts (no ``from __future__ import annotations`` here: Dagster
reads these annotations at definition time)."""

from dagster import Config
from pydantic import Field

RETRY_RULES = ("transient", "always", "never")


class StageConfig(Config):
    force: bool = Field(
        default=False,
        description="Redo every media of the window, even those already done with this code version and model.")
    retry: str = Field(
        default="transient",
        description="Which quarantined media a run retries. 'transient' (default): those whose error type can "
                    "pass on a retry (media.errors.ErrorCode.retryable: unreadable, decode_error, "
                    "missing_keyframe, model_failed), until they were quarantined max_attempts times; "
                    "permanent errors wait until the input, the code version or the model changes. "
                    "'always': every run retries them. 'never': only a change (or force) does.")
    max_attempts: int = Field(default=3, description="Attempts of a retryable error before it stays quarantined.")
