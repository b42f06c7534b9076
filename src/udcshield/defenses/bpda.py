"""Backward Pass Differentiable Approximation (BPDA; Athalye, Carlini, Wagner, "Obfuscated Gradients Give
a False Sense of Security", ICML 2018).

A preprocessing defense g (here diffusion purification, Nie et al. 2022) that is hard to differentiate
is run exactly in the forward pass, and replaced by the identity (g(x) ≈ x) in the backward pass, so
∇_x f(g(x)) is approximated by ∇f evaluated at g(x). Implemented as a custom autograd function rather
than the straight-through expression ``x + (g(x) - x).detach()``, whose forward value differs from g(x)
by rounding.

:func:`gradient_blocked` is the opposite: it returns g(x) and raises in the backward pass, for the
non-adaptive evaluation, so that a zero gradient can never silently pass for robustness.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["bpda", "gradient_blocked", "BPDAIdentity", "BlockedGradientError"]


class BlockedGradientError(RuntimeError):
    """Raised when a backward pass reaches a transform evaluated with gradients switched off."""


class BPDAIdentity(torch.autograd.Function):
    """Forward: return ``transformed`` (g(x), computed without a graph). Backward: pass the incoming
    gradient to ``x`` unchanged (∂g/∂x ≈ I, Athalye et al. 2018)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor,  # type: ignore[override]
                transformed: torch.Tensor) -> torch.Tensor:
        return transformed.clone()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,  # type: ignore[override]
                 grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output, None


class _Blocked(torch.autograd.Function):
    """Forward: return ``transformed``. Backward: raise :class:`BlockedGradientError` with ``ctx.message``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor,  # type: ignore[override]
                transformed: torch.Tensor, message: str) -> torch.Tensor:
        ctx.message = message  # type: ignore[attr-defined]
        return transformed.clone()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,  # type: ignore[override]
                 grad_output: torch.Tensor) -> tuple[None, None, None]:
        raise BlockedGradientError(ctx.message)  # type: ignore[attr-defined]


def _apply_without_graph(x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out = transform(x.detach())
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"transform must return a tensor of the input's shape {tuple(x.shape)}, got {got}")
    return out


def bpda(x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """g(x) in the forward pass, identity Jacobian in the backward pass (BPDA, Athalye et al. 2018).

    Args:
        x: (B, 3, H, W) float32 images in [0, 1] (may require grad).
        transform: g, shape-preserving (e.g. a purifier with its generators bound); run under no_grad.

    Returns:
        g(x), same shape; if grad mode is on and ``x`` requires grad, d(output)/dx is the identity.
    """
    out = _apply_without_graph(x, transform)
    if torch.is_grad_enabled() and x.requires_grad:
        return BPDAIdentity.apply(x, out)
    return out


def gradient_blocked(x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor], message: str) -> torch.Tensor:
    """g(x) with no gradient path: a backward pass that reaches ``x`` raises BlockedGradientError(message).

    Args:
        x: (B, 3, H, W) float32 images in [0, 1].
        transform: g, shape-preserving; run under no_grad.
        message: the error text (name the module and how to get gradients).

    Returns:
        g(x), same shape; no error unless something differentiates through it with respect to ``x``.
    """
    out = _apply_without_graph(x, transform)
    if torch.is_grad_enabled() and x.requires_grad:
        return _Blocked.apply(x, out, message)
    return out
