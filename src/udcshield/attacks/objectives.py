"""Attack objectives for image-to-image models.

An attack on a restorer maximizes the distortion of the restored image, measured either against the
ground truth or against the model's own output on the clean input (Song et al., arXiv 2402.13629,
attack UDC restorers by maximizing the restoration error).
"""

from __future__ import annotations

import torch

OBJECTIVES: tuple[str, ...] = ("mse", "l1")


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
        kind: "mse" (mean squared error) or "l1" (mean absolute error).

    Returns:
        Tensor of shape (B,), the mean over all non-batch dimensions; >= 0. Differentiable with respect
        to both arguments, so attacks can ascend it (Goodfellow et al. 2015; Madry et al. 2018).
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
    per_elem = diff * diff if kind == "mse" else diff.abs()
    return per_elem.reshape(per_elem.shape[0], -1).mean(dim=1)
