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

``guidance_scale = 0`` (the default everywhere) is exactly the unguided sampler: no extra draws. This module
holds the shift; the guided chain is :func:`udcshield.defenses.samplers.reverse_chain`
(:func:`udcshield.defenses.samplers.guided_purify`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from udcshield.defenses.schedule import Generators, _randn

if TYPE_CHECKING:
    from udcshield.defenses.purifier import DiffusionPurifier

__all__ = ["guidance_pull", "posterior_variance", "check_guidance_scale", "SAMPLERS", "REFERENCE_NOISE"]

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
