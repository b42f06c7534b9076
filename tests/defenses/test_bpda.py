"""BPDA (Athalye, Carlini, Wagner, ICML 2018) and the gradient block used for non-adaptive evaluation."""

import pytest
import torch

from udcshield.defenses import BlockedGradientError, bpda, gradient_blocked


def transform(x):
    return (x * 0.5 + 0.25).clamp(0, 1) ** 2


def test_bpda_forward_is_exact_and_backward_is_identity():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    out = bpda(x, transform)
    torch.testing.assert_close(out, transform(x.detach()), rtol=0, atol=0)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (g,) = torch.autograd.grad((out * w).sum(), x)
    torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_bpda_without_grad_returns_plain_tensor():
    x = torch.rand(1, 3, 4, 4)
    out = bpda(x, transform)
    assert not out.requires_grad


def test_blocked_gradient_raises_with_message():
    x = torch.rand(1, 3, 4, 4).requires_grad_(True)
    out = gradient_blocked(x, transform, "blocked here")
    torch.testing.assert_close(out, transform(x.detach()), rtol=0, atol=0)
    with pytest.raises(BlockedGradientError, match="blocked here"):
        out.sum().backward()
    assert x.grad is None


def test_transform_must_preserve_shape():
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="transform"):
        bpda(x, lambda t: t[..., :2])
    with pytest.raises(ValueError, match="transform"):
        gradient_blocked(x, lambda t: None, "m")
