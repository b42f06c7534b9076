"""Universal (input-agnostic) perturbations for image restorers.

One perturbation delta for a whole data set (Moosavi-Dezfooli et al., "Universal adversarial
perturbations", CVPR 2017), found here by mini-batch projected signed-gradient ascent on the mean
restoration distortion (in the spirit of the SGD variant of Shafahi et al., AAAI 2020), in the L-infinity
threat model of Song et al. (arXiv 2402.13629).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from udcshield.attacks.base import (
    REFERENCES,
    check_eps,
    check_float,
    check_images,
    check_int,
    project_linf,
    representable_budget,
)
from udcshield.attacks.budget import LINF, RADIUS
from udcshield.attacks.objectives import check_objective, distortion

# Threat model of the universal perturbation, read by :mod:`udcshield.attacks.registry` (the attack classes
# declare the same as class attributes): budgets are L-infinity radii passed as ``eps``.
THREAT_NORM: str = LINF
BUDGET_MODE: str = RADIUS

Batch = tuple[torch.Tensor, torch.Tensor | None]


def apply_universal(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Add a universal perturbation to images of any size and project to [0, 1].

    Args:
        x: images, B x C x H x W float32/float64 in [0, 1].
        delta: 1 x C x h x w (finite); tiled (repeated from the top-left) to cover H x W, then cropped.

    Returns:
        B x C x H x W in [0, 1] with max|result - x| <= max|delta| exactly (see :func:`project_linf`).
        Differentiable with respect to ``delta`` (the exact projection is applied without gradient as a
        correction of at most one ulp).
    """
    check_images(x, "x")
    if not isinstance(delta, torch.Tensor) or delta.ndim != 4 or delta.shape[0] != 1 \
            or delta.shape[1] != x.shape[1]:
        shape = tuple(delta.shape) if isinstance(delta, torch.Tensor) else type(delta).__name__
        raise ValueError(f"delta must have shape 1 x {x.shape[1]} x h x w, got {shape}")
    if not bool(torch.isfinite(delta).all()):
        raise ValueError("delta contains NaN or infinite values")
    h, w = x.shape[-2:]
    reps = (1, 1, math.ceil(h / delta.shape[-2]), math.ceil(w / delta.shape[-1]))
    tiled = delta.to(device=x.device, dtype=x.dtype).repeat(*reps)[..., :h, :w]
    out = (x + tiled).clamp(0.0, 1.0)
    eps = min(float(delta.detach().abs().max()), 1.0)
    exact = project_linf(out.detach(), x, eps)
    return out + (exact - out).detach()


def _batches(data: Iterable[Batch] | tuple[torch.Tensor, ...], batch_size: int,
             generator: torch.Generator) -> Iterator[Batch]:
    """Endless mini-batches: random-permutation epochs over tensors, or cycles over an iterable."""
    if isinstance(data, tuple) and data and all(isinstance(t, torch.Tensor) or t is None for t in data):
        inputs = data[0]
        targets = data[1] if len(data) > 1 else None
        if inputs is None:
            raise ValueError("loader_or_tensors: inputs must be a tensor")
        check_images(inputs, "loader_or_tensors inputs")
        if targets is not None:
            check_images(targets, "loader_or_tensors targets")
            if targets.shape != inputs.shape:
                raise ValueError("loader_or_tensors: targets must have the inputs' shape")
        while True:
            perm = torch.randperm(inputs.shape[0], generator=generator)
            for s in range(0, len(perm), batch_size):
                idx = perm[s:s + batch_size]
                yield inputs[idx.to(inputs.device)], None if targets is None else targets[idx.to(targets.device)]
    else:
        while True:
            empty = True
            for item in data:
                empty = False
                if isinstance(item, torch.Tensor):
                    yield item, None
                elif isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor):
                    yield item[0], (item[1] if len(item) > 1 else None)
                else:
                    raise ValueError("loader_or_tensors must yield tensors or (inputs, targets) pairs")
            if empty:
                raise ValueError("loader_or_tensors yielded no batches")


def universal_perturbation(
    model: nn.Module,
    loader_or_tensors: Iterable[Batch] | tuple[torch.Tensor, ...],
    eps: float,
    steps: int,
    lr: float,
    generator: torch.Generator,
    *,
    objective: str = "mse",
    reference: str = "target",
    batch_size: int = 16,
) -> torch.Tensor:
    """Optimize one perturbation delta that raises the mean restoration distortion over a training set.

    Starting from delta ~ U(-eps, eps) (drawn from ``generator``), each step takes a mini-batch, computes
    the gradient of the mean distortion of f(apply_universal(x, delta)) with respect to delta only,
    and updates delta <- clip(delta + lr * sign(grad), -eps, eps). The model's parameters are never
    modified (no parameter gradients are formed); it runs in eval mode and its train/eval flags are
    restored afterwards.

    Args:
        model: image-to-image module, B x 3 x H x W in [0, 1] -> same shape.
        loader_or_tensors: ``(inputs, targets)`` tensors (N x 3 x H x W in [0, 1]; targets may be None
            for reference="clean_output"), sampled in random-permutation epochs of ``batch_size``; or
            an iterable (e.g. a DataLoader) of ``(inputs, targets)`` batches, cycled.
        eps: L-infinity radius in [0, 1].
        steps: mini-batch updates (>= 1).
        lr: signed step size (> 0), e.g. eps / 10.
        generator: CPU torch.Generator for the start and the mini-batch order.
        objective: a kind of :func:`udcshield.attacks.objectives.distortion`.
        reference: "target" (ground truth from the data) or "clean_output" (the model's clean output).
        batch_size: mini-batch size when tensors are given (>= 1).

    Returns:
        delta of shape 1 x 3 x H x W (H, W of the first batch), float32, with max|delta| <= eps.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    eps = check_eps(eps)
    steps = check_int(steps, "steps")
    lr = check_float(lr, "lr", strict=True)
    batch_size = check_int(batch_size, "batch_size")
    check_objective(objective)
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {list(REFERENCES)}, got {reference!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        batches = _batches(loader_or_tensors, batch_size, generator)
        delta: torch.Tensor | None = None
        for _ in range(steps):
            x, t = next(batches)
            check_images(x, "loader_or_tensors inputs")
            if delta is None:
                u = torch.rand((1, *x.shape[1:]), generator=generator, dtype=torch.float32)
                delta = ((2 * u - 1) * eps).to(x.device)
            if reference == "target":
                if t is None:
                    raise ValueError("targets are required when reference='target'")
                ref = t.to(device=x.device, dtype=x.dtype)
            else:
                with torch.no_grad():
                    ref = model(x)
            with torch.enable_grad():
                d = delta.detach().requires_grad_(True)
                loss = distortion(model(apply_universal(x, d)), ref, objective).mean()
                (grad,) = torch.autograd.grad(loss, d)
            delta = (delta + lr * grad.sign()).clamp(-eps, eps)
        assert delta is not None
        bound = torch.tensor(representable_budget(eps, torch.float32), dtype=torch.float32)
        return torch.minimum(torch.maximum(delta.detach().float(), -bound), bound)
    finally:
        for module, training in modes:
            module.training = training
