"""Helpers shared by the section checks. Imports only the schema.

Image sizes the stages will see are known from params alone: every stored pair is ``simulate.patch_size``
pixels square (simulated patches, and crops of the real datasets alike); :func:`check_crop` and
:func:`check_min_side` compare sizes with that side. :func:`culprit` names the kwarg a constructor
refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from udcshield.config import ConfigError, Params

__all__ = ["check_crop", "check_min_side", "culprit"]


def culprit(where: str, keys: Iterable[str], err: Exception) -> str:
    """``<where>.<key>`` for the key of ``keys`` the error message names first, else ``where``."""
    found = [(m.start(), key) for key in keys
             if (m := re.search(rf"\b{re.escape(key)}\b", str(err), flags=re.IGNORECASE))]
    return f"{where}.{min(found)[1]}" if found else where


def check_crop(params: Params, section: str) -> None:
    """ConfigError naming ``<section>.crop_size`` when it exceeds ``simulate.patch_size``.

    Training crops are cut from the stored pairs (:func:`udcshield.training.restorer.check_training_args`
    refuses a larger crop once the data is loaded).
    """
    crop, patch = getattr(params, section).crop_size, params.simulate.patch_size
    if crop > patch:
        raise ConfigError(f"{section}.crop_size ({crop}) exceeds simulate.patch_size ({patch}): training crops are "
                          f"cut from the stored {patch} x {patch} pairs, so crop_size must be in [1, {patch}]")


def check_min_side(params: Params, minimum: int, where: str, what: str) -> None:
    """ConfigError naming ``where`` when ``what`` needs images of at least ``minimum`` pixels a side and
    ``simulate.patch_size`` is smaller."""
    patch = params.simulate.patch_size
    if patch < minimum:
        raise ConfigError(f"{where} {what} needs images of at least {minimum} x {minimum} pixels, but "
                          f"simulate.patch_size is {patch}: raise simulate.patch_size to >= {minimum} or drop it")
