"""Momentum Iterative FGSM for image-to-image models (Dong et al. 2018)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.iterates import BestIterate
from udcshield.attacks.base import ImageAttack, check_float, check_int
from udcshield.attacks.bim import _forced_random_start
from udcshield.attacks.budget import LINF, RADIUS, budget_to_linf


class MIFGSM(ImageAttack):
    """MI-FGSM, L-infinity, untargeted: sign steps along an accumulated, L1-normalized gradient.

    Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018. With
    g_{t+1} = decay * g_t + grad_t / ||grad_t||_1 (per image), each step is
    adv <- clip_{x, eps, [0, 1]}(adv + alpha * sign(g_{t+1})). With ``decay=0`` it is BIM
    (Kurakin et al. 2017). The momentum makes the perturbation transfer better between restorers,
    which matters for the black-box / transfer setting of Song et al. (arXiv 2402.13629).

    Args:
        model: image-to-image module, B x 3 x H x W float32 in [0, 1] -> same shape.
        eps: L-infinity budget in [0, 1].
        alpha: step size; default eps / steps (the paper's choice).
        steps: number of iterations (>= 1); the paper uses 10.
        decay: momentum factor mu >= 0; the paper uses 1.0.
        random_start: start from x + U(-eps, eps) (per-image generator); forced with a UserWarning for
            reference="clean_output".
        objective: a kind of :func:`udcshield.attacks.objectives.distortion`.
        reference: "target" (ground truth) or "clean_output".
        seed: base seed used when a call passes no ``seeds``.
        keep_best: return each image's best iterate (highest objective over every iterate, the last scored
            by one extra forward pass) rather than the last (the default; Croce & Hein, ICML 2020).

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x 3 x H x W in [0, 1], max|adv - x| <= eps.
    """

    norm: ClassVar[str] = "Linf"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = RADIUS

    def __init__(
        self,
        model: nn.Module,
        eps: float = budget_to_linf(8),
        alpha: float | None = None,
        steps: int = 10,
        decay: float = 1.0,
        random_start: bool = False,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
        keep_best: bool = True,
    ) -> None:
        super().__init__("MIFGSM", model, eps, objective=objective, reference=reference, seed=seed)
        self.steps = check_int(steps, "steps")
        self.alpha = self.eps / self.steps if alpha is None else check_float(alpha, "alpha")
        self.decay = check_float(decay, "decay")
        self.random_start = _forced_random_start("MIFGSM", reference, random_start)
        self.keep_best = bool(keep_best)

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        lo, hi = self._box(x)
        adv = self._start(x, lo, hi, seeds)
        momentum = torch.zeros_like(x)
        view = (-1,) + (1,) * (x.ndim - 1)
        best = BestIterate()
        for _ in range(self.steps):
            grad, value = self._loss_grad(adv, ref)
            best.update(adv, value)
            l1 = grad.abs().flatten(1).sum(dim=1).clamp(min=torch.finfo(grad.dtype).tiny)
            momentum = self.decay * momentum + grad / l1.view(view)
            adv = torch.minimum(torch.maximum(adv + self.alpha * momentum.sign(), lo), hi)
        self._cost["iterations"] = self.steps
        return self._finish(best, adv, ref)
