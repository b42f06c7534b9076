"""Fast Gradient Sign Method for image-to-image models (Goodfellow et al. 2015)."""

from __future__ import annotations

import warnings
from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.base import ImageAttack
from udcshield.attacks.budget import LINF, RADIUS, budget_to_linf


class FGSM(ImageAttack):
    """FGSM, L-infinity, untargeted: adv = proj(x + eps * sign(grad_x distortion(f(x), ref))).

    Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015; applied to UDC
    restorers by maximizing the restoration distortion (Song et al., arXiv 2402.13629).

    Args:
        model: image-to-image module, B x C x H x W in [0, 1] -> same shape.
        eps: L-infinity budget in [0, 1] (study levels 1, 2, 4, 8 / 256).
        objective: "mse" or "l1".
        reference: "target" (ground truth, second call argument) or "clean_output".
        random_start: evaluate the gradient at x + U(-eps, eps) (per-image generator) instead of at x;
            the step is still taken from x. With reference="clean_output" the gradient at x is zero, so
            a random start is forced (with a UserWarning) when it was not requested.
        seed: base seed used when a call passes no ``seeds`` (see :class:`ImageAttack`).

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x C x H x W in [0, 1], max|adv - x| <= eps.
    """

    norm: ClassVar[str] = "Linf"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = RADIUS

    def __init__(
        self,
        model: nn.Module,
        eps: float = budget_to_linf(8),
        objective: str = "mse",
        reference: str = "target",
        random_start: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__("FGSM", model, eps, objective=objective, reference=reference, seed=seed)
        if reference == "clean_output" and not random_start:
            warnings.warn(
                "FGSM with reference='clean_output' has zero gradient at the clean input; "
                "forcing random_start=True",
                UserWarning,
                stacklevel=2,
            )
            random_start = True
        self.random_start = bool(random_start)

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        point = x
        if self.random_start:
            lo, hi = self._box(x)
            noise = self._uniform_noise(self._generators(seeds), x)
            point = torch.minimum(torch.maximum(x + noise, lo), hi)
        grad, _ = self._loss_grad(point, ref)
        self._cost["iterations"] = 1
        return x + self.eps * grad.sign()
