"""Supervised training and fine-tuning of UDC restorers.

Adam with cosine learning-rate decay on random paired crops (Zhou et al., CVPR 2021 train their ResUNet
with an L1/L2 pixel loss; Song et al., arXiv 2402.13629 fine-tune restorers on diffusion-purified inputs
with the same recipe, batch 16, flips, light colour jitter, cosine decay). Fine-tuning is this same
function called with purified inputs and a smaller learning rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from udcshield.models.registry import check_image_batch
from udcshield.training.augment import random_crop_flip_jitter

__all__ = ["train_restorer", "cosine_lr", "check_training_args", "draw_batch", "train_loop", "resolve_loss",
           "trainable_parameters", "LossFn"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_LOSSES: dict[str, LossFn] = {"l2": F.mse_loss, "l1": F.l1_loss}


def cosine_lr(step: int, iterations: int, lr: float, lr_min: float) -> float:
    """Learning rate at 0-based ``step``: cosine from ``lr`` (step 0) to ``lr_min`` (last step).

    Cosine annealing without restarts (Loshchilov & Hutter, ICLR 2017), as used for fine-tuning by
    Song et al., arXiv 2402.13629.
    """
    if iterations <= 1:
        return lr
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * step / (iterations - 1)))


def check_training_args(images: torch.Tensor, name: str, *, iterations: int, batch_size: int, crop_size: int,
                        lr: float, lr_min: float, log_every: int) -> None:
    """Validate a training image tensor (N, 3, H, W) in [0, 1] and the loop hyper-parameters.

    Shared by :func:`train_restorer` (Zhou et al. 2021) and the DDPM trainer (Ho et al. 2020).
    """
    check_image_batch(images, name)
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (tone-mapped images), got range [{low:.4g}, {high:.4g}]")
    for arg, value in (("iterations", iterations), ("batch_size", batch_size), ("crop_size", crop_size),
                       ("log_every", log_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    if crop_size > min(images.shape[-2:]):
        raise ValueError(f"crop_size {crop_size} exceeds the {name} size {tuple(images.shape[-2:])}")
    if not (lr > 0 and 0 <= lr_min <= lr):
        raise ValueError(f"need lr > 0 and 0 <= lr_min <= lr, got lr={lr!r}, lr_min={lr_min!r}")


def check_training_pairs(inputs: torch.Tensor, targets: torch.Tensor, *, iterations: int, batch_size: int,
                         crop_size: int, lr: float, lr_min: float, log_every: int) -> None:
    """:func:`check_training_args` for both tensors of a pair set (N, 3, H, W) in [0, 1], and equal shapes.

    Used by :func:`train_restorer` and the robust fine-tuning modes (:mod:`udcshield.training.robust`).
    """
    hyper = dict(iterations=iterations, batch_size=batch_size, crop_size=crop_size, lr=lr, lr_min=lr_min,
                 log_every=log_every)
    check_training_args(inputs, "inputs", **hyper)
    check_training_args(targets, "targets", **hyper)
    if inputs.shape != targets.shape:
        raise ValueError(f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} differ in shape")


def draw_batch(inputs: torch.Tensor, targets: torch.Tensor, *, batch_size: int, crop_size: int, flips: bool,
               color_jitter: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` pairs drawn with replacement, cropped, flipped and jittered identically (on their device)."""
    index = torch.randint(0, inputs.shape[0], (batch_size,), generator=generator,
                          device=generator.device).to(inputs.device)
    return random_crop_flip_jitter(inputs[index], targets[index], crop=crop_size, flips=flips,
                                   color_jitter=color_jitter, generator=generator)


def resolve_loss(loss: str | LossFn) -> LossFn:
    """``"l2"`` (MSE), ``"l1"`` or a callable ``(output, target) -> scalar`` as a callable; ValueError otherwise."""
    if callable(loss):
        return loss
    if loss in _LOSSES:
        return _LOSSES[loss]
    raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(_LOSSES)} or pass a callable")


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` with ``requires_grad`` (frozen ones are left out of the optimizer).

    Raises ValueError when every parameter is frozen (nothing would train).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(module).__name__} has no trainable parameter (all have requires_grad=False)")
    return params


def _freeze_norm_statistics(module: nn.Module) -> None:
    """Keep batch-norm layers whose parameters are all frozen in eval mode, so their running statistics
    (buffers) stay unchanged too; called after ``module.train()``."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            own = list(sub.parameters(recurse=False))
            if own and not any(p.requires_grad for p in own):
                sub.eval()


def train_loop(
    module: nn.Module,
    step_loss: Callable[[torch.Generator], torch.Tensor],
    *,
    name: str,
    iterations: int,
    lr: float,
    lr_min: float,
    generator: torch.Generator,
    device: str | torch.device,
    log_every: int,
    progress: Callable[[dict], None] | None,
) -> list[dict]:
    """Adam with cosine decay (:func:`cosine_lr`) on ``step_loss(generator)``, one scalar loss per step.

    Shared by :func:`train_restorer` and the DDPM trainer; ``step_loss`` draws its own batch from
    ``generator``. ``module`` is moved to ``device``, trained, and left in eval mode, also on error. Only
    parameters with ``requires_grad`` are optimized (:func:`trainable_parameters`); batch-norm layers whose
    parameters are all frozen stay in eval mode.

    Returns:
        History rows ``{"step", "loss", "lr", "elapsed_s"}`` as documented in :func:`train_restorer`.

    Raises:
        FloatingPointError: NaN/inf loss (the message starts with ``name`` and names the step).
    """
    module.to(device)
    optimizer = torch.optim.Adam(trainable_parameters(module), lr=lr)
    history: list[dict] = []
    window: list[float] = []
    start = time.perf_counter()
    module.train()
    _freeze_norm_statistics(module)
    try:
        for step in range(iterations):
            step_lr = cosine_lr(step, iterations, lr, lr_min)
            for group in optimizer.param_groups:
                group["lr"] = step_lr
            value = step_loss(generator)
            loss_value = float(value.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"{name}: loss is {loss_value} at step {step + 1}/{iterations} "
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
        module.eval()
    return history


def train_restorer(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    iterations: int,
    batch_size: int,
    crop_size: int,
    lr: float,
    lr_min: float,
    loss: str | LossFn = "l2",
    flips: bool = True,
    color_jitter: float = 0.0,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    log_every: int = 10,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train (or fine-tune) ``model`` to map ``inputs`` to ``targets`` (Zhou et al. 2021 training;
    Song et al. arXiv 2402.13629 fine-tuning on purified inputs).

    Args:
        model: restorer, (B, 3, h, w) [0, 1] → (B, 3, h, w); moved to ``device`` in place.
        inputs, targets: (N, 3, H, W) float tensors in [0, 1] (degraded / purified inputs and ground
            truth); they stay where they are, only batches are moved to ``device``.
        iterations: optimizer steps. batch_size: images per step (drawn with replacement).
        crop_size: square crop side (see :func:`random_crop_flip_jitter`).
        lr, lr_min: Adam learning rate, decayed by a cosine from ``lr`` to ``lr_min``.
        loss: "l2" (MSE), "l1", or a callable ``(output, target) -> scalar``.
        flips, color_jitter: augmentation, identical for input and target.
        generator: the only source of randomness (batch indices, crops, flips, gains).
        log_every: one history row per ``log_every`` steps (and one for the last step).
        progress: called with each history row as it is made.

    Returns:
        History rows ``{"step": steps done, "loss": mean loss since the previous row, "lr": last lr,
        "elapsed_s": seconds}``. The model is left in eval mode, also on error.

    Raises:
        FloatingPointError: the loss became NaN/inf (the message names the step).
    """
    check_training_pairs(inputs, targets, iterations=iterations, batch_size=batch_size, crop_size=crop_size,
                         lr=lr, lr_min=lr_min, log_every=log_every)
    loss_fn = resolve_loss(loss)

    def step_loss(generator: torch.Generator) -> torch.Tensor:
        batch_in, batch_tgt = draw_batch(inputs, targets, batch_size=batch_size, crop_size=crop_size, flips=flips,
                                         color_jitter=color_jitter, generator=generator)
        batch_in, batch_tgt = batch_in.to(device), batch_tgt.to(device)
        return loss_fn(model(batch_in), batch_tgt)

    return train_loop(model, step_loss, name="train_restorer", iterations=iterations, lr=lr, lr_min=lr_min,
                      generator=generator, device=device, log_every=log_every, progress=progress)
