"""Preflight of ``train``: every restorer resolves (a registered name, an entry point of the group
``udcshield.restorers``, or a ``module:callable`` factory that imports) and its constructor accepts its kwargs
(the restorer is built on the meta device: no memory, no initialisation), given weights exist and fit the
model key by key and shape by shape, and the training crops fit the stored pairs."""

from __future__ import annotations

import torch
from torch import nn

from udcshield.config import ConfigError, ModelSpec, Params
from udcshield.models.checkpoint import read_weights_file, state_dict_mismatch
from udcshield.models.registry import (
    create_restorer,
    entry_point_restorers,
    is_factory_reference,
    list_restorers,
    resolve_restorer,
    restorer_arguments,
)
from udcshield.preflight.common import check_crop, culprit

__all__ = ["STAGE_SET_KWARGS", "build_meta", "check", "check_model", "check_weights"]

#: Keyword arguments of :func:`udcshield.models.registry.create_restorer` that the stages set.
STAGE_SET_KWARGS = ("generator",)


def check_model(spec: ModelSpec, where: str) -> None:
    """ConfigError naming ``<where>.name`` / ``<where>.kwargs`` unless the restorer resolves and accepts the spec."""
    try:
        resolve_restorer(spec.name)
    except ValueError as err:
        if is_factory_reference(spec.name) or spec.name in entry_point_restorers():
            raise ConfigError(f"{where}.name: {err}") from None
        raise ConfigError(f"{where}.name {spec.name!r} is not a registered restorer "
                          f"(available: {', '.join(list_restorers())}; or an entry point of the group "
                          "'udcshield.restorers', or a factory reference 'module:callable')") from None
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


def check_weights(spec: ModelSpec, model: nn.Module, where: str) -> None:
    """ConfigError naming ``<where>.weights`` and the file unless ``spec.weights`` (if set) is a readable
    weights file whose tensors match ``model``'s state dict (meta tensors: shapes only) key for key."""
    if spec.weights is None:
        return
    try:
        state_dict = read_weights_file(spec.weights)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"{where}.weights ({spec.weights}): {err}") from None
    problem = state_dict_mismatch(model.state_dict(), state_dict)
    if problem is not None:
        raise ConfigError(f"{where}.weights ({spec.weights}): weights in {spec.weights} do not match restorer "
                          f"{spec.name!r} with kwargs {spec.kwargs}: {problem}")


def check(params: Params) -> None:
    """Every entry of ``train.models`` builds (resolvable name, accepted kwargs) and fits its given weights;
    ``train.crop_size`` fits. (Distinct labels are checked when the params load.)"""
    for i, spec in enumerate(params.train.models):
        where = f"train.models[{i}]"
        check_weights(spec, build_meta(spec, where), where)
    check_crop(params, "train")
