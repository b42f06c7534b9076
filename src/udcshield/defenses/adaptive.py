"""Adaptive attacks through the purifier: PGD / APGD + EOT, and Square, on the defended system (purify → restore).

A purification defense is only credible against attacks that see it. Following Athalye et al. (ICML 2018:
BPDA and EOT) and the adaptive evaluation of DiffPure (Nie et al. 2022; Lee & Kim, ICCV 2023), the attack
differentiates the distortion of the *defended* output, ``distortion(restorer(purify(adv)), ref)``,
through the purifier (exact, optionally checkpointed, gradients or BPDA, chosen by the
:class:`DefendedRestorer`'s ``gradient`` mode) and averages ``eot_samples`` gradients over independent
diffusion-noise draws at every step:

* :class:`AdaptivePGD`: PGD (Madry et al. 2018; Song et al., arXiv 2402.13629 attack UDC restorers with it);
* :class:`AdaptiveAPGD`: Auto-PGD (Croce & Hein, ICML 2020), step-size schedule and best iterate on the
  EOT-mean objective;
* :class:`AdaptiveSquare`: the black-box Square attack (Andriushchenko et al., ECCV 2020) querying the
  defended system, a gradient-masking check (no gradients at all, so masked gradients cannot stop it).

The white-box two share :class:`DefendedEOT` (the per-call noise-draw scheme and the EOT loop), so they
see exactly the same noise for the same per-image seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from udcshield.attacks.apgd import APGD
from udcshield.attacks.base import check_int
from udcshield.attacks.budget import budget_to_linf
from udcshield.attacks.pgd import PGD
from udcshield.attacks.square import Square
from udcshield.defenses.defended import DefendedRestorer, DrawSequence, NoiseDraw
from udcshield.seeding import derive_seed

__all__ = ["AdaptiveAPGD", "AdaptivePGD", "AdaptiveSquare", "DefendedEOT", "noise_seeds"]


def noise_seeds(seeds: Sequence[int]) -> list[int]:
    """Purifier seeds for attack seeds: derive_seed(s_i, "attack/adaptive/purifier", 0), one per image."""
    return [derive_seed(int(s), "attack/adaptive/purifier", 0) for s in seeds]


def _check_defended(defended: Any, attack: str, gradients: bool) -> DefendedRestorer:
    """``defended`` if it is a DefendedRestorer (with gradient "full" or "bpda" when ``gradients``), else ValueError."""
    if not isinstance(defended, DefendedRestorer):
        raise ValueError(f"defended must be a DefendedRestorer, got {type(defended).__name__}")
    if gradients and defended.gradient == "none":
        raise ValueError("defended.gradient='none' blocks gradients through the purifier; "
                         f"{attack} needs gradient='full' or 'bpda'")
    return defended


def record_defended_cost(atk: Any, passes: int) -> None:
    """Add the defended system's cost to ``atk.last_cost``: ``defended_passes`` (forward passes through
    purify -> restore), ``purifier_evals`` (UNet calls of the reverse chain in them) and ``eot_samples``."""
    atk.last_cost["defended_passes"] = passes
    atk.last_cost["purifier_evals"] = passes * atk.defended.evaluations_per_forward
    atk.last_cost["eot_samples"] = atk.eot_samples


class DefendedEOT:
    """Mixin for an :class:`~udcshield.attacks.base.ImageAttack` on a :class:`DefendedRestorer`: EOT with
    explicit, per-call noise draws (Athalye et al. 2018).

    Put it before the attack class (``class AdaptivePGD(DefendedEOT, PGD)``) and call :meth:`_setup_eot`
    after the attack's ``__init__``. Then:

    * a call ``atk(inputs, targets, seeds)`` opens a :class:`DrawSequence` of :func:`noise_seeds` (seeds):
      the k-th forward pass of the defended model in the call (k = 0, 1, …) gets ``NoiseDraw(noise_seeds, k)``.
      The model keeps no noise state, so the result depends only on the per-image seeds (not on the batch
      an image sits in, nor on any earlier use of the model);
    * every gradient (:meth:`_loss_grad`) and every score (:meth:`_score`) is the mean over ``eot_samples``
      such passes: mean gradient (B, C, H, W) and mean distortion (B,), the objective the attack's own
      bookkeeping (step-size rules, best iterate, restarts) then sees;
    * ``last_cost`` adds ``defended_passes`` (forward passes of the defended model), ``purifier_evals``
      (batched UNet calls in those passes; "full" mode spends about as much again in the backward pass, plus
      one more forward with checkpointing) and ``eot_samples``; ``forward_backward`` counts every EOT pass.
    """

    defended: DefendedRestorer
    eot_samples: int
    model: torch.nn.Module
    last_cost: dict[str, float]
    _normalization_applied: bool | None

    noise_seeds = staticmethod(noise_seeds)

    def _setup_eot(self, defended: DefendedRestorer, eot_samples: int, name: str) -> None:
        """Record the defended model, the EOT sample count (int >= 1) and the attack's name."""
        self.attack = name  # type: ignore[attr-defined]  (ImageAttack's repr name; also names default seeds)
        self.defended = defended
        self.eot_samples = check_int(eot_samples, "eot_samples")
        self._draws: DrawSequence | None = None  # the noise draws of the call in progress, None between calls

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor | None = None,
                seeds: Sequence[int] | None = None) -> torch.Tensor:
        """Run the attack, each forward pass with the next explicit noise draw; see the class docstring."""
        if self.defended.gradient == "none":
            raise ValueError(f"defended.gradient was set to 'none'; {self.attack} needs 'full' or 'bpda'")
        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
            got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(f"inputs must be a B x C x H x W tensor, got {got}")
        seed_list = self._seed_list(seeds, inputs.shape[0])  # type: ignore[attr-defined]
        draws = DrawSequence(self.noise_seeds(seed_list))
        self._draws = draws
        try:
            adv = super().forward(inputs, targets, seed_list)  # type: ignore[misc]
        finally:
            self._draws = None
        # cost: the defended model counts nothing; every forward pass took one draw from ``draws``
        record_defended_cost(self, draws.used)
        return adv

    def get_logits(self, inputs: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The defended output for ``inputs`` with the call's next noise draw (normalized first when the
        model expects it, as in the base class)."""
        draws = self._draws
        if draws is None:
            raise RuntimeError(f"{self.attack} evaluates the defended model only inside a call, atk(inputs, ...)")
        if self._normalization_applied is False:
            inputs = self.normalize(inputs)  # type: ignore[attr-defined]
        return self.model(inputs, next(draws))

    def _loss_grad(self, adv: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """EOT: mean gradient (B, C, H, W) and mean distortion (B,) over ``eot_samples`` noise draws."""
        grad, dist = super()._loss_grad(adv, ref)  # type: ignore[misc]
        for _ in range(self.eot_samples - 1):
            g, d = super()._loss_grad(adv, ref)  # type: ignore[misc]
            grad, dist = grad + g, dist + d
        if self.eot_samples > 1:
            grad, dist = grad / self.eot_samples, dist / self.eot_samples
        return grad, dist

    def _score(self, adv: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Mean distortion (B,) over ``eot_samples`` draws, without gradients."""
        score = super()._score(adv, ref)  # type: ignore[misc]
        for _ in range(self.eot_samples - 1):
            score = score + super()._score(adv, ref)  # type: ignore[misc]
        return score / self.eot_samples if self.eot_samples > 1 else score


class AdaptivePGD(DefendedEOT, PGD):
    """L-infinity PGD with EOT through a :class:`DefendedRestorer` (Athalye et al. 2018; Madry et al. 2018).

    Each step: adv ← clip_{x, eps, [0, 1]}(adv + alpha · sign(ĝ)), with ĝ the mean over ``eot_samples``
    forward/backward passes of ∇ distortion(defended(adv), ref), each pass drawing fresh purification
    noise (:class:`DefendedEOT`). With ``eot_samples=1`` it is exactly :class:`udcshield.attacks.PGD` on a
    model that calls the defended system with ``NoiseDraw(noise_seeds(seeds), k)`` at its k-th forward pass.

    Args:
        defended: the defended system; its ``gradient`` mode must be "full" or "bpda" ("none" would
            not be adaptive).
        eps: L-infinity budget in [0, 1] (the study uses 1, 2, 4, 8 / 256).
        alpha: step size; default 2.5 · eps / steps.
        steps: PGD iterations (>= 1).
        eot_samples: gradient samples per step (>= 1).
        random_start, restarts, objective, reference, seed: as in :class:`udcshield.attacks.PGD`; with
            restarts > 1 each restart is scored by the mean distortion over ``eot_samples`` draws.

    Noise: draw 0 of a call is the clean-output reference if reference="clean_output", then one draw per
    EOT sample and per restart score, in order (:class:`DefendedEOT`).

    Call: ``adv = atk(inputs, targets, seeds=None)``, (B, 3, H, W) in [0, 1], max|adv − x| <= eps;
    ``last_cost`` as in :class:`DefendedEOT`.
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
        defended = _check_defended(defended, "AdaptivePGD", gradients=True)
        super().__init__(defended, eps=eps, alpha=alpha, steps=steps, random_start=random_start,
                         restarts=restarts, objective=objective, reference=reference, seed=seed)
        self._setup_eot(defended, eot_samples, "AdaptivePGD")


class AdaptiveAPGD(DefendedEOT, APGD):
    """L-infinity Auto-PGD with EOT through a :class:`DefendedRestorer` (Croce & Hein 2020; Athalye et al. 2018).

    :class:`udcshield.attacks.APGD` (step size 2 eps halved at its checkpoints, momentum 0.75, per-image best
    iterate over iterations and restarts) run on the EOT estimates of :class:`DefendedEOT`: each of its
    ``steps + 1`` gradient evaluations per restart is the mean over ``eot_samples`` forward/backward passes
    with fresh purification noise, and the objective its step-size rule and best iterate compare is the mean
    distortion over the same passes. With ``eot_samples=1`` it is exactly APGD on a model that calls the
    defended system with ``NoiseDraw(noise_seeds(seeds), k)`` at its k-th forward pass; on a deterministic
    defended system (t* = 0) it is APGD on the restorer for any ``eot_samples`` whose mean is exact (1, 2, 4, …).

    Args:
        defended: the defended system, ``gradient`` "full" or "bpda".
        eps: L-infinity budget in [0, 1].
        steps: APGD iterations (>= 1); the paper's default is 100.
        eot_samples: gradient samples per iteration (>= 1).
        restarts: independent runs from random starts, the per-image best (EOT-mean objective) kept.
        random_start, objective, reference, seed: as in :class:`udcshield.attacks.APGD`.

    Call: ``adv = atk(inputs, targets, seeds=None)``, (B, 3, H, W) in [0, 1], max|adv − x| <= eps;
    ``last_history`` (restarts, steps + 1, B) holds the best EOT-mean objective after each iteration;
    ``last_cost["forward_backward"] == (steps + 1) * restarts * eot_samples``.
    """

    def __init__(
        self,
        defended: DefendedRestorer,
        eps: float = budget_to_linf(8),
        steps: int = 100,
        eot_samples: int = 1,
        restarts: int = 1,
        random_start: bool = True,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
    ) -> None:
        defended = _check_defended(defended, "AdaptiveAPGD", gradients=True)
        super().__init__(defended, eps=eps, steps=steps, restarts=restarts, random_start=random_start,
                         objective=objective, reference=reference, seed=seed)
        self._setup_eot(defended, eot_samples, "AdaptiveAPGD")


class AdaptiveSquare(Square):
    """Square Attack (Andriushchenko et al., ECCV 2020) on a stochastic :class:`DefendedRestorer`.

    Black-box: the defended system is only queried (no gradients), so gradient masking cannot weaken it;
    an adaptive white-box attack weaker than it signals masked gradients (Athalye et al. 2018; Carlini et
    al., arXiv 1902.06705).

    Stochastic defense: every query evaluates the defended system under the same ``eot_samples`` noise draws
    ``NoiseDraw(noise_seeds(seeds), j)``, j = 0, …, eot_samples − 1 (common random numbers), and the
    objective is the mean distortion over them. The random search therefore compares candidates on one
    fixed, deterministic objective instead of accepting lucky noise; the result is then scored on fresh
    draws like every other set. Implementation: the oracle's output is the ``eot_samples`` defended outputs
    side by side, (B, 3 · eot_samples, H, W), and the reference is repeated as often, so Square's per-image
    distortion (a mean over all elements) is exactly the mean over the draws.

    Args:
        defended: the defended system (any gradient mode: no gradient is taken).
        eps: L-infinity budget in [0, 1].
        max_queries: queries per image (>= 1), the stripe initialization included; each query costs
            ``eot_samples`` defended forward passes.
        eot_samples: fixed noise draws per query (>= 1).
        p_init, objective, reference, seed: as in :class:`udcshield.attacks.square.Square`.

    Call: ``adv = atk(inputs, targets, seeds=None)``, (B, 3, H, W) in [0, 1], max|adv − x| <= eps.
    ``last_cost`` adds ``defended_passes`` (queries x ``eot_samples``), ``purifier_evals`` (batched UNet calls)
    and ``eot_samples``. Square queries every image
    of the batch at every iteration (one budget for all), which the per-image draws rely on.
    """

    noise_seeds = staticmethod(noise_seeds)

    def __init__(
        self,
        defended: DefendedRestorer,
        eps: float = budget_to_linf(8),
        max_queries: int = 100,
        eot_samples: int = 1,
        p_init: float = 0.05,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
    ) -> None:
        defended = _check_defended(defended, "AdaptiveSquare", gradients=False)
        super().__init__(defended, eps=eps, max_queries=max_queries, p_init=p_init, objective=objective,
                         reference=reference, seed=seed)
        self.attack = "AdaptiveSquare"
        self.defended = defended
        self.eot_samples = check_int(eot_samples, "eot_samples")
        self._noise: tuple[int, ...] | None = None  # the call's purifier seeds, None between calls
        self._passes = 0

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor | None = None,
                seeds: Sequence[int] | None = None) -> torch.Tensor:
        """Run Square with the call's fixed draws; see the class docstring."""
        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
            got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(f"inputs must be a B x C x H x W tensor, got {got}")
        seed_list = self._seed_list(seeds, inputs.shape[0])
        if targets is not None:
            if not isinstance(targets, torch.Tensor) or targets.ndim != 4:
                raise ValueError("targets must be a B x C x H x W tensor")
            targets = targets.repeat(1, self.eot_samples, 1, 1)
        self._noise, self._passes = tuple(self.noise_seeds(seed_list)), 0
        try:
            adv = super().forward(inputs, targets, seed_list)
        finally:
            self._noise = None
        record_defended_cost(self, self._passes)
        return adv

    def get_logits(self, inputs: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The defended outputs under the call's ``eot_samples`` fixed draws, side by side: (B, 3k, H, W)."""
        noise = self._noise
        if noise is None:
            raise RuntimeError("AdaptiveSquare evaluates the defended model only inside a call, atk(inputs, ...)")
        if inputs.shape[0] != len(noise):
            raise RuntimeError(f"AdaptiveSquare queried {inputs.shape[0]} of {len(noise)} images; every query must "
                               "cover the whole batch (one query budget for all images)")
        if self._normalization_applied is False:
            inputs = self.normalize(inputs)
        self._passes += self.eot_samples
        return torch.cat([self.model(inputs, NoiseDraw(noise, j)) for j in range(self.eot_samples)], dim=1)

