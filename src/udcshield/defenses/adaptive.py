"""Adaptive PGD through the purifier: PGD + EOT on the defended system (purify → restore).

A purification defense is only credible against attacks that see it. Following Athalye et
al. (ICML 2018: BPDA and EOT) and the adaptive evaluation of DiffPure (Nie et al. 2022), the attack
differentiates the distortion of the *defended* output, ``distortion(restorer(purify(adv)), ref)``,
through the purifier (exact, optionally checkpointed, gradients or BPDA, chosen by the
:class:`DefendedRestorer`'s ``gradient`` mode) and averages ``eot_samples`` gradients over independent
diffusion-noise draws at every step (Madry et al. 2018 PGD; Song et al., arXiv 2402.13629 attack UDC
restorers with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from udcshield.attacks.base import check_int
from udcshield.attacks.budget import budget_to_linf
from udcshield.attacks.pgd import PGD
from udcshield.defenses.defended import DefendedRestorer, DrawSequence
from udcshield.seeding import derive_seed

__all__ = ["AdaptivePGD"]


class AdaptivePGD(PGD):
    """L-infinity PGD with EOT through a :class:`DefendedRestorer` (Athalye et al. 2018; Madry et al. 2018).

    Each step: adv ← clip_{x, eps, [0, 1]}(adv + alpha · sign(ĝ)), with ĝ the mean over ``eot_samples``
    forward/backward passes of ∇ distortion(defended(adv), ref), each pass drawing fresh purification
    noise. With ``eot_samples=1`` it is exactly :class:`udcshield.attacks.PGD` on a model that calls the
    defended system with ``NoiseDraw(noise_seeds(seeds), k)`` at its k-th forward pass.

    Args:
        defended: the defended system; its ``gradient`` mode must be "full" or "bpda" ("none" would
            not be adaptive).
        eps: L-infinity budget in [0, 1] (the study uses 1, 2, 4, 8 / 256).
        alpha: step size; default 2.5 · eps / steps.
        steps: PGD iterations (>= 1).
        eot_samples: gradient samples per step (>= 1).
        random_start, restarts, objective, reference, seed: as in :class:`udcshield.attacks.PGD`; with
            restarts > 1 each restart is scored by the mean distortion over ``eot_samples`` draws.

    Noise: the call's per-image seeds s_i fix both the random start (as in PGD) and the purifier
    noise: the k-th forward pass of the call (k = 0, 1, …; draw 0 is the clean-output reference if
    reference="clean_output", then one draw per EOT sample and per restart score) is given
    ``NoiseDraw(noise_seeds(seeds), k)`` explicitly, from a :class:`DrawSequence` that lives for the
    call only. The defended model keeps no noise state, so the result is reproducible per image and
    independent of any earlier use of the model.

    Call: ``adv = atk(inputs, targets, seeds=None)``, (B, 3, H, W) in [0, 1], max|adv − x| <= eps.
    ``last_cost`` adds ``purifier_evals`` (batched UNet calls of the reverse chain in forward passes;
    "full" mode spends about as much again in the backward pass, plus one more forward with
    checkpointing) and ``eot_samples``; ``forward_backward`` counts every EOT pass.
    """

    def __init__(
        self,
        defended: DefendedRestorer,
        eps: float = budget_to_linf(8),
        alpha: float | None = None,
        steps: int = 20,
        eot_samples: int = 1,
        random_start: bool = True,
        restarts: int = 1,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
    ) -> None:
        if not isinstance(defended, DefendedRestorer):
            raise ValueError(f"defended must be a DefendedRestorer, got {type(defended).__name__}")
        if defended.gradient == "none":
            raise ValueError("defended.gradient='none' blocks gradients through the purifier; "
                             "AdaptivePGD needs gradient='full' or 'bpda'")
        super().__init__(defended, eps=eps, alpha=alpha, steps=steps, random_start=random_start,
                         restarts=restarts, objective=objective, reference=reference, seed=seed)
        self.attack = "AdaptivePGD"
        self.defended = defended
        self.eot_samples = check_int(eot_samples, "eot_samples")
        self._draws: DrawSequence | None = None  # the noise draws of the call in progress, None between calls

    @staticmethod
    def noise_seeds(seeds: Sequence[int]) -> list[int]:
        """Purifier seeds for attack seeds: derive_seed(s_i, "attack/adaptive/purifier", 0)."""
        return [derive_seed(int(s), "attack/adaptive/purifier", 0) for s in seeds]

    def forward(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor | None = None,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Run PGD with EOT, each forward pass with the next explicit noise draw; see the class docstring."""
        if self.defended.gradient == "none":
            raise ValueError("defended.gradient was set to 'none'; AdaptivePGD needs 'full' or 'bpda'")
        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
            got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(f"inputs must be a B x C x H x W tensor, got {got}")
        seed_list = self._seed_list(seeds, inputs.shape[0])
        draws = DrawSequence(self.noise_seeds(seed_list))
        self._draws = draws
        try:
            adv = super().forward(inputs, targets, seed_list)
        finally:
            self._draws = None
        # cost: the defended model counts nothing; every forward pass took one draw from ``draws``
        self.last_cost["purifier_evals"] = draws.used * self.defended.evaluations_per_forward
        self.last_cost["eot_samples"] = self.eot_samples
        return adv

    def get_logits(self, inputs: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The defended output for ``inputs`` with the call's next noise draw (normalized first when the
        model expects it, as in the base class)."""
        draws = self._draws
        if draws is None:
            raise RuntimeError("AdaptivePGD evaluates the defended model only inside a call, atk(inputs, ...)")
        if self._normalization_applied is False:
            inputs = self.normalize(inputs)
        return self.model(inputs, next(draws))

    def _loss_grad(self, adv: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """EOT: mean gradient (B, C, H, W) and mean distortion (B,) over ``eot_samples`` noise draws."""
        grad, dist = super()._loss_grad(adv, ref)
        for _ in range(self.eot_samples - 1):
            g, d = super()._loss_grad(adv, ref)
            grad, dist = grad + g, dist + d
        if self.eot_samples > 1:
            grad, dist = grad / self.eot_samples, dist / self.eot_samples
        return grad, dist

    def _score(self, adv: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Mean distortion (B,) over ``eot_samples`` draws, without gradients."""
        score = super()._score(adv, ref)
        for _ in range(self.eot_samples - 1):
            score = score + super()._score(adv, ref)
        return score / self.eot_samples if self.eot_samples > 1 else score
