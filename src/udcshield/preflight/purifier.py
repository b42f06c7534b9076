"""Preflight of ``purifier``: the purifier's training crops fit the stored pairs.

(That ``purifier.crop_size`` is a multiple of the UNet's resolution factor, and every t* within
``purifier.num_train_timesteps``, are rules of the pure schema, :mod:`udcshield.config`.)
"""

from __future__ import annotations

from udcshield.config import Params
from udcshield.preflight.common import check_crop

__all__ = ["check"]


def check(params: Params) -> None:
    """ConfigError naming ``purifier.crop_size`` when it exceeds ``simulate.patch_size``."""
    check_crop(params, "purifier")
