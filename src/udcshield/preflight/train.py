"""Preflight of ``train``: every restorer is registered and accepts its kwargs (nothing is built)."""

from __future__ import annotations

from udcshield.config import ConfigError, ModelSpec, Params
from udcshield.models.registry import list_restorers, restorer_arguments

__all__ = ["STAGE_SET_KWARGS", "check", "check_model"]

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
        raise ConfigError(f"{where}.kwargs: {err}") from None


def check(params: Params) -> None:
    """Every entry of ``train.models``: a registered name, kwargs its constructor accepts."""
    for i, spec in enumerate(params.train.models):
        check_model(spec, f"train.models[{i}]")
