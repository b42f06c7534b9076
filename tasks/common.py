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


def visible_gpu_count() -> int:
    """Number of CUDA devices this process sees (``torch.cuda.device_count()``, honours
    CUDA_VISIBLE_DEVICES), at least 1 so that CPU-only machines still run ``gpu``-tagged tasks one at a time."""
    import torch

    return max(1, int(torch.cuda.device_count()))


def ensure_gpu_concurrency_limit(limit: int | None = None) -> int:
    """Create or update (idempotent) the Prefect tag concurrency limit of every tag in GPU_TAGS.

    ``limit`` defaults to ``visible_gpu_count()``; it must be an int >= 1 (ValueError otherwise). Talks to
    the API of the current Prefect settings (PREFECT_API_URL). Returns the limit set.
    """
    from prefect import get_client

    value = visible_gpu_count() if limit is None else limit
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"gpu concurrency limit must be an int >= 1, got {value!r}")
    with get_client(sync_client=True) as client:
        for tag in GPU_TAGS:
            client.create_concurrency_limit(tag=tag, concurrency_limit=value)
    return value


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
