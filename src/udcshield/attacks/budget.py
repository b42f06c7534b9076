"""Attack budgets: integers in units of 1/256 of the [0, 1] image domain, and the radius each attack gets.

The study measures perturbation budgets in steps of one 8-bit grey level, 1, 2, 4, 8 / 256 of the
tone-mapped [0, 1] domain (Song et al., arXiv 2402.13629). A budget ``b`` is turned into an attack's
radius by the *threat model* the attack declares as class attributes (module attributes for the
function-style universal perturbation, :mod:`udcshield.attacks.universal`):

``threat_norm``
    the norm the budget is measured in: ``"linf"`` (radius b / 256; FGSM, Goodfellow et al. 2015; PGD,
    Madry et al. 2018; ...) or ``"l2"`` (the same root-mean-square level, b / 256 * sqrt(C H W), for
    PGD-L2 in the L2 threat model of Madry et al. 2018).
``budget_mode``
    how the budget reaches the attack: ``"radius"`` (the radius is the constructor's ``eps``) or
    ``"projected"`` (a minimum-norm attack such as C&W-L2, Carlini & Wagner 2017, has no radius argument;
    its result is projected onto the ``threat_norm`` ball of the budget afterwards), or ``"unbounded"`` (a
    minimum-norm attack reported as it is, with its realised norm: C&W-L2 as Carlini & Wagner 2017 and the
    study run it). An unbounded attack takes the one budget :data:`UNBOUNDED_BUDGET` = 256, whose ball
    holds the whole [0, 1] image domain in either norm, so nothing is projected.

:data:`BUDGET_UNIT` is the one place the number 256 lives. This module works on a declared (threat_norm,
budget_mode) pair and imports no attack; the lookups by attack name (:func:`udcshield.attacks.registry.threat_model`,
:func:`~udcshield.attacks.registry.budget_radius`, :func:`~udcshield.attacks.registry.attack_constructor_eps`, ...)
live in :mod:`udcshield.attacks.registry`, which knows every attack.
"""

from __future__ import annotations

import math
import numbers

BUDGET_UNIT = 256
"""Budgets count steps of 1/BUDGET_UNIT of the [0, 1] image domain (one 8-bit grey level)."""

LINF = "linf"
L2 = "l2"
THREAT_NORMS: tuple[str, ...] = (LINF, L2)

RADIUS = "radius"
PROJECTED = "projected"
UNBOUNDED = "unbounded"
BUDGET_MODES: tuple[str, ...] = (RADIUS, PROJECTED, UNBOUNDED)

UNBOUNDED_BUDGET = BUDGET_UNIT
"""The budget of an unbounded attack: radius 1 in L-inf (sqrt(C H W) in L2) contains every image in [0, 1]."""


def budget_label(budget: int) -> str:
    """How a budget is written in tables: ``"8/256"``; ``"unbounded"`` for :data:`UNBOUNDED_BUDGET`."""
    return "unbounded" if int(budget) == UNBOUNDED_BUDGET else f"{int(budget)}/{BUDGET_UNIT}"


def check_budget(budget: object) -> int:
    """Return ``budget`` as an int if it is an integer in [1, BUDGET_UNIT], else raise ValueError."""
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or not 1 <= budget <= BUDGET_UNIT:
        raise ValueError(f"budget must be an int in [1, {BUDGET_UNIT}] (units of 1/{BUDGET_UNIT} of the [0, 1] "
                         f"image domain), got {budget!r}")
    return int(budget)


def budget_to_linf(budget: int) -> float:
    """L-infinity radius of ``budget`` in the [0, 1] domain: budget / 256 (exact: 256 is a power of two)."""
    return check_budget(budget) / BUDGET_UNIT


def check_threat_model(owner: str, norm: object, mode: object) -> tuple[str, str]:
    """Return (norm, mode) if both are known values, else raise ValueError naming ``owner``."""
    if norm not in THREAT_NORMS:
        raise ValueError(f"{owner}: threat_norm must be one of {list(THREAT_NORMS)}, got {norm!r}")
    if mode not in BUDGET_MODES:
        raise ValueError(f"{owner}: budget_mode must be one of {list(BUDGET_MODES)}, got {mode!r}")
    return str(norm), str(mode)


def check_image_shape(image_shape: object) -> tuple[int, ...]:
    """Return ``image_shape`` as a tuple of ints if it is a non-empty tuple or list of positive ints (C, H, W)."""
    if not isinstance(image_shape, (tuple, list)) or not image_shape or any(
            isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in image_shape):
        raise ValueError(f"image_shape must be a non-empty tuple of positive ints (C, H, W), got {image_shape!r}")
    return tuple(int(d) for d in image_shape)


def radius(norm: str, budget: int, image_shape: tuple[int, ...]) -> float:
    """Radius of ``budget`` in the threat norm ``norm`` ("linf" or "l2"), for images of ``image_shape`` (C, H, W).

    L-infinity: budget / 256. L2: the same root-mean-square level over the C*H*W values,
    budget / 256 * sqrt(C H W) (a uniform change of budget / 256 on every value has exactly that norm).
    """
    if norm not in THREAT_NORMS:
        raise ValueError(f"threat_norm must be one of {list(THREAT_NORMS)}, got {norm!r}")
    shape = check_image_shape(image_shape)
    eps = budget_to_linf(budget)
    if norm == L2:
        return eps * math.sqrt(math.prod(shape))
    return eps


def constructor_eps(norm: str, mode: str, budget: int, image_shape: tuple[int, ...]) -> float | None:
    """The ``eps`` to construct an attack declaring (``norm``, ``mode``) with at ``budget``; None for a
    "projected" attack (C&W clipped to L-inf), whose result is projected onto the ball of radius
    :func:`radius` instead, and for an "unbounded" one (C&W-L2), which takes only :data:`UNBOUNDED_BUDGET`."""
    check_threat_model("constructor_eps", norm, mode)
    if mode == UNBOUNDED and check_budget(budget) != UNBOUNDED_BUDGET:
        raise ValueError(f"an unbounded (minimum-norm) attack takes only budget {UNBOUNDED_BUDGET} (the whole "
                         f"[0, 1] domain), got {budget}")
    if mode in (PROJECTED, UNBOUNDED):
        check_budget(budget)
        check_image_shape(image_shape)
        return None
    return radius(norm, budget, image_shape)
