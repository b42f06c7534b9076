"""Preflight of ``evaluate``: every metric can score images of the stored size (SSIM's Gaussian window,
:func:`udcshield.evaluation.metrics.ssim`, needs at least ``SSIM_WINDOW`` pixels a side)."""

from __future__ import annotations

from udcshield.config import Params
from udcshield.evaluation.metrics import SSIM_WINDOW
from udcshield.preflight.common import check_min_side

__all__ = ["MIN_SIDE", "check"]

#: Smallest image side each metric scores.
MIN_SIDE: dict[str, int] = {"ssim": SSIM_WINDOW}


def check(params: Params) -> None:
    """ConfigError naming ``evaluate.metrics[i]`` when ``simulate.patch_size`` is below that metric's minimum."""
    for i, metric in enumerate(params.evaluate.metrics):
        if metric in MIN_SIDE:
            check_min_side(params, MIN_SIDE[metric], f"evaluate.metrics[{i}]", repr(metric))
