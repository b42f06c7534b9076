"""Task of the ``sweep`` stage (purifier t* x sampler benchmark)."""

from __future__ import annotations

from typing import Any

import torch
from prefect import task

from tasks.common import GPU_TAGS, TASK_OPTIONS, progress_logger
from udcshield.config import Params
from udcshield.pipeline import sweep
from udcshield.pipeline.layout import Layout


@task(name="purifier-sweep", tags=GPU_TAGS, **TASK_OPTIONS)
def run_sweep(params: Params, layout: Layout, device: torch.device) -> dict[str, Any]:
    """Measure cost and defended PSNR for every t* and sampler setting; writes data/sweep/."""
    return sweep.run(params, layout, device, progress_logger("sweep"))
