"""DDIM purification: few-step (deterministic for eta = 0) reverse chain with the DDPM's ε-UNet.

DDIM (Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021) reuses a DDPM trained with
the simple ε-loss (Ho et al. 2020) and replaces the Markov reverse chain by the non-Markovian update
(their Eq. 12), for a step t → s (s < t, possibly far apart)::

    x̂0  = (z_t − √(1−ᾱ_t) ε̂(z_t, t)) / √ᾱ_t                      (clipped to [-1, 1])
    σ   = η · √((1−ᾱ_s)/(1−ᾱ_t)) · √(1 − ᾱ_t/ᾱ_s)
    z_s = √ᾱ_s x̂0 + √(1−ᾱ_s−σ²) ε̂ + σ n,   n ~ N(0, I)

With η = 0 the reverse chain is a deterministic function of z_t*, so purification (Nie et al. 2022,
DiffPure; Song et al., arXiv 2402.13629) is random only through the forward diffusion to t*. η = 1
gives DDPM-like ancestral noise. Timesteps follow :func:`udcshield.defenses.schedule.strided_timesteps`
(Ho et al. convention, t ∈ {0, …, T}, ᾱ_0 = 1). This module holds the DDIM step; the chain itself is
:func:`udcshield.defenses.samplers.reverse_chain` with ``kind="ddim"``
(:func:`udcshield.defenses.samplers.purify_ddim`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from udcshield.defenses.schedule import Generators, _randn

if TYPE_CHECKING:
    from udcshield.defenses.purifier import DiffusionPurifier

__all__ = ["ddim_step", "check_eta"]


def check_eta(eta: float) -> float:
    """Return ``eta`` (DDIM stochasticity, Song et al. 2021) as a float if it is finite in [0, 1], else ValueError."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta) or not 0 <= eta <= 1:
        raise ValueError(f"eta must be a finite number in [0, 1], got {eta!r}")
    return float(eta)


def ddim_step(
    purifier: DiffusionPurifier,
    z_t: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    s: int,
    *,
    eta: float = 0.0,
    generator: Generators | None = None,
    clip_denoised: bool = True,
) -> torch.Tensor:
    """One DDIM update z_t → z_s (Song et al. 2021, Eq. 12), 0 <= s < t <= T.

    Args:
        z_t: (B, 3, H, W) state in DDPM space.
        eps: ε̂(z_t, t), same shape.
        eta: 0 (deterministic) … 1 (DDPM-like variance).
        generator: needed only when eta > 0 and s > 0 (one generator or one per image).
        clip_denoised: clip x̂0 to [-1, 1]; ε̂ is then recomputed from the clipped x̂0 so that the
            update stays consistent with it (diffusers' ``use_clipped_model_output``).

    Returns:
        z_s, (B, 3, H, W); equals x̂0 when s = 0.
    """
    if not 0 <= s < t <= purifier.num_train_timesteps:
        raise ValueError(f"ddim_step needs 0 <= s < t <= {purifier.num_train_timesteps}, got t={t}, s={s}")
    abar_t, abar_s = purifier.alpha_bar(t), purifier.alpha_bar(s)
    x0_hat = (z_t - math.sqrt(1.0 - abar_t) * eps) / math.sqrt(abar_t)
    if clip_denoised:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
        eps = (z_t - math.sqrt(abar_t) * x0_hat) / math.sqrt(1.0 - abar_t)
    if s == 0:
        return x0_hat
    sigma = eta * math.sqrt((1.0 - abar_s) / (1.0 - abar_t)) * math.sqrt(max(1.0 - abar_t / abar_s, 0.0))
    direction = math.sqrt(max(1.0 - abar_s - sigma * sigma, 0.0))
    z_s = math.sqrt(abar_s) * x0_hat + direction * eps
    if sigma > 0:
        if generator is None:
            raise ValueError("ddim_step with eta > 0 needs a generator")
        z_s = z_s + sigma * _randn(tuple(z_t.shape), generator, z_t)
    return z_s
