"""Shared task options and the progress logger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from udcshield.progress import format_progress, is_progress_row

# Stage outputs are versioned by DVC; Prefect-level result caching would hide reruns, so it is off.
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
GPU_TAGS = ["gpu"]


def progress_line(label: str, row: dict) -> str:
    """One log line for a progress row: meter rows (:class:`udcshield.progress.ProgressMeter`) as
    ``label: 12/40 img (30%), 3.1 img/s, ETA 9s, set=...``; other rows (step, loss, ...) as ``key=value`` pairs."""
    if is_progress_row(row):
        return f"{label}: {format_progress(row)}"
    return f"{label}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items())


def progress_logger(label: str) -> Callable[[dict], None]:
    """A callback that logs progress rows to the Prefect run log (shown in the terminal and the Prefect UI)."""
    logger = get_run_logger()

    def log(row: dict) -> None:
        logger.info("%s", progress_line(label, row))

    return log


def _fmt(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)
