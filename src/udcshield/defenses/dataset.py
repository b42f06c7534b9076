"""Purify whole image sets in batches with per-image seeds.

Each image's diffusion noise comes from its own generator, seeded by
``derive_seed(seed, stage, image_id)``, so a purified image does not depend on the batch it was in, the
batch size or the order of the batches. Purification after Nie et al. (2022, DiffPure) as used by Song
et al. (arXiv 2402.13629): diffuse to t*, run the reverse chain to 0
(:func:`udcshield.defenses.samplers.reverse_chain`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from udcshield.defenses.purifier import DiffusionPurifier
from udcshield.defenses.samplers import NoisePredictor, SamplerConfig, reverse_chain
from udcshield.seeding import torch_generator

__all__ = ["purify_set"]


@torch.no_grad()
def purify_set(purifier: DiffusionPurifier, images: torch.Tensor, image_ids: Sequence[str], *, t_star: int,
               num_steps: int | None, seed: int, stage: str, batch_size: int, device: torch.device,
               sampler: str = "ddpm", eta: float = 0.0, guidance_scale: float = 0.0,
               noise_predictor: NoisePredictor | None = None) -> torch.Tensor:
    """Purify ``images`` (N, 3, H, W) float32 in [0, 1]; returns the same shape on CPU, in [0, 1].

    Args:
        image_ids: N ids, one per image; with ``seed`` and ``stage`` they fix each image's noise.
        t_star: diffusion depth (timestep index, 1 ... num_train_timesteps).
        num_steps: reverse steps (None: every step from t_star to 1).
        sampler, eta, guidance_scale: DDPM (Ho et al. 2020) or DDIM (Song et al. 2021) reverse chain,
            optionally GDMP-guided (Wang et al. 2022; scale 0 is the plain sampler, bit for bit); see
            :class:`udcshield.defenses.samplers.SamplerConfig`.
        noise_predictor: execute the purifier's network through this callable (e.g. the accelerated
            runner returned by :func:`udcshield.accel.accelerate_purifier_for`); None = the plain UNet.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be N x 3 x H x W, got {tuple(images.shape)}")
    if len(image_ids) != images.shape[0]:
        raise ValueError(f"got {len(image_ids)} image ids for {images.shape[0]} images")
    config = SamplerConfig(kind=sampler, t_star=t_star, num_steps=num_steps, eta=eta, guidance_scale=guidance_scale)
    purifier = purifier.to(device).eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start:start + batch_size].to(device)
        gens = [torch_generator(seed, stage, image_id, device=device) for image_id in image_ids[start:start + batch_size]]
        out.append(reverse_chain(purifier, chunk, config, gens, noise_predictor=noise_predictor).float().cpu())
    return torch.cat(out)
