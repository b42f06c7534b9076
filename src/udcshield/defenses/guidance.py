"""Input-guided purification (GDMP: Wang et al. 2022, "Guided Diffusion Model for Adversarial Purification").

Plain DiffPure (Nie et al. 2022) may drift away from the input's content when t* is large. GDMP guides
each reverse step toward the (diffused) input: with the distance D(z_t, r_t) = ‖z_t − r_t‖² between
the chain state and a reference r_t ~ q(z_t | x_input), the step mean is shifted against its gradient,
scaled by the step variance (their Eq. 6, classifier-guidance form of Dhariwal & Nichol 2021)::

    z_s ← z_s − guidance_scale · v_ts · ∇_{z_t} D(z_t, r_t) = z_s − 2 · guidance_scale · v_ts · (z_t − r_t)

where v_ts = (1−ᾱ_s)/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_s) is the DDPM posterior variance of the step t → s (used
for the DDIM sampler too, whose own variance is 0 for eta = 0), so the last step (s = 0) is unguided.
Adding the shift after the sampler's update equals shifting the mean before its noise is added. The
gradient of the squared L2 distance is used in closed form (GDMP also proposes SSIM guidance; not
implemented). A per-step pull 2 · guidance_scale · v_ts above 1 overshoots the reference.

``guidance_scale = 0`` (the default everywhere) is exactly the unguided sampler: no extra draws.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from udcshield.defenses.purifier import DiffusionPurifier, Generators, _randn

if TYPE_CHECKING:
    from udcshield.defenses.samplers import NoisePredictor

__all__ = ["guided_purify", "guidance_pull", "posterior_variance", "check_guidance_scale", "SAMPLERS",
           "REFERENCE_NOISE"]

SAMPLERS: tuple[str, ...] = ("ddpm", "ddim")
REFERENCE_NOISE: tuple[str, ...] = ("fresh", "forward")


def check_guidance_scale(scale: float) -> float:
    """Return ``scale`` as a float if it is finite and >= 0, else raise ValueError naming guidance_scale."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {scale!r}")
    return float(scale)


def posterior_variance(purifier: DiffusionPurifier, t: int, s: int) -> float:
    """DDPM posterior variance of the step t → s (Ho et al. 2020, Eq. 7 generalized to strides); 0 for s = 0."""
    abar_t, abar_s = purifier.alpha_bar(t), purifier.alpha_bar(s)
    return (1.0 - abar_s) / (1.0 - abar_t) * (1.0 - abar_t / abar_s)


def guidance_pull(purifier: DiffusionPurifier, z: torch.Tensor, t: int, s: int, z0: torch.Tensor,
                  forward_noise: torch.Tensor, scale: float, *, reference_noise: str,
                  generator: Generators) -> torch.Tensor | None:
    """The GDMP shift 2 · scale · v_ts · (z_t − r_t) of one step t → s (Wang et al. 2022, Eq. 6), or None.

    ``z``: the chain state z_t, ``z0``: the padded input in DDPM space, ``forward_noise``: the forward
    diffusion draw ε_fwd, all (B, 3, H, W). r_t = √ᾱ_t z0 + √(1−ᾱ_t) n with n a fresh draw from
    ``generator`` (``reference_noise="fresh"``) or n = ε_fwd ("forward"). None (and no draw) when the
    step is unguided: scale = 0 or s = 0 (zero posterior variance). The sampler subtracts the shift from
    its own update z_s.
    """
    variance = posterior_variance(purifier, t, s) if s > 0 else 0.0
    if not (scale > 0 and variance > 0):
        return None
    abar_t = purifier.alpha_bar(t)
    noise = _randn(tuple(z0.shape), generator, z0) if reference_noise == "fresh" else forward_noise
    reference = math.sqrt(abar_t) * z0 + math.sqrt(1.0 - abar_t) * noise
    return (2.0 * scale * variance) * (z - reference)


def guided_purify(
    purifier: DiffusionPurifier,
    x: torch.Tensor,
    *,
    t_star: int,
    num_steps: int | None = None,
    generator: Generators,
    guidance_scale: float = 0.0,
    sampler: str = "ddpm",
    eta: float = 0.0,
    reference_noise: str = "fresh",
    clip_denoised: bool = True,
    checkpoint: bool = False,
    noise_predictor: NoisePredictor | None = None,
) -> torch.Tensor:
    """Purify ``x`` with a DDPM or DDIM reverse chain guided toward the input (GDMP, Wang et al. 2022).

    A thin wrapper of :func:`udcshield.defenses.samplers.reverse_chain`; the arguments are the fields
    of its :class:`~udcshield.defenses.samplers.SamplerConfig`.

    Args:
        purifier: a trained :class:`DiffusionPurifier`.
        x: (B, 3, H, W) float images in [0, 1] (the possibly attacked input), any H, W.
        t_star: diffusion depth in [0, T]; 0 returns a copy of ``x``.
        num_steps: network evaluations (None = every step; see :func:`strided_timesteps`).
        generator: one generator or one per image.
        guidance_scale: >= 0; 0 gives exactly :meth:`DiffusionPurifier.purify` (sampler "ddpm") or
            :func:`udcshield.defenses.ddim.purify_ddim` (sampler "ddim") for the same generator.
        sampler: "ddpm" (ancestral, Ho et al. 2020) or "ddim" (Song et al. 2021, with ``eta``).
        eta: DDIM stochasticity in [0, 1] (ignored by "ddpm").
        reference_noise: "fresh" draws r_t ~ q(z_t | x) anew at every guided step (GDMP, Algorithm 1);
            "forward" reuses the forward-diffusion noise, r_t = √ᾱ_t x + √(1−ᾱ_t) ε_fwd (no extra draws).
        clip_denoised: clip x̂0 to [-1, 1] at each step.
        checkpoint: gradient checkpointing of each UNet call.
        noise_predictor: execute the network through this callable (see
            :func:`udcshield.accel.accelerate_purifier`); None = the plain UNet.

    Draw order: forward noise; then per step t → s: the reference noise (guided steps with s > 0 and
    reference_noise="fresh"), then the sampler's noise (DDPM with s > 0, DDIM with eta > 0 and s > 0).

    Returns:
        (B, 3, H, W) purified images clamped to [0, 1], differentiable w.r.t. ``x`` under grad mode.
    """
    from udcshield.defenses.samplers import SamplerConfig, reverse_chain

    config = SamplerConfig(kind=sampler, t_star=t_star, num_steps=num_steps, eta=eta, guidance_scale=guidance_scale,
                           reference_noise=reference_noise, clip_denoised=bool(clip_denoised))
    return reverse_chain(purifier, x, config, generator, checkpoint=checkpoint, noise_predictor=noise_predictor)
