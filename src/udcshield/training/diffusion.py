"""Training the DDPM purifier (Ho et al., NeurIPS 2020) on clean tone-mapped images.

The purifier only has to model the clean-image distribution it will purify (Nie et al. 2022, DiffPure;
Song et al., arXiv 2402.13629 purify UDC inputs with such a model).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from udcshield.defenses.purifier import DiffusionPurifier
from udcshield.training.augment import random_crop_flip_jitter
from udcshield.training.restorer import check_training_args, cosine_lr

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
    purifier.to(device)
    optimizer = torch.optim.Adam(purifier.parameters(), lr=lr)
    history: list[dict] = []
    window: list[float] = []
    start = time.perf_counter()
    purifier.train()
    try:
        for step in range(iterations):
            step_lr = cosine_lr(step, iterations, lr, lr_min)
            for group in optimizer.param_groups:
                group["lr"] = step_lr
            index = torch.randint(0, images.shape[0], (batch_size,), generator=generator,
                                  device=generator.device).to(images.device)
            batch, _ = random_crop_flip_jitter(images[index], images[index], crop=crop_size, flips=flips,
                                               color_jitter=0.0, generator=generator)
            value = purifier.training_loss(batch.to(device), generator)
            loss_value = float(value.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"train_purifier: loss is {loss_value} at step {step + 1}/{iterations} "
                                         f"(lr {step_lr:.3g}); lower the learning rate or check the data")
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            window.append(loss_value)
            if (step + 1) % log_every == 0 or step + 1 == iterations:
                row = {"step": step + 1, "loss": sum(window) / len(window), "lr": step_lr,
                       "elapsed_s": time.perf_counter() - start}
                window.clear()
                history.append(row)
                if progress is not None:
                    progress(row)
    finally:
        purifier.eval()
    return history
