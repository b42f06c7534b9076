"""Preflight of ``attack``: every attack is registered (or ``universal``) and params set only its own kwargs."""

from __future__ import annotations

import inspect

from udcshield.attacks.registry import attack_kwargs, list_attacks
from udcshield.attacks.universal import universal_perturbation
from udcshield.config import ConfigError, Params

__all__ = ["STAGE_SET_KWARGS", "UNIVERSAL", "attack_parameters", "check"]

#: The universal perturbation is a function (:func:`udcshield.attacks.universal.universal_perturbation`),
#: not a registry entry; ``attack.attacks`` may name it all the same.
UNIVERSAL = "universal"
#: Keyword arguments the attack stage sets itself from the budget and the ``attack`` section.
STAGE_SET_KWARGS = ("eps", "objective", "reference", "seed", "model", "generator", "loader_or_tensors")


def attack_parameters(name: str) -> list[str] | None:
    """Constructor (or, for ``universal``, function) parameters of attack ``name``; None if unknown."""
    if name == UNIVERSAL:
        return list(inspect.signature(universal_perturbation).parameters)
    if name not in list_attacks():
        return None
    return attack_kwargs(name)


def check(params: Params) -> None:
    """Every entry of ``attack.attacks``: a known attack, kwargs that params may set."""
    for i, spec in enumerate(params.attack.attacks):
        where = f"attack.attacks[{i}]"
        valid = attack_parameters(spec.name)
        if valid is None:
            raise ConfigError(f"{where}.name {spec.name!r} is not a registered attack "
                              f"(available: {', '.join([*list_attacks(), UNIVERSAL])})")
        for key in spec.kwargs:
            if key in STAGE_SET_KWARGS or key not in valid:
                allowed = sorted(set(valid) - set(STAGE_SET_KWARGS))
                raise ConfigError(f"{where}.kwargs.{key} is not a parameter of attack {spec.name!r} that params may "
                                  f"set (allowed: {', '.join(allowed)}; eps comes from budgets)")
