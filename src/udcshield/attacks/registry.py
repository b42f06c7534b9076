"""Explicit registry of image-to-image attacks (timm-style decorator registry, no folder scanning).

Built-in attacks on restorers (Song et al., arXiv 2402.13629), all untargeted by default:
"fgsm" (Goodfellow et al. 2015), "pgd" (Madry et al. 2018), "bim" (Kurakin et al. 2017), "mifgsm"
(Dong et al. 2018), "pgd_l2" (Madry et al. 2018, L2), "cw" (Carlini & Wagner 2017, L2), "lpips_pgd"
(PGD on LPIPS, Zhang et al. 2018), and the black-box "simba" (Guo et al. 2019) and "square"
(Andriushchenko et al. 2020). Universal perturbations and transfer attacks are functions
(:mod:`udcshield.attacks.universal`, :mod:`udcshield.attacks.transfer`), not registry entries.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from udcshield.attacks.base import ImageAttack
from udcshield.attacks.bim import BIM
from udcshield.attacks.cw import CW
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
register_attack("bim")(BIM)
register_attack("mifgsm")(MIFGSM)
register_attack("pgd_l2")(PGDL2)
register_attack("cw")(CW)
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
