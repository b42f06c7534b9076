"""Expectation over Transformation (EOT; Athalye, Engstrom, Ilyas, Kwok, ICML 2018 — and Athalye, Carlini,
Wagner, ICML 2018 §4.3 for randomized defenses).

A stochastic defense f(x; ω) (diffusion purification draws ω = its noise; Nie et al. 2022) is attacked
through the expected loss: ∇_x E_ω[L(f(x; ω), ref)] = E_ω[∇_x L(f(x; ω), ref)], estimated by averaging
the gradient over ``samples`` independent forward passes. For a
:class:`udcshield.defenses.defended.DefendedRestorer` the noise of each pass is explicit: sample k is
given ``NoiseDraw(seeds, first_draw + k)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from udcshield.attacks.base import check_int
from udcshield.attacks.objectives import check_objective, distortion
from udcshield.defenses.defended import DefendedRestorer, NoiseDraw

__all__ = ["eot_loss_grad"]


def eot_loss_grad(
    model: nn.Module,
    x: torch.Tensor,
    ref: torch.Tensor,
    *,
    samples: int,
    objective: str = "mse",
    return_samples: bool = False,
    seeds: Sequence[int] | None = None,
    first_draw: int = 0,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EOT estimate of the distortion gradient w.r.t. the input (Athalye et al. 2018).

    Runs ``samples`` forward/backward passes of ``model`` and averages ∇_x Σ_b distortion(model(x)_b,
    ref_b), per image. Model parameters get no ``.grad``.

    Args:
        model: stochastic image-to-image module, (B, 3, H, W) in [0, 1] → (B, 3, H, W). With ``seeds``
            it is called as ``model(x, NoiseDraw(seeds, first_draw + k))`` for sample k (a
            :class:`~udcshield.defenses.defended.DefendedRestorer`); without, as ``model(x)``, and it
            must draw its own randomness (a DefendedRestorer therefore needs ``seeds``).
        x: (B, 3, H, W) float32 inputs in [0, 1].
        ref: (B, 3, H, W) reference (ground truth or clean output) for the objective.
        samples: number of draws (>= 1).
        objective: a :data:`udcshield.attacks.objectives.OBJECTIVES` name ("mse", "l1", ...).
        return_samples: also return the per-draw gradients, (samples, B, 3, H, W).
        seeds: one purification seed per image (see :class:`~udcshield.defenses.defended.NoiseDraw`).
        first_draw: draw index of the first sample; successive calls with first_draw = 0, samples,
            2 · samples, … never reuse noise.

    Returns:
        (grad, dist): the mean gradient (B, 3, H, W) and the mean distortion (B,) over the draws;
        plus the stacked per-draw gradients when ``return_samples``.
    """
    samples = check_int(samples, "samples")
    objective = check_objective(objective)
    if not isinstance(x, torch.Tensor) or not isinstance(ref, torch.Tensor) or x.shape != ref.shape:
        raise ValueError("x and ref must be tensors of the same shape, got "
                         f"{getattr(x, 'shape', type(x).__name__)} and {getattr(ref, 'shape', type(ref).__name__)}")
    if seeds is None and isinstance(model, DefendedRestorer):
        raise ValueError("a DefendedRestorer draws the same default noise on every call: pass seeds "
                         "(one per image) so that each EOT sample gets its own draw")
    if isinstance(first_draw, bool) or not isinstance(first_draw, int) or first_draw < 0:
        raise ValueError(f"first_draw must be a non-negative int, got {first_draw!r}")
    draws = None if seeds is None else [NoiseDraw(seeds, first_draw + k) for k in range(samples)]
    grads: list[torch.Tensor] = []
    dists: list[torch.Tensor] = []
    with torch.enable_grad():
        for k in range(samples):
            a = x.detach().requires_grad_(True)
            out = model(a) if draws is None else model(a, draws[k])
            dist = distortion(out, ref, objective)
            (grad,) = torch.autograd.grad(dist.sum(), a)
            grads.append(grad)
            dists.append(dist.detach())
    stacked = torch.stack(grads)
    mean_grad = stacked.mean(dim=0)
    mean_dist = torch.stack(dists).mean(dim=0)
    if return_samples:
        return mean_grad, mean_dist, stacked
    return mean_grad, mean_dist
