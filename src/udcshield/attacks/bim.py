"""Basic Iterative Method / I-FGSM for image-to-image models (Kurakin et al. 2017)."""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.base import ImageAttack, check_float, check_int
from udcshield.attacks.budget import BUDGET_UNIT, LINF, RADIUS, budget_to_linf


def kurakin_steps(eps: float) -> int:
    """Kurakin et al.'s iteration count min(e + 4, 1.25 e) with e = 256 eps the budget in grey levels,
    rounded up and at least 1 (eps in [0, 1])."""
    levels = BUDGET_UNIT * eps
    return max(1, int(math.ceil(min(levels + 4, 1.25 * levels))))


class BIM(ImageAttack):
    """BIM (I-FGSM), L-infinity, untargeted: repeated small FGSM steps clipped to the eps-ball.

    Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world", ICLR workshop 2017.
    Each step is adv <- clip_{x, eps, [0, 1]}(adv + alpha * sign(grad distortion(f(adv), ref))),
    starting from the clean input (no random start), here maximizing the distortion of a UDC
    restorer's output (Song et al., arXiv 2402.13629).

    Args:
        model: image-to-image module, B x 3 x H x W float32 in [0, 1] -> same shape.
        eps: L-infinity budget in [0, 1] (study levels 1, 2, 4, 8 / 256).
        alpha: step size. Default: the paper's 1/256 when ``steps`` is None, else eps / steps (so that
            ``steps=1`` is exactly FGSM).
        steps: number of iterations (>= 1). Default: the paper's min(256 eps + 4, 1.25 * 256 eps).
        random_start: start from x + U(-eps, eps) (per-image generator). Off by default (the paper's
            method); forced with a UserWarning for reference="clean_output", whose gradient vanishes
            at the clean input.
        objective: a kind of :func:`udcshield.attacks.objectives.distortion` ("mse", "l1", ...).
        reference: "target" (ground truth, second call argument) or "clean_output".
        seed: base seed used when a call passes no ``seeds`` (see :class:`ImageAttack`).
        keep_best: return each image's best iterate (highest objective over every iterate, the last scored
            by one extra forward pass) rather than the last (the default; Croce & Hein, ICML 2020).

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x 3 x H x W in [0, 1], max|adv - x| <= eps.
    ``last_cost["iterations"] == steps``.
    """

    norm: ClassVar[str] = "Linf"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = RADIUS

    def __init__(
        self,
        model: nn.Module,
        eps: float = budget_to_linf(8),
        alpha: float | None = None,
        steps: int | None = None,
        random_start: bool = False,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
        keep_best: bool = True,
    ) -> None:
        super().__init__("BIM", model, eps, objective=objective, reference=reference, seed=seed)
        if steps is None:
            steps = kurakin_steps(self.eps)
            default_alpha = budget_to_linf(1)
        else:
            steps = check_int(steps, "steps")
            default_alpha = self.eps / steps
        self.steps = steps
        self.alpha = default_alpha if alpha is None else check_float(alpha, "alpha")
        self.random_start = _forced_random_start("BIM", reference, random_start)
        self.keep_best = bool(keep_best)

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        lo, hi = self._box(x)
        return self._sign_steps(self._start(x, lo, hi, seeds), ref, lo, hi)


def _forced_random_start(name: str, reference: str, random_start: bool) -> bool:
    """Force a random start (with a UserWarning) when the gradient vanishes at the clean input."""
    if reference == "clean_output" and not random_start:
        warnings.warn(
            f"{name} with reference='clean_output' has zero gradient at the clean input; "
            "forcing random_start=True",
            UserWarning,
            stacklevel=3,
        )
        return True
    return bool(random_start)
