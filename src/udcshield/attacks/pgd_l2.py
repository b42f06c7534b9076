"""Projected Gradient Descent (ascent) in the L2 norm for image-to-image models (Madry et al. 2018)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.iterates import BestIterate
from udcshield.attacks.base import ImageAttack, check_float, check_int, check_projection_pair
from udcshield.attacks.bim import _forced_random_start
from udcshield.attacks.budget import L2, RADIUS


def _l2(t: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norm (B,) in float64."""
    return t.double().flatten(1).norm(dim=1)


def project_l2(adv: torch.Tensor, x: torch.Tensor, eps: float, iterations: int = 60) -> torch.Tensor:
    """Euclidean projection of ``adv`` onto {a : ||a - x||_2 <= eps, 0 <= a <= 1}, per image.

    The projection of v = adv - x onto the ball intersected with the box [-x, 1 - x] is
    clamp(t * v, -x, 1 - x) for the largest t in [0, 1] whose norm is <= eps (KKT conditions of the
    separable problem); t is found by bisection in float64. A final shrink toward x guarantees
    ``||adv - x||_2 <= eps`` for the float result (the ball and box both contain x, so shrinking keeps
    feasibility). Projection step of PGD in the L2 threat model (Madry et al., ICLR 2018).

    Args:
        adv: candidate images, B x C x H x W (finite values).
        x: clean images, same shape, float32/float64 in [0, 1].
        eps: L2 radius per image (>= 0), measured in the [0, 1] domain over all C*H*W values.
        iterations: bisection steps (60 resolves t to float64 precision).

    Returns:
        Detached tensor of x's dtype and shape, in [0, 1], with per-image L2 distance <= eps.
    """
    eps = check_float(eps, "eps")
    check_projection_pair(adv, x)
    x = x.detach()
    x64 = x.double()
    v = adv.detach().double() - x64
    lo, hi = -x64, 1.0 - x64
    view = (-1,) + (1,) * (x.ndim - 1)

    def clipped(t: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(t.view(view) * v, lo), hi)

    t_lo = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    t_hi = torch.ones_like(t_lo)
    inside = _l2(clipped(t_hi)) <= eps
    if not bool(inside.all()):
        for _ in range(iterations):
            mid = 0.5 * (t_lo + t_hi)
            ok = _l2(clipped(mid)) <= eps
            t_lo = torch.where(ok, mid, t_lo)
            t_hi = torch.where(ok, t_hi, mid)
    t = torch.where(inside, torch.ones_like(t_lo), t_lo)
    delta = clipped(t)
    out = (x64 + delta).to(x.dtype).clamp(0.0, 1.0)
    for k in range(20):  # rounding to x's dtype may add a hair of norm; shrink toward x until inside
        norm = _l2(out - x)
        over = norm > eps
        if not bool(over.any()):
            return out
        margin = 2.0 ** (k - 24)  # grows from about one float32 ulp to 1/16
        scale = torch.where(over, eps / norm * (1 - margin), torch.ones_like(norm))
        out = (x64 + (out.double() - x64) * scale.view(view)).to(x.dtype).clamp(0.0, 1.0)
    return torch.where((_l2(out - x) > eps).view(view), x, out)  # safety net; not reached in practice


class PGDL2(ImageAttack):
    """PGD in the L2 norm, untargeted: normalized-gradient steps projected onto the L2 ball and [0, 1].

    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018 (L2
    threat model). Each step is adv <- P(adv + alpha * g / ||g||_2) with g the gradient of the
    restoration distortion (Song et al., arXiv 2402.13629) and P :func:`project_l2`.

    Args:
        model: image-to-image module, B x 3 x H x W float32 in [0, 1] -> same shape.
        eps: L2 radius per image in the [0, 1] domain, over all 3*H*W values (may exceed 1; e.g. a
            uniform 1/256 change of a 3 x 256 x 256 image has norm ~1.73).
        alpha: step length in L2; default 2.5 * eps / steps.
        steps: number of gradient steps (>= 1).
        random_start: start from x + r * z / ||z||, z ~ N(0, I), r ~ U(0, eps) per image (per-image
            generator); forced with a UserWarning for reference="clean_output".
        objective: a kind of :func:`udcshield.attacks.objectives.distortion`.
        reference: "target" (ground truth) or "clean_output".
        seed: base seed used when a call passes no ``seeds``.
        keep_best: return each image's best iterate (highest objective over every iterate, the last scored
            by one extra forward pass) rather than the last (the default; Croce & Hein, ICML 2020).

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x 3 x H x W in [0, 1],
    ``||adv - x||_2 <= eps`` per image. ``last_cost["iterations"] == steps``.
    """

    norm: ClassVar[str] = "L2"
    threat_norm: ClassVar[str] = L2
    budget_mode: ClassVar[str] = RADIUS

    def __init__(
        self,
        model: nn.Module,
        eps: float = 1.0,
        alpha: float | None = None,
        steps: int = 20,
        random_start: bool = True,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
        keep_best: bool = True,
    ) -> None:
        super().__init__("PGDL2", model, 1.0, objective=objective, reference=reference, seed=seed)
        self.eps = check_float(eps, "eps")
        self.steps = check_int(steps, "steps")
        self.alpha = 2.5 * self.eps / self.steps if alpha is None else check_float(alpha, "alpha")
        self.random_start = _forced_random_start("PGDL2", reference, random_start)
        self.keep_best = bool(keep_best)

    def _project(self, adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return project_l2(adv, x, self.eps)

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        view = (-1,) + (1,) * (x.ndim - 1)
        adv = x.clone()
        if self.random_start:
            start = []
            for g in self._generators(seeds):
                z = torch.randn(x.shape[1:], generator=g, dtype=torch.float64)
                r = float(torch.rand((), generator=g, dtype=torch.float64)) * self.eps
                start.append(z * (r / float(z.norm().clamp(min=1e-12))))
            adv = project_l2(x + torch.stack(start).to(device=x.device, dtype=x.dtype), x, self.eps)
        best = BestIterate()
        for _ in range(self.steps):
            grad, value = self._loss_grad(adv, ref)
            best.update(adv, value)
            norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12)
            adv = project_l2(adv + self.alpha * grad / norm.view(view), x, self.eps)
        self._cost["iterations"] = self.steps
        return self._finish(best, adv, ref)
