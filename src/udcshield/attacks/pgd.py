"""Projected Gradient Descent (ascent) for image-to-image models (Madry et al. 2018)."""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.iterates import BestIterate
from udcshield.attacks.base import ImageAttack
from udcshield.attacks.budget import LINF, RADIUS, budget_to_linf


class PGD(ImageAttack):
    """PGD, L-infinity, untargeted, with optional random restarts keeping the per-image best.

    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018. Each step
    is adv <- clip_{x, eps, [0, 1]}(adv + alpha * sign(grad distortion(f(adv), ref))). The study
    attacks UDC restorers with 20 iterations at eps = 1, 2, 4, 8 / 256 (Song et al., arXiv 2402.13629).

    Args:
        model: image-to-image module, B x C x H x W in [0, 1] -> same shape.
        eps: L-infinity budget in [0, 1].
        alpha: step size; default 2.5 * eps / steps (Madry et al.'s rule of thumb).
        steps: number of gradient steps (>= 1).
        random_start: start from x + U(-eps, eps) drawn from each image's generator. Forced (with a
            UserWarning) for reference="clean_output", whose gradient is zero at the clean input.
        restarts: number of independent starts (>= 1; > 1 requires random_start); the per-image best
            iterate over all of them wins.
        keep_best: return each image's best iterate (highest distortion over every iterate, including the
            last, scored by one extra forward pass per run) rather than the last (Croce & Hein, ICML 2020,
            keep the best point; the default). False: Madry et al.'s last iterate, as adversarial training
            uses it.
        objective: "mse" or "l1".
        reference: "target" (ground truth, second call argument) or "clean_output".
        seed: base seed used when a call passes no ``seeds`` (see :class:`ImageAttack`).

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x C x H x W in [0, 1], max|adv - x| <= eps.
    ``last_cost["iterations"] == steps * restarts``; ``last_history`` (restarts, steps + 1, B) with
    ``keep_best`` (steps without).
    """

    norm: ClassVar[str] = "Linf"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = RADIUS

    def __init__(
        self,
        model: nn.Module,
        eps: float = budget_to_linf(8),
        alpha: float | None = None,
        steps: int = 20,
        random_start: bool = True,
        restarts: int = 1,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
        keep_best: bool = True,
    ) -> None:
        super().__init__("PGD", model, eps, objective=objective, reference=reference, seed=seed)
        for name, value in (("steps", steps), ("restarts", restarts)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if alpha is None:
            alpha = 2.5 * self.eps / steps
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) \
                or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        if reference == "clean_output" and not random_start:
            warnings.warn(
                "PGD with reference='clean_output' has zero gradient at the clean input; "
                "forcing random_start=True",
                UserWarning,
                stacklevel=2,
            )
            random_start = True
        if restarts > 1 and not random_start:
            raise ValueError("restarts > 1 requires random_start=True (restarts would be identical)")
        self.alpha = float(alpha)
        self.steps = steps
        self.random_start = bool(random_start)
        self.restarts = restarts
        self.keep_best = bool(keep_best)

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        lo, hi = self._box(x)
        gens = self._generators(seeds) if self.random_start else []
        overall = BestIterate()
        for _ in range(self.restarts):
            adv = self._sign_steps(self._start(x, lo, hi, gens=gens), ref, lo, hi)
            if self.restarts == 1:
                return adv
            overall.update(adv, self._histories[-1][-1] if self.keep_best else self._score(adv, ref))
        assert overall.point is not None
        return overall.point
