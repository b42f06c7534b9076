"""Preflight of ``train``: every restorer is registered and its constructor accepts its kwargs (the restorer
is built on the meta device: no memory, no initialisation), and the training crops fit the stored pairs."""

from __future__ import annotations

import torch
from torch import nn

from udcshield.config import ConfigError, ModelSpec, Params
from udcshield.models.registry import create_restorer, list_restorers, restorer_arguments
from udcshield.preflight.common import check_crop, culprit

__all__ = ["STAGE_SET_KWARGS", "build_meta", "check", "check_model"]

#: Keyword arguments of :func:`udcshield.models.registry.create_restorer` that the stages set.
STAGE_SET_KWARGS = ("generator",)


def check_model(spec: ModelSpec, where: str) -> None:
    """ConfigError naming ``<where>.name`` / ``<where>.kwargs`` unless the registry accepts the spec."""
    if spec.name not in list_restorers():
        raise ConfigError(f"{where}.name {spec.name!r} is not a registered restorer "
                          f"(available: {', '.join(list_restorers())})")
    for key in STAGE_SET_KWARGS:
        if key in spec.kwargs:
            raise ConfigError(f"{where}.kwargs.{key} is set by the stages (seeded), not by params")
    try:
        restorer_arguments(spec.name, **spec.kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{culprit(f'{where}.kwargs', spec.kwargs, err)}: {err}") from None


def build_meta(spec: ModelSpec, where: str) -> nn.Module:
    """The restorer of ``spec`` built on the meta device, after :func:`check_model`.

    A value its constructor refuses (e.g. ``depth: -1``, heads that do not divide the channels) is a
    ConfigError naming ``<where>.kwargs.<key>`` (or ``<where>.kwargs`` when the message names no key),
    raised here instead of when the train stage builds it.
    """
    check_model(spec, where)
    try:
        with torch.device("meta"):
            return create_restorer(spec.name, **spec.kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{culprit(f'{where}.kwargs', spec.kwargs, err)} ({spec.kwargs}): restorer {spec.name!r} "
                          f"refuses them: {err}") from None


def check(params: Params) -> None:
    """Every entry of ``train.models`` builds (registered name, accepted kwargs); ``train.crop_size`` fits."""
    for i, spec in enumerate(params.train.models):
        build_meta(spec, f"train.models[{i}]")
    check_crop(params, "train")
