"""Training the DDPM purifier (Ho et al., NeurIPS 2020) on clean tone-mapped images.

The purifier only has to model the clean-image distribution it will purify (Nie et al. 2022, DiffPure;
Song et al., arXiv 2402.13629 purify UDC inputs with such a model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from udcshield.defenses.purifier import DiffusionPurifier
from udcshield.training.restorer import check_training_args, draw_batch, train_loop

__all__ = ["train_purifier"]


def train_purifier(
    purifier: DiffusionPurifier,
    images: torch.Tensor,
    *,
    iterations: int,
    batch_size: int,
    crop_size: int,
    lr: float,
    lr_min: float,
    flips: bool = True,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    log_every: int = 10,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``purifier`` with the DDPM ε-prediction loss on random crops of ``images``.

    Args:
        purifier: moved to ``device`` in place.
        images: (N, 3, H, W) clean images in [0, 1] (stay where they are; batches go to ``device``).
        iterations, batch_size: optimizer steps and images per step (drawn with replacement).
        crop_size: square crop side, a multiple of ``purifier.multiple``.
        lr, lr_min: Adam learning rate with cosine decay from ``lr`` to ``lr_min``.
        flips: random horizontal/vertical flips.
        generator: the only source of randomness (indices, crops, flips, timesteps, noise).
        log_every, progress: as in :func:`udcshield.training.restorer.train_restorer`.

    Returns:
        History rows ``{"step", "loss", "lr", "elapsed_s"}``; the purifier is left in eval mode.

    Raises:
        FloatingPointError: NaN/inf loss (the message names the step).
    """
    if not isinstance(purifier, DiffusionPurifier):
        raise TypeError(f"expected a DiffusionPurifier, got {type(purifier).__name__}")
    check_training_args(images, "images", iterations=iterations, batch_size=batch_size, crop_size=crop_size,
                        lr=lr, lr_min=lr_min, log_every=log_every)
    if crop_size % purifier.multiple:
        raise ValueError(f"crop_size {crop_size} must be a multiple of {purifier.multiple} for this purifier")

    def step_loss(generator: torch.Generator) -> torch.Tensor:
        batch, _ = draw_batch(images, images, batch_size=batch_size, crop_size=crop_size, flips=flips,
                              color_jitter=0.0, generator=generator)
        return purifier.training_loss(batch.to(device), generator)

    return train_loop(purifier, step_loss, name="train_purifier", iterations=iterations, lr=lr, lr_min=lr_min,
                      generator=generator, device=device, log_every=log_every, progress=progress)
