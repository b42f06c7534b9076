"""Paired data augmentation for restorer and purifier training.

Song et al. (arXiv 2402.13629) fine-tune on random crops with flips and light colour jitter; the same
geometric transform must hit the degraded input and its ground truth, or the pair stops matching.
"""

from __future__ import annotations

import torch

from udcshield.models.registry import check_image_batch

__all__ = ["random_crop_flip_jitter"]


def random_crop_flip_jitter(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    crop: int,
    flips: bool,
    color_jitter: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop, flips and per-channel gain, identical for ``inputs`` and ``targets``.

    Args:
        inputs, targets: (B, 3, H, W) float images in [0, 1], same shape (``targets`` may be ``inputs``).
        crop: side of the square crop (<= min(H, W)); each image gets its own offset.
        flips: if True, each image is flipped horizontally and vertically with probability 1/2 each.
        color_jitter: j in [0, 1); each image gets per-channel gains drawn uniformly in [1 - j, 1 + j],
            multiplied into input AND target (a global colour/exposure change the restorer should
            pass through, not a degradation). 0 disables it.
        generator: the only source of randomness; draws happen on ``generator.device``.

    Returns:
        ``(inputs, targets)`` cropped to (B, 3, crop, crop) and clamped to [0, 1].

    Draw order per call (fixed, for reproducibility): crop rows, crop columns, flips, gains — each one
    batched tensor draw, so the result depends only on the generator state and the batch size.
    """
    check_image_batch(inputs, "inputs", finite=False)
    check_image_batch(targets, "targets", finite=False)
    if inputs.shape != targets.shape:
        raise ValueError(f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} differ in shape")
    batch, _, height, width = inputs.shape
    if not isinstance(crop, int) or crop < 1 or crop > min(height, width):
        raise ValueError(f"crop must be an int in [1, {min(height, width)}] for images {height}x{width}, got {crop!r}")
    if not 0.0 <= color_jitter < 1.0:
        raise ValueError(f"color_jitter must be in [0, 1), got {color_jitter!r}")
    gdev = generator.device
    tops = torch.randint(0, height - crop + 1, (batch,), generator=generator, device=gdev).tolist()
    lefts = torch.randint(0, width - crop + 1, (batch,), generator=generator, device=gdev).tolist()
    flip_draws = torch.randint(0, 2, (batch, 2), generator=generator, device=gdev).tolist() if flips else None
    gains = None
    if color_jitter > 0:
        uniform = torch.rand((batch, 3, 1, 1), generator=generator, device=gdev)
        gains = (1.0 - color_jitter + 2.0 * color_jitter * uniform).to(inputs.device, inputs.dtype)

    def transform(images: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(batch):
            patch = images[i, :, tops[i]:tops[i] + crop, lefts[i]:lefts[i] + crop]
            if flip_draws is not None:
                dims = [d for d, flag in zip((2, 1), flip_draws[i]) if flag]
                if dims:
                    patch = patch.flip(dims)
            out.append(patch)
        stacked = torch.stack(out)
        if gains is not None:
            stacked = stacked * gains
        return stacked.clamp(0.0, 1.0)

    return transform(inputs), transform(targets)
