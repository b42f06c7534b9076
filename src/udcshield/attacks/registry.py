"""Explicit registry of image-to-image attacks (timm-style decorator registry, no folder scanning).

Built-in attacks on restorers (Song et al., arXiv 2402.13629), all untargeted by default: "fgsm" (Goodfellow
et al. 2015), "pgd" (Madry et al. 2018), "apgd" and "apgd_l2" (Auto-PGD, Croce & Hein 2020), "bim" (Kurakin et
al. 2017), "mifgsm" (Dong et al. 2018), "pgd_l2" (Madry et al. 2018, L2), "cw" (Carlini & Wagner 2017,
L2 minimum-norm, clipped to the L-inf budget) and "cw_l2" (the same, unbounded, with its realised L2 norm),
"lpips_pgd" (PGD on LPIPS, Zhang et al. 2018), and the black-box "simba" (Guo et al. 2019) and "square"
(Andriushchenko et al. 2020). Universal perturbations and transfer attacks are functions
(:mod:`udcshield.attacks.universal`, :mod:`udcshield.attacks.transfer`), not registry entries.

The registry also answers, by attack name, the threat model each attack declares (``threat_norm``,
``budget_mode``; the universal perturbation declares it as module attributes) and the radius a budget
becomes for it (:func:`budget_radius`, :func:`attack_constructor_eps`); the conversion itself is
:mod:`udcshield.attacks.budget`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

import udcshield.attacks.universal as universal
from udcshield.attacks.apgd import APGD, APGDL2
from udcshield.attacks.base import ImageAttack
from udcshield.attacks.bim import BIM
from udcshield.attacks.budget import PROJECTED, budget_label, check_threat_model, constructor_eps, radius
from udcshield.attacks.cw import CW, CWL2
from udcshield.attacks.fgsm import FGSM
from udcshield.attacks.lpips_attack import LPIPSPGD
from udcshield.attacks.mifgsm import MIFGSM
from udcshield.attacks.pgd import PGD
from udcshield.attacks.pgd_l2 import PGDL2
from udcshield.attacks.simba import SimBA
from udcshield.attacks.square import Square

_REGISTRY: dict[str, type[ImageAttack]] = {}


def register_attack(name: str) -> Callable[[type[ImageAttack]], type[ImageAttack]]:
    """Class decorator registering an :class:`ImageAttack` subclass under a lower-case ``name``."""
    key = name.lower()

    def decorator(cls: type[ImageAttack]) -> type[ImageAttack]:
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"attack {key!r} is already registered to {_REGISTRY[key].__name__}")
        _REGISTRY[key] = cls
        return cls

    return decorator


register_attack("fgsm")(FGSM)
register_attack("pgd")(PGD)
register_attack("apgd")(APGD)
register_attack("apgd_l2")(APGDL2)
register_attack("bim")(BIM)
register_attack("mifgsm")(MIFGSM)
register_attack("pgd_l2")(PGDL2)
register_attack("cw")(CW)
register_attack("cw_l2")(CWL2)
register_attack("lpips_pgd")(LPIPSPGD)
register_attack("simba")(SimBA)
register_attack("square")(Square)


def attack_class(name: str) -> type[ImageAttack]:
    """The class registered as ``name`` (case-insensitive); ValueError listing the valid names otherwise."""
    return _lookup(name)


def list_attacks() -> list[str]:
    """Names accepted by :func:`create_attack`, sorted."""
    return sorted(_REGISTRY)


def attack_kwargs(name: str) -> list[str]:
    """Keyword arguments accepted by attack ``name`` (besides ``model``)."""
    cls = _lookup(name)
    params = inspect.signature(cls.__init__).parameters
    return [p for p in params if p not in ("self", "model")]


def create_attack(name: str, model: nn.Module, **kwargs: Any) -> ImageAttack:
    """Build attack ``name`` (e.g. "pgd") on ``model``; unknown names or kwargs raise ValueError.

    Example: ``create_attack("pgd", model, eps=budget_to_linf(8), steps=20)`` (Madry et al. 2018).
    """
    cls = _lookup(name)
    valid = attack_kwargs(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for attack {name!r}; valid: {valid}")
    return cls(model, **kwargs)


def _lookup(name: str) -> type[ImageAttack]:
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        raise ValueError(f"unknown attack {name!r}; valid: {list_attacks()}")
    return _REGISTRY[name.lower()]


UNIVERSAL = "universal"
"""Name of the universal perturbation (a function, :func:`udcshield.attacks.universal_perturbation`)."""


def _declaration(name: str) -> tuple[str, Any, Any]:
    """(owner, threat_norm, budget_mode) as declared by attack ``name`` (registered class or universal)."""
    if isinstance(name, str) and name.lower() == UNIVERSAL:
        return "udcshield.attacks.universal", universal.THREAT_NORM, universal.BUDGET_MODE
    try:
        cls = attack_class(name)
    except ValueError:
        raise ValueError(f"unknown attack {name!r}; valid: {[*list_attacks(), UNIVERSAL]}") from None
    owner = cls.__name__
    return owner, getattr(cls, "threat_norm", None), getattr(cls, "budget_mode", None)


def threat_model(name: str) -> tuple[str, str]:
    """(threat_norm, budget_mode) declared by attack ``name``, e.g. ("linf", "radius") for "pgd"."""
    return check_threat_model(*_declaration(name))


def threat_norm(name: str) -> str:
    """The norm budgets of attack ``name`` are measured in (and its stored perturbations are bounded in)."""
    return threat_model(name)[0]


def budget_mode(name: str) -> str:
    """How attack ``name`` applies a budget: "radius" (constructor ``eps``) or "projected" (afterwards)."""
    return threat_model(name)[1]


def budget_radius(name: str, budget: int, image_shape: tuple[int, ...]) -> float:
    """Radius of ``budget`` in attack ``name``'s threat norm, for images of ``image_shape`` (C, H, W).

    L-infinity: budget / 256. L2: the same root-mean-square level over the C*H*W values,
    budget / 256 * sqrt(C H W) (:func:`udcshield.attacks.budget.radius`).
    """
    return radius(threat_norm(name), budget, image_shape)


def attack_constructor_eps(name: str, budget: int, image_shape: tuple[int, ...]) -> float | None:
    """The ``eps`` to construct attack ``name`` with at ``budget``; None for a "projected" attack (C&W),
    whose result is projected onto the ball of radius :func:`budget_radius` instead, and for an "unbounded"
    one (C&W-L2, budget 256 only)."""
    return constructor_eps(*threat_model(name), budget, image_shape)


def attack_label(name: str, budget: int) -> str:
    """Table label of attack ``name`` at ``budget``: ``"pgd 8/256"``; a projected minimum-norm attack is
    labelled as clipped (``"cw (L-inf-clipped) 8/256"``), an unbounded one by its budget (``"cw_l2 unbounded"``).
    Unknown names (e.g. transfer cells ``pgd@other/base``) are written as given."""
    try:
        clipped = budget_mode(name) == PROJECTED
    except ValueError:
        clipped = False
    return f"{name}{' (L-inf-clipped)' if clipped else ''} {budget_label(budget)}"
