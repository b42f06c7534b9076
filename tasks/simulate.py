"""Tasks of the ``simulate`` stage."""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import task

from tasks.common import TASK_OPTIONS
from udcshield.config import Params
from udcshield.data.simulate import SimulatedSplit
from udcshield.pipeline import simulate as stage
from udcshield.pipeline.layout import Layout


@task(name="psf-bank", **TASK_OPTIONS)
def psf_bank(params: Params) -> np.ndarray:
    """Compute the display-diffraction PSF bank (K, 3, s, s)."""
    return stage.dataset_psf_bank(params.simulate, params.seed)


@task(name="simulate-split", **TASK_OPTIONS)
def simulate_split(params: Params, psfs: np.ndarray, split: str) -> SimulatedSplit:
    """Simulate the paired inputs/targets of one split."""
    return stage.simulate(params.simulate, psfs, split, params.seed)


@task(name="write-simulated", **TASK_OPTIONS)
def write_simulated(params: Params, layout: Layout, psfs: np.ndarray, splits: dict[str, SimulatedSplit]) -> dict[str, Any]:
    """Write psf/train/test zarr stores with provenance."""
    return stage.write_outputs(layout, params, psfs, splits)
