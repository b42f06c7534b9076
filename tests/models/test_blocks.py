"""Dynamic per-pixel filtering (DISCNet's dynamic skip connections) and the O(1) box filter."""

from __future__ import annotations

import pytest
import torch

from udcshield.models import blocks
from udcshield.models.blocks import apply_dynamic_filters, box_filter


def reference_dynamic_filters(feat: torch.Tensor, filters: torch.Tensor, k: int) -> torch.Tensor:
    """The definition, pixel by pixel: out[b,c,y,x] = sum_ij f[b,c,i,j,y,x] * feat[b,c,y+i-k//2,x+j-k//2]."""
    batch, channels, height, width = feat.shape
    f = filters.view(batch, channels, k, k, height, width)
    out = torch.zeros_like(feat)
    for y in range(height):
        for x in range(width):
            for i in range(k):
                for j in range(k):
                    yy, xx = y + i - k // 2, x + j - k // 2
                    if 0 <= yy < height and 0 <= xx < width:
                        out[:, :, y, x] += f[:, :, i, j, y, x] * feat[:, :, yy, xx]
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
def test_both_forms_match_the_definition(k):
    g = torch.Generator().manual_seed(k)
    feat = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64)
    filters = torch.randn(2, 3 * k * k, 6, 7, generator=g, dtype=torch.float64)
    expected = reference_dynamic_filters(feat, filters, k)
    five_d = filters.view(2, 3, k * k, 6, 7)
    torch.testing.assert_close(apply_dynamic_filters(feat, filters, k), expected)
    torch.testing.assert_close(blocks._dynamic_filters_unfold(feat, five_d, k), expected)
    torch.testing.assert_close(blocks._dynamic_filters_shifted(feat, five_d, k), expected)


def test_forms_have_the_same_gradients():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64)
    filters = torch.randn(1, 4, 9, 5, 5, generator=g, dtype=torch.float64)
    grads = []
    for form in (blocks._dynamic_filters_unfold, blocks._dynamic_filters_shifted):
        a, b = feat.clone().requires_grad_(), filters.clone().requires_grad_()
        form(a, b, 3).square().sum().backward()
        grads.append((a.grad, b.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_compiled_path_takes_the_shifted_form_and_agrees(monkeypatch):
    calls = []
    shifted = blocks._dynamic_filters_shifted
    monkeypatch.setattr(blocks, "_dynamic_filters_shifted", lambda *a: calls.append(1) or shifted(*a))
    g = torch.Generator().manual_seed(1)
    feat, filters = torch.randn(1, 2, 8, 8, generator=g), torch.randn(1, 18, 8, 8, generator=g)
    torch._dynamo.reset()
    compiled = torch.compile(apply_dynamic_filters, backend="eager")  # traces with dynamo, no C++ build
    torch.testing.assert_close(compiled(feat, filters, 3), apply_dynamic_filters(feat, filters, 3))
    assert calls, "torch.compile did not route through the shifted form"
    calls.clear()
    apply_dynamic_filters(feat, filters, 3)
    assert not calls  # eager keeps unfold


def test_box_filter_is_the_window_mean_renormalized_at_borders():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 1, 6, 5, generator=g, dtype=torch.float64)
    out = box_filter(x, 1)
    for y in range(6):
        for c in range(5):
            window = x[0, 0, max(y - 1, 0):y + 2, max(c - 1, 0):c + 2]
            torch.testing.assert_close(out[0, 0, y, c], window.mean())
    assert box_filter(x, 0) is x
