"""Square Attack (L-infinity), adapted to maximizing restoration distortion (Andriushchenko et al. 2020)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.base import check_float, check_int
from udcshield.attacks.budget import LINF, RADIUS, budget_to_linf
from udcshield.attacks.objectives import distortion
from udcshield.attacks.oracle import QueryAttack

# Iterations (on a 10 000-query scale) after which the square fraction p is halved (paper, section 3).
_HALVINGS: tuple[int, ...] = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, iteration: int, n_iters: int) -> float:
    """Fraction of pixels changed at ``iteration`` of ``n_iters``: p_init halved at the paper's
    milestones {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000}, rescaled from 10 000 iterations."""
    scaled = int(iteration / max(n_iters, 1) * 10000)
    return p_init / 2 ** sum(scaled > m for m in _HALVINGS)


class Square(QueryAttack):
    """Square Attack, L-infinity, black-box, untargeted, maximizing the restoration distortion.

    Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via random
    search", ECCV 2020. Start from vertical stripes x + eps * s (one random sign per channel and
    column); at each iteration pick a random square of side round(sqrt(p * H * W)) and set the
    perturbation inside it to +-eps (one random sign per channel), keeping the candidate if the
    distortion of its output against the reference increased. p follows :func:`p_schedule`. Outputs are
    observed only through a :class:`QueryOracle`; the budget is hard. Complements SimBA, the study's
    black-box attack on UDC restorers (Song et al., arXiv 2402.13629).

    Args:
        model: image-to-image module, B x 3 x H x W float32 in [0, 1] -> same shape (H, W >= 2).
        eps: L-infinity budget in [0, 1].
        max_queries: hard per-image budget (>= 1), the stripe initialization included.
        p_init: initial fraction of pixels in the square, in (0, 1]; the paper uses 0.05 for L-inf.
        objective: a kind of :func:`udcshield.attacks.objectives.distortion`.
        reference: "target" (ground truth) or "clean_output" (the clean output is charged one query).
        seed: base seed used when a call passes no ``seeds``.

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x 3 x H x W in [0, 1], max|adv - x| <= eps.
    ``last_queries`` (B,) holds the queries each image used; ``last_cost`` adds "queries", "queries_max".
    """

    norm: ClassVar[str] = "Linf"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = RADIUS

    def __init__(
        self,
        model: nn.Module,
        eps: float = budget_to_linf(8),
        max_queries: int = 1000,
        p_init: float = 0.05,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
    ) -> None:
        super().__init__("Square", model, eps, objective=objective, reference=reference, seed=seed)
        self.max_queries = check_int(max_queries, "max_queries")
        self.p_init = check_float(p_init, "p_init", strict=True)
        if self.p_init > 1:
            raise ValueError(f"p_init must lie in (0, 1], got {p_init!r}")
        self.last_queries = torch.zeros(0, dtype=torch.int64)

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        b, c_dim, h, w = x.shape
        if min(h, w) < 2:
            raise ValueError(f"inputs must be at least 2 x 2 for Square, got {h} x {w}")
        lo, hi = self._box(x)
        gens = self._generators(seeds)
        oracle, all_idx = self._open_oracle(b)
        # vertical stripes: one sign per (channel, column)
        signs = torch.stack([torch.randint(0, 2, (c_dim, 1, w), generator=g) * 2 - 1 for g in gens])
        adv = torch.minimum(torch.maximum(x + self.eps * signs.to(x.device, x.dtype), lo), hi)
        iters = 0
        if bool((oracle.remaining(all_idx) >= 1).all()):
            current = distortion(oracle.query(adv, all_idx), ref, self.objective)
            n_iters = self.max_queries - int(oracle.counts.max())
            for i in range(n_iters):
                alive = torch.nonzero(oracle.remaining(all_idx) >= 1).flatten()
                if alive.numel() == 0:
                    break
                iters += 1
                p = p_schedule(self.p_init, i, n_iters)
                side = min(max(int(round(math.sqrt(p * h * w))), 1), min(h, w) - 1)
                cand = adv[alive.to(x.device)].clone()
                for row, j in enumerate(alive.tolist()):
                    self._resample_window(cand[row], x[j], lo[j], hi[j], adv[j], side, gens[j])
                rows = alive.to(x.device)
                score = distortion(oracle.query(cand, alive), ref[rows], self.objective)
                better = score > current[rows]
                current = current.index_put((rows,), torch.where(better, score, current[rows]))
                adv = adv.index_put((rows,), torch.where(better.view(-1, 1, 1, 1), cand, adv[rows]))
        self._close_oracle(oracle, b, iters)
        return adv

    def _resample_window(self, cand: torch.Tensor, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                         best: torch.Tensor, side: int, gen: torch.Generator) -> None:
        """Set a random side x side window of ``cand`` (C x H x W, in place) to x +- eps per channel,
        redrawing (up to 10 times) when the window would not change the current best image."""
        c_dim, h, w = cand.shape
        for _ in range(10):
            r = int(torch.randint(0, h - side + 1, (), generator=gen))
            col = int(torch.randint(0, w - side + 1, (), generator=gen))
            sign = (torch.randint(0, 2, (c_dim, 1, 1), generator=gen) * 2 - 1).to(cand.device, cand.dtype)
            win = (slice(None), slice(r, r + side), slice(col, col + side))
            new = torch.minimum(torch.maximum(x[win] + self.eps * sign, lo[win]), hi[win])
            if not torch.equal(new, best[win]):
                break
        cand[win] = new
