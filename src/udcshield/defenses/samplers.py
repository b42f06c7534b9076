"""The one reverse-chain interface of the purifier: strided DDPM or DDIM, optionally input-guided.

Purification (DiffPure, Nie et al., ICML 2022) diffuses the input to a moderate timestep t* and runs a
reverse chain back to 0 with the DDPM's ε-network (Ho et al., NeurIPS 2020). The chain is described by
a :class:`SamplerConfig` and run by :func:`reverse_chain`; everything that purifies goes through it
(:meth:`DiffusionPurifier.purify` and the thin wrappers :func:`purify_ddim` and :func:`guided_purify` here,
:class:`udcshield.defenses.defended.DefendedRestorer`, :func:`udcshield.defenses.dataset.purify_set`). The step
math lives next to each sampler:

* "ddpm": the exact DDPM posterior between consecutive kept timesteps (Ho et al. 2020, Eq. 6–7),
  :meth:`DiffusionPurifier.reverse_step`; with ``num_steps`` < t* the timesteps are strided as in the
  respacing of Nichol & Dhariwal 2021;
* "ddim": the non-Markovian DDIM update (Song, Meng, Ermon, ICLR 2021, Eq. 12),
  :func:`udcshield.defenses.ddim.ddim_step`, deterministic for eta = 0;
* guidance_scale > 0: GDMP input guidance (Wang et al. 2022), :func:`udcshield.defenses.guidance.guidance_pull`,
  subtracted after either sampler's update.

Randomness comes only from the ``generator`` argument (one ``torch.Generator`` or one per image); the
draw order is fixed: the forward noise, then per step t → s the guidance reference noise (guided steps
with s > 0 and reference_noise="fresh") and the sampler's noise (DDPM with s > 0, DDIM with eta > 0 and
s > 0). Nothing is stored between calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch.utils.checkpoint import checkpoint as grad_checkpoint

from udcshield.accel import NoisePredictor
from udcshield.defenses.ddim import check_eta, ddim_step
from udcshield.defenses.guidance import REFERENCE_NOISE, SAMPLERS, check_guidance_scale, guidance_pull
from udcshield.defenses.schedule import Generators, _randn, check_steps, check_t_star, strided_timesteps
from udcshield.models.registry import check_image_batch
from udcshield.models.unet import pad_to_multiple

if TYPE_CHECKING:
    from udcshield.defenses.purifier import DiffusionPurifier

__all__ = ["SamplerConfig", "NoisePredictor", "reverse_chain", "noise_estimate", "purify_ddim", "guided_purify",
           "SAMPLERS", "REFERENCE_NOISE"]

@dataclass(frozen=True, kw_only=True)
class SamplerConfig:
    """Which reverse chain purifies, validated on construction.

    Attributes:
        kind: "ddpm" (ancestral, Ho et al. 2020) or "ddim" (Song et al. 2021).
        t_star: diffusion depth, a non-negative int (its upper bound T is the purifier's and is checked
            by :func:`reverse_chain`); 0 means no purification.
        num_steps: network evaluations; None = every step t*, …, 1, otherwise an int in [1, t*]
            (:func:`udcshield.defenses.schedule.strided_timesteps`).
        eta: DDIM stochasticity in [0, 1] (0 = deterministic reverse chain); ignored by "ddpm".
        guidance_scale: GDMP input guidance strength >= 0 (Wang et al. 2022); 0 = unguided, with
            exactly the unguided draws.
        reference_noise: GDMP reference noise, "fresh" (a new draw per guided step, their Algorithm 1)
            or "forward" (reuse the forward-diffusion noise, no extra draws); used only when guided.
        clip_denoised: clip x̂0 to [-1, 1] in each step (as DDPM sampling does).
    """

    kind: str = "ddpm"
    t_star: int
    num_steps: int | None = None
    eta: float = 0.0
    guidance_scale: float = 0.0
    reference_noise: str = "fresh"
    clip_denoised: bool = True

    def __post_init__(self) -> None:
        if self.kind not in SAMPLERS:
            raise ValueError(f"sampler kind must be one of {list(SAMPLERS)}, got {self.kind!r}")
        check_steps(self.t_star, self.num_steps)
        object.__setattr__(self, "eta", check_eta(self.eta))
        object.__setattr__(self, "guidance_scale", check_guidance_scale(self.guidance_scale))
        if self.reference_noise not in REFERENCE_NOISE:
            raise ValueError(f"reference_noise must be one of {list(REFERENCE_NOISE)}, got {self.reference_noise!r}")
        if not isinstance(self.clip_denoised, bool):
            raise ValueError(f"clip_denoised must be a bool, got {self.clip_denoised!r}")

    @property
    def timesteps(self) -> list[int]:
        """Descending timesteps t*, …, ≥ 1 where the network is evaluated ([] when t* = 0)."""
        return strided_timesteps(self.t_star, self.num_steps) if self.t_star > 0 else []

    @property
    def evaluations(self) -> int:
        """Batched network evaluations of one chain (len of :attr:`timesteps`)."""
        return self.t_star if self.num_steps is None else self.num_steps

    @property
    def guided(self) -> bool:
        """True when GDMP guidance is on (guidance_scale > 0)."""
        return self.guidance_scale > 0


def noise_estimate(purifier: DiffusionPurifier, z: torch.Tensor, t: int, *, checkpoint: bool = False,
                   noise_predictor: NoisePredictor | None = None) -> torch.Tensor:
    """ε̂(z, t) (Ho et al. 2020 ε-parameterization) at the Ho-convention timestep t ∈ [1, T].

    ``z``: (B, 3, H, W) in DDPM space [-1, 1] (padded to ``purifier.multiple``); returns the same shape.
    ``noise_predictor`` replaces the plain UNet call (see :data:`udcshield.accel.NoisePredictor`); with
    ``checkpoint`` and grad mode on, the network's activations are recomputed in the backward pass (same values and
    gradients, less memory).
    """
    if noise_predictor is None:
        fn = purifier.predict_noise
    else:
        fn = partial(purifier.predict_noise, runner=noise_predictor)
    if checkpoint and torch.is_grad_enabled():
        return grad_checkpoint(fn, z, t, use_reentrant=False)
    return fn(z, t)


def reverse_chain(
    purifier: DiffusionPurifier,
    x: torch.Tensor,
    config: SamplerConfig,
    generator: Generators,
    *,
    checkpoint: bool = False,
    noise_predictor: NoisePredictor | None = None,
) -> torch.Tensor:
    """Purify ``x``: diffuse it to t* and run the reverse chain of ``config`` back to 0 (DiffPure, Nie et al. 2022).

    Pads ``x`` to ``purifier.multiple`` in DDPM space (z0), diffuses it with one draw ε_fwd,
    z_t* = √ᾱ_t* z0 + √(1−ᾱ_t*) ε_fwd, then for each pair of consecutive timesteps t → s of
    ``config.timesteps`` (ending at s = 0) applies the DDPM posterior step (Ho et al. 2020) or the DDIM
    update (Song et al. 2021), minus the GDMP pull toward the diffused input when guided (Wang et al.
    2022), and crops back.

    Args:
        purifier: a trained :class:`DiffusionPurifier` (its ε-UNet and ᾱ schedule are used).
        x: (B, 3, H, W) float images in [0, 1], any H, W, on the purifier's device.
        config: the sampler; ``config.t_star`` must be <= the purifier's T. t* = 0 returns a copy of
            ``x`` (no noise, no network call).
        generator: one generator or one per image (per-image seeds, batch-size independent); draws are
            made on the generator's device and moved to ``x``'s. Draw order: see the module docstring.
        checkpoint: gradient checkpointing of each network call (for adaptive attacks that
            differentiate through the chain; same values and gradients).
        noise_predictor: run the network through this callable instead of the plain UNet call:
            ``(z_t, t0) -> ε̂`` with t0 the UNet's 0-based (B,) long timestep index, Ho et al. t − 1
            (:data:`udcshield.accel.NoisePredictor`, e.g. bf16 / channels_last / CUDA graphs from
            :func:`udcshield.accel.accelerate_purifier`); None = the purifier's own
            :meth:`DiffusionPurifier.predict_noise`.

    Returns:
        (B, 3, H, W) purified images clamped to [0, 1]. Grad mode is left to the caller: under
        ``torch.enable_grad`` gradients flow to ``x`` (nothing is detached).
    """
    if not isinstance(config, SamplerConfig):
        raise ValueError(f"config must be a SamplerConfig, got {type(config).__name__}")
    check_t_star(purifier, config.t_star)
    check_image_batch(x, "reverse_chain input")
    purifier._check_device(x)
    if noise_predictor is not None and not callable(noise_predictor):
        raise ValueError(f"noise_predictor must be callable or None, got {type(noise_predictor).__name__}")
    steps = config.timesteps
    if not steps:
        return x.clone()
    height, width = x.shape[-2:]
    z0, _ = pad_to_multiple(purifier.to_model_space(x), purifier.multiple)
    abar = purifier.alpha_bar(config.t_star)
    forward_noise = _randn(tuple(z0.shape), generator, z0)
    z = math.sqrt(abar) * z0 + math.sqrt(1.0 - abar) * forward_noise
    for i, t in enumerate(steps):
        s = steps[i + 1] if i + 1 < len(steps) else 0
        eps = noise_estimate(purifier, z, t, checkpoint=checkpoint, noise_predictor=noise_predictor)
        pull = None
        if config.guided:
            pull = guidance_pull(purifier, z, t, s, z0, forward_noise, config.guidance_scale,
                                 reference_noise=config.reference_noise, generator=generator)
        if config.kind == "ddpm":
            z_next = purifier.reverse_step(z, eps, t, s, generator, clip_denoised=config.clip_denoised)
        else:
            z_next = ddim_step(purifier, z, eps, t, s, eta=config.eta, generator=generator,
                               clip_denoised=config.clip_denoised)
        z = z_next if pull is None else z_next - pull
    return purifier.from_model_space(z[..., :height, :width]).clamp(0.0, 1.0)


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
    eta = 0), then runs ``num_steps`` DDIM updates (:func:`udcshield.defenses.ddim.ddim_step`) from t* to 0
    on the timesteps of :func:`~udcshield.defenses.schedule.strided_timesteps` using the purifier's ε-UNet
    (no retraining). A thin wrapper of :func:`reverse_chain` with a "ddim" :class:`SamplerConfig`.

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
    config = SamplerConfig(kind="ddim", t_star=t_star, num_steps=num_steps, eta=eta, clip_denoised=bool(clip_denoised))
    return reverse_chain(purifier, x, config, generator, checkpoint=checkpoint, noise_predictor=noise_predictor)


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

    A thin wrapper of :func:`reverse_chain`; the arguments are the fields of its :class:`SamplerConfig`
    (the shift is :func:`udcshield.defenses.guidance.guidance_pull`).

    Args:
        purifier: a trained :class:`DiffusionPurifier`.
        x: (B, 3, H, W) float images in [0, 1] (the possibly attacked input), any H, W.
        t_star: diffusion depth in [0, T]; 0 returns a copy of ``x``.
        num_steps: network evaluations (None = every step; see
            :func:`~udcshield.defenses.schedule.strided_timesteps`).
        generator: one generator or one per image.
        guidance_scale: >= 0; 0 gives exactly :meth:`DiffusionPurifier.purify` (sampler "ddpm") or
            :func:`purify_ddim` (sampler "ddim") for the same generator.
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
    config = SamplerConfig(kind=sampler, t_star=t_star, num_steps=num_steps, eta=eta, guidance_scale=guidance_scale,
                           reference_noise=reference_noise, clip_denoised=bool(clip_denoised))
    return reverse_chain(purifier, x, config, generator, checkpoint=checkpoint, noise_predictor=noise_predictor)
