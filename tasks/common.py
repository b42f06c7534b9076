"""Shared task options and the progress logger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

# Stage outputs are versioned by DVC; Prefect-level result caching would hide reruns, so it is off.
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
GPU_TAGS = ["gpu"]


def progress_logger(label: str) -> Callable[[dict], None]:
    """A callback that logs progress rows (step, loss, set, ...) to the Prefect run log."""
    logger = get_run_logger()

    def log(row: dict) -> None:
        logger.info("%s: %s", label, ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()))

    return log


def _fmt(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)
