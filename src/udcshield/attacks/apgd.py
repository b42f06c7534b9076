"""Auto-PGD (APGD) for image-to-image models, in L-infinity and L2 (Croce & Hein, ICML 2020).

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", ICML 2020, Algorithm 1, written here for a restorer: the objective is the distortion of the
restored image (:func:`udcshield.attacks.objectives.distortion`, against the ground truth or the clean
output), maximised; no classifier, so no cross-entropy or DLR surrogate is needed. Per image:

- first step x1 = P(x0 + eta * s(grad f(x0))), eta = 2 eps; s = sign (L-inf) or g / ||g||_2 (L2);
- then z = P(x_k + eta_k s(grad f(x_k))), x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1})),
  momentum a = 0.75;
- checkpoints w_j = ceil(p_j N), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06):
  at each, the step size is halved and the iterate reset to the best point found when (1) fewer than
  rho = 0.75 of the steps since the last checkpoint increased f, or (2) neither the step size nor the
  best objective changed since the last checkpoint;
- the result is each image's best iterate over all iterations and restarts (highest distortion).

The best objective after every iteration is kept in ``last_history`` (restarts, steps + 1, B), for convergence
checks, and each run's final step size in ``last_step_size`` (restarts, B). Cost: ``steps + 1``
forward-backward passes per restart.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.base import ImageAttack, check_float, check_int
from udcshield.attacks.budget import L2, LINF, RADIUS, budget_to_linf
from udcshield.attacks.bim import _forced_random_start
from udcshield.attacks.pgd_l2 import project_l2

#: Momentum and the fraction of improving steps below which the step size is halved (the paper's values).
MOMENTUM = 0.75
RHO = 0.75


def checkpoints(steps: int) -> list[int]:
    """APGD's checkpoint iterations ceil(p_j * steps) for p_0 = 0, p_1 = 0.22, p_{j+1} = p_j +
    max(p_j - p_{j-1} - 0.03, 0.06), strictly increasing, all < ``steps`` (Croce & Hein 2020, Sec. 3.1)."""
    check_int(steps, "steps")
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    out: list[int] = []
    for value in (math.ceil(round(q * steps, 9)) for q in p):  # round: 0.41 + 0.16 is 0.5700000000000001
        if value < steps and (not out or value > out[-1]):
            out.append(value)
    return out


class _APGD(ImageAttack):
    """Shared algorithm; subclasses fix the norm (:class:`APGD`, :class:`APGDL2`)."""

    def __init__(self, name: str, model: nn.Module, eps: float, steps: int, restarts: int, random_start: bool,
                 objective: str, reference: str, seed: int) -> None:
        super().__init__(name, model, eps, objective=objective, reference=reference, seed=seed)
        self.steps = check_int(steps, "steps")
        self.restarts = check_int(restarts, "restarts")
        random_start = _forced_random_start(name, reference, random_start)  # zero gradient at the clean input
        if restarts > 1 and not random_start:
            raise ValueError("restarts > 1 requires random_start=True (restarts would be identical)")
        self.random_start = bool(random_start)
        self.last_history = torch.empty(0)
        self.last_step_size = torch.empty(0)

    # norm-specific pieces
    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _initial(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        raise NotImplementedError

    def _step(self, x: torch.Tensor, cur: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """P(cur + delta): projection onto the threat ball around ``x`` and [0, 1]."""
        raise NotImplementedError

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        gens = self._generators(seeds)
        best = x.clone()
        best_f = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
        etas = []
        for _ in range(self.restarts):
            adv, f, history, eta = self._run(x, ref, self._initial(x, gens) if self.random_start else x.clone())
            etas.append(eta)
            better = f > best_f
            best = torch.where(better.view(-1, *([1] * (x.ndim - 1))), adv, best)
            best_f = torch.where(better, f, best_f)
            self._histories.append(history)
        self.last_step_size = torch.stack(etas).cpu()
        return best

    def _run(self, x: torch.Tensor, ref: torch.Tensor, x0: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One APGD run from ``x0``: (best iterate (B, C, H, W), its objective (B,), best objective after
        each iteration (steps + 1, B), final step size (B,))."""
        view = (-1, *([1] * (x.ndim - 1)))
        eta = torch.full((x.shape[0],), 2.0 * self.eps, dtype=x.dtype, device=x.device)
        grad, f = self._loss_grad(x0, ref)
        best, best_f, best_grad = x0.clone(), f.double(), grad
        prev, cur = x0, self._step(x, x0, eta.view(view) * self._direction(grad))
        grad, f_cur = self._loss_grad(cur, ref)
        improved = (f_cur.double() > f.double()).long()
        f_prev = f_cur.double()
        better = f_cur.double() > best_f
        best = torch.where(better.view(view), cur, best)
        best_grad = torch.where(better.view(view), grad, best_grad)
        best_f = torch.maximum(best_f, f_cur.double())
        history = [f.double(), best_f.clone()]
        marks = checkpoints(self.steps)
        last_mark, eta_at_mark, best_at_mark = 0, eta.clone(), best_f.clone()
        for k in range(1, self.steps):
            z = self._step(x, cur, eta.view(view) * self._direction(grad))
            nxt = self._step(x, cur, MOMENTUM * (z - cur) + (1 - MOMENTUM) * (cur - prev))
            prev, cur = cur, nxt
            grad, f_new = self._loss_grad(cur, ref)
            f_new = f_new.double()
            improved += (f_new > f_prev).long()
            f_prev = f_new
            better = f_new > best_f
            best = torch.where(better.view(view), cur, best)
            best_grad = torch.where(better.view(view), grad, best_grad)
            best_f = torch.where(better, f_new, best_f)
            history.append(best_f.clone())
            if k in marks[1:]:
                few = improved.double() < RHO * (k - last_mark)
                stalled = (eta == eta_at_mark) & (best_f == best_at_mark)
                reduce = few | stalled
                eta = torch.where(reduce, eta / 2, eta)
                cur = torch.where(reduce.view(view), best, cur)
                prev = torch.where(reduce.view(view), best, prev)  # no momentum from an abandoned path
                grad = torch.where(reduce.view(view), best_grad, grad)
                improved.zero_()
                last_mark, eta_at_mark, best_at_mark = k, eta.clone(), best_f.clone()
        self._cost["iterations"] += self.steps
        return best, best_f, torch.stack(history), eta


class APGD(_APGD):
    """APGD in L-infinity: sign steps projected onto the eps ball and [0, 1] (Croce & Hein 2020).

    Args:
        model: image-to-image module, B x C x H x W in [0, 1] -> same shape.
        eps: L-infinity budget in [0, 1] (the study's 1, 2, 4, 8 / 256).
        steps: iterations (>= 1); the paper's default is 100.
        restarts: independent runs from random starts; the per-image best over all of them is returned.
        random_start: start from x + U(-eps, eps) per image (forced for reference="clean_output").
        objective, reference, seed: as for every :class:`~udcshield.attacks.base.ImageAttack`.

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x C x H x W in [0, 1], max|adv - x| <= eps;
    ``last_cost["forward_backward"] == (steps + 1) * restarts``.
    """

    norm: ClassVar[str] = "Linf"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = RADIUS

    def __init__(self, model: nn.Module, eps: float = budget_to_linf(8), steps: int = 100, restarts: int = 1,
                 random_start: bool = True, objective: str = "mse", reference: str = "target", seed: int = 0) -> None:
        super().__init__("APGD", model, eps, steps, restarts, random_start, objective, reference, seed)

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def _initial(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        lo, hi = self._box(x)
        return torch.minimum(torch.maximum(x + self._uniform_noise(gens, x), lo), hi)

    def _step(self, x: torch.Tensor, cur: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        lo, hi = self._box(x)
        return torch.minimum(torch.maximum(cur + delta, lo), hi)


class APGDL2(_APGD):
    """APGD in L2: normalised-gradient steps projected onto the L2 ball of radius eps and [0, 1]
    (Croce & Hein 2020); ``eps`` is an L2 radius (:mod:`udcshield.attacks.budget`).

    Args: as :class:`APGD`, with ``eps`` > 0 the L2 radius; a random start is a uniformly random
    direction of norm eps (then projected onto [0, 1]).
    """

    norm: ClassVar[str] = "L2"
    threat_norm: ClassVar[str] = L2
    budget_mode: ClassVar[str] = RADIUS

    def __init__(self, model: nn.Module, eps: float = 0.5, steps: int = 100, restarts: int = 1,
                 random_start: bool = True, objective: str = "mse", reference: str = "target", seed: int = 0) -> None:
        check_float(eps, "eps", strict=True)
        super().__init__("APGDL2", model, 1.0, steps, restarts, random_start, objective, reference, seed)
        self.eps = float(eps)  # an L2 radius: not bounded by 1 like an L-inf budget

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12)
        return grad / norm.view(-1, *([1] * (grad.ndim - 1)))

    def _initial(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        noise = torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype) for g in gens]).to(x.device)
        return project_l2(x + self.eps * self._direction(noise), x, self.eps)

    def _step(self, x: torch.Tensor, cur: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return project_l2(cur + delta, x, self.eps)

    def _project(self, adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return project_l2(adv, x, self.eps)


__all__ = ["APGD", "APGDL2", "MOMENTUM", "RHO", "checkpoints"]
