"""Preflight of ``attack``: every attack is registered (or ``universal``), params set only its own kwargs, the
attack accepts their values, an unbounded attack (``cw_l2``) has the one budget 256, and the test images are
large enough for it.

The values are checked by building each attack exactly as the attack stage does
(:func:`udcshield.pipeline.attack.attack_kwargs`: ``objective``, ``reference``, the kwargs, and ``eps`` from
the largest budget) on a one-layer stand-in model; ``universal`` is a function, whose arguments are checked
with the same helpers it uses.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from torch import nn

from udcshield.attacks.base import check_float, check_int
from udcshield.attacks.budget import UNBOUNDED, UNBOUNDED_BUDGET, budget_to_linf
from udcshield.attacks.lpips import MIN_SIZE as LPIPS_MIN_SIZE
from udcshield.attacks.registry import attack_constructor_eps, attack_kwargs, budget_mode, create_attack, list_attacks
from udcshield.attacks.universal import universal_perturbation
from udcshield.config import AttackSpec, ConfigError, Params
from udcshield.preflight.common import check_min_side, culprit

__all__ = ["MIN_SIDE", "STAGE_SET_KWARGS", "UNIVERSAL", "attack_parameters", "check", "check_values"]

#: The universal perturbation is a function (:func:`udcshield.attacks.universal.universal_perturbation`),
#: not a registry entry; ``attack.attacks`` may name it all the same.
UNIVERSAL = "universal"
#: Keyword arguments the attack stage sets itself from the budget and the ``attack`` section.
STAGE_SET_KWARGS = ("eps", "objective", "reference", "seed", "model", "generator", "loader_or_tensors")
#: Smallest image side an attack runs on: LPIPS's AlexNet trunk (:data:`udcshield.attacks.lpips.MIN_SIZE`),
#: Square's stripes (:meth:`udcshield.attacks.square.Square._attack`).
MIN_SIDE: dict[str, int] = {"lpips_pgd": LPIPS_MIN_SIZE, "square": 2}


def attack_parameters(name: str) -> list[str] | None:
    """Constructor (or, for ``universal``, function) parameters of attack ``name``; None if unknown."""
    if name == UNIVERSAL:
        return list(inspect.signature(universal_perturbation).parameters)
    if name not in list_attacks():
        return None
    return attack_kwargs(name)


def _universal_values(spec: AttackSpec) -> None:
    """The arguments :func:`udcshield.pipeline.attack._universal` passes, checked as the function checks them."""
    defaults = {name: p.default for name, p in inspect.signature(universal_perturbation).parameters.items()}
    values: dict[str, Any] = {"steps": 100, "lr": budget_to_linf(max(spec.budgets)) / 10,
                              "batch_size": defaults["batch_size"], **spec.kwargs}
    check_int(values["steps"], "steps")
    check_float(values["lr"], "lr", strict=True)
    check_int(values["batch_size"], "batch_size")


def check_values(spec: AttackSpec, where: str, params: Params) -> None:
    """ConfigError naming ``<where>.kwargs[.<key>]`` when attack ``spec`` refuses its argument values."""
    try:
        if spec.name == UNIVERSAL:
            _universal_values(spec)
            return
        shape = (3, params.simulate.patch_size, params.simulate.patch_size)
        kwargs: dict[str, Any] = {"objective": params.attack.objective, "reference": params.attack.reference,
                                  **spec.kwargs}
        eps = attack_constructor_eps(spec.name, max(spec.budgets), shape)
        if eps is not None:
            kwargs["eps"] = eps
        with warnings.catch_warnings():  # e.g. "forcing random_start=True": the stage warns when it runs
            warnings.simplefilter("ignore")
            create_attack(spec.name, nn.Conv2d(3, 3, 1), **kwargs)
    except (TypeError, ValueError, OSError) as err:
        key = culprit(f"{where}.kwargs", spec.kwargs, err)
        raise ConfigError(f"{key} ({spec.kwargs}): attack {spec.name!r} refuses them: {err}") from None


def check(params: Params) -> None:
    """Every entry of ``attack.attacks``: a known attack, kwargs that params may set, values it accepts, and
    test images (``simulate.patch_size``) large enough for it."""
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
        if spec.name != UNIVERSAL and budget_mode(spec.name) == UNBOUNDED and tuple(spec.budgets) != (UNBOUNDED_BUDGET,):
            raise ConfigError(f"{where}.budgets {list(spec.budgets)}: {spec.name!r} is unbounded (minimum-norm, reported "
                              f"with its realised norm); set budgets: [{UNBOUNDED_BUDGET}], or use 'cw' for C&W "
                              "clipped to each L-inf budget")
        if spec.name in MIN_SIDE:
            check_min_side(params, MIN_SIDE[spec.name], f"{where}.name", repr(spec.name))
        check_values(spec, where, params)
