"""Each image's best iterate of an iterative attack (Croce & Hein, ICML 2020, keep the best point found)."""

from __future__ import annotations

import torch

__all__ = ["BestIterate"]


class BestIterate:
    """Each image's best iterate of an ascent: the point with the largest objective seen so far.

    Iterative attacks score every iterate they take a gradient at (the objective comes with the gradient),
    plus the last one, and return the best per image rather than the last iterate, as APGD does (Croce &
    Hein, ICML 2020); a later iterate wins only when strictly better. ``history()`` is the best objective
    after each scored iterate, (n_scored, B) float64, for convergence checks.
    """

    def __init__(self) -> None:
        self.point: torch.Tensor | None = None
        self.value: torch.Tensor | None = None
        self._history: list[torch.Tensor] = []

    def update(self, adv: torch.Tensor, value: torch.Tensor) -> None:
        """Offer iterate ``adv`` (B x C x H x W) with objective ``value`` (B,)."""
        value = value.detach().double()
        if self.point is None or self.value is None:
            self.point, self.value = adv.detach().clone(), value.clone()
        else:
            better = value > self.value
            self.point = torch.where(better.view(-1, *([1] * (adv.ndim - 1))), adv.detach(), self.point)
            self.value = torch.where(better, value, self.value)
        self._history.append(self.value.clone())

    def history(self) -> torch.Tensor:
        """Best objective after each scored iterate, (n_scored, B) float64 (empty (0,) before any update)."""
        return torch.stack(self._history) if self._history else torch.empty(0, dtype=torch.float64)
