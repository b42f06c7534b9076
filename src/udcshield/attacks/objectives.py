"""Attack objectives for image-to-image models.

An attack on a restorer maximizes the distortion of the restored image, measured either against the
ground truth or against the model's own output on the clean input (Song et al., arXiv 2402.13629,
attack UDC restorers by maximizing the restoration error).

Targeted variants ("targeted_mse", "targeted_l1") return the *negated* distance to the reference, so an
attack that maximizes them pulls the restored image toward an attacker-chosen image passed as the
reference (the targeted setting of Carlini & Wagner 2017 transposed to image-to-image models).
"""

from __future__ import annotations

import torch
from torch import nn

UNTARGETED: tuple[str, ...] = ("mse", "l1")
TARGETED: tuple[str, ...] = ("targeted_mse", "targeted_l1")
OBJECTIVES: tuple[str, ...] = UNTARGETED + TARGETED


def check_objective(kind: str) -> str:
    """Return ``kind`` if it names a known objective (one of :data:`OBJECTIVES`), else raise ValueError."""
    if kind not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {kind!r}")
    return kind


def distortion(output: torch.Tensor, reference: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Per-image mean distortion between a restored image and a reference.

    Args:
        output: model output, shape (B, ...), e.g. B x 3 x H x W in [0, 1] (tone-mapped domain).
        reference: ground truth or clean output, same shape as ``output``.
        kind: "mse" (mean squared error), "l1" (mean absolute error), or "targeted_mse" /
            "targeted_l1" (the negated MSE / L1: maximizing it minimizes the distance to ``reference``,
            an attacker-chosen image).

    Returns:
        Tensor of shape (B,), the mean over all non-batch dimensions; >= 0 for "mse"/"l1", <= 0 for the
        targeted kinds. Differentiable with respect to both arguments, so attacks can ascend it
        (Goodfellow et al. 2015; Madry et al. 2018).
    """
    check_objective(kind)
    if not isinstance(output, torch.Tensor) or not isinstance(reference, torch.Tensor):
        raise ValueError("output and reference must be torch tensors")
    if output.ndim < 1 or output.shape[0] == 0:
        raise ValueError(f"output must have a non-empty batch dimension, got shape {tuple(output.shape)}")
    if output.shape != reference.shape:
        raise ValueError(
            f"output shape {tuple(output.shape)} does not match reference shape {tuple(reference.shape)}"
        )
    diff = output - reference
    per_elem = diff * diff if kind.endswith("mse") else diff.abs()
    value = per_elem.reshape(per_elem.shape[0], -1).mean(dim=1)
    return -value if kind in TARGETED else value


class ClampedOutput(nn.Module):
    """The restorer's output clamped to [0, 1], the image PSNR and SSIM score (BasicSR convention).

    An attack on ``ClampedOutput(model)`` raises the distortion that is actually scored: output pixels
    already pushed past 0 or 1 get no gradient, so the attack spends its budget on pixels that still count.
    Maps B x C x H x W in [0, 1] to the same shape in [0, 1].
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).clamp(0.0, 1.0)
