"""DDIM purification: few-step (deterministic for eta = 0) reverse chain with the DDPM's ε-UNet.

DDIM (Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021) reuses a DDPM trained with
the simple ε-loss (Ho et al. 2020) and replaces the Markov reverse chain by the non-Markovian update
(their Eq. 12), for a step t → s (s < t, possibly far apart)::

    x̂0  = (z_t − √(1−ᾱ_t) ε̂(z_t, t)) / √ᾱ_t                      (clipped to [-1, 1])
    σ   = η · √((1−ᾱ_s)/(1−ᾱ_t)) · √(1 − ᾱ_t/ᾱ_s)
    z_s = √ᾱ_s x̂0 + √(1−ᾱ_s−σ²) ε̂ + σ n,   n ~ N(0, I)

With η = 0 the reverse chain is a deterministic function of z_t*, so purification (Nie et al. 2022,
DiffPure; Song et al., arXiv 2402.13629) is random only through the forward diffusion to t*. η = 1
gives DDPM-like ancestral noise. Timesteps follow :func:`udcshield.defenses.purifier.strided_timesteps`
(Ho et al. convention, t ∈ {0, …, T}, ᾱ_0 = 1). This module holds the DDIM step; the chain itself is
:func:`udcshield.defenses.samplers.reverse_chain` with ``kind="ddim"``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from udcshield.defenses.purifier import DiffusionPurifier, Generators, _randn

if TYPE_CHECKING:
    from udcshield.defenses.samplers import NoisePredictor

__all__ = ["ddim_step", "purify_ddim", "check_eta", "check_t_star"]


def check_eta(eta: float) -> float:
    """Return ``eta`` (DDIM stochasticity, Song et al. 2021) as a float if it is finite in [0, 1], else ValueError."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta) or not 0 <= eta <= 1:
        raise ValueError(f"eta must be a finite number in [0, 1], got {eta!r}")
    return float(eta)


def check_t_star(purifier: DiffusionPurifier, t_star: int) -> int:
    """Return ``t_star`` if it is an int in [0, T] for ``purifier``, else raise ValueError naming it."""
    if not isinstance(purifier, DiffusionPurifier):
        raise ValueError(f"purifier must be a DiffusionPurifier, got {type(purifier).__name__}")
    if not isinstance(t_star, int) or isinstance(t_star, bool) or not 0 <= t_star <= purifier.num_train_timesteps:
        raise ValueError(f"t_star must be an int in [0, {purifier.num_train_timesteps}], got {t_star!r}")
    return t_star


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


def purify_ddim(
    purifier: DiffusionPurifier,
    x: torch.Tensor,
    *,
    t_star: int,
    num_steps: int | None = None,
    generator: Generators,
    eta: float = 0.0,
    clip_denoised: bool = True,
    checkpoint: bool = False,
    noise_predictor: NoisePredictor | None = None,
) -> torch.Tensor:
    """DiffPure-style purification (Nie et al. 2022) with a DDIM reverse chain (Song et al. 2021).

    Diffuses ``x`` to t* with fresh Gaussian noise from ``generator`` (the only random draw when
    eta = 0), then runs ``num_steps`` DDIM updates from t* to 0 on the timesteps of
    :func:`strided_timesteps` using the purifier's ε-UNet (no retraining). A thin wrapper of
    :func:`udcshield.defenses.samplers.reverse_chain` with a "ddim"
    :class:`~udcshield.defenses.samplers.SamplerConfig`.

    Args:
        purifier: a trained :class:`DiffusionPurifier` (its UNet and ᾱ schedule are used).
        x: (B, 3, H, W) float images in [0, 1], any H, W (padded internally, cropped back).
        t_star: diffusion depth in [0, T]; 0 returns a copy of ``x`` (no noise, no network call).
        num_steps: network evaluations, None = every step t*, …, 1.
        generator: one generator or one per image; draw order: forward noise, then (eta > 0 only)
            one draw per reverse step except the last.
        eta: DDIM stochasticity in [0, 1]; 0 = deterministic reverse chain.
        clip_denoised: clip x̂0 to [-1, 1] at each step.
        checkpoint: gradient checkpointing of each UNet call (for adaptive attacks through the chain).
        noise_predictor: execute the network through this callable (see
            :func:`udcshield.accel.accelerate_purifier`); None = the plain UNet.

    Returns:
        (B, 3, H, W) purified images clamped to [0, 1]; differentiable w.r.t. ``x`` under grad mode.
    """
    from udcshield.defenses.samplers import SamplerConfig, reverse_chain

    config = SamplerConfig(kind="ddim", t_star=t_star, num_steps=num_steps, eta=eta, clip_denoised=bool(clip_denoised))
    return reverse_chain(purifier, x, config, generator, checkpoint=checkpoint, noise_predictor=noise_predictor)
