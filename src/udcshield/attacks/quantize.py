"""8-bit adversarial images: the nearest image-file levels inside the L-infinity budget."""

from __future__ import annotations

import torch

from udcshield.attacks.base import check_eps, check_projection_pair

__all__ = ["LEVELS", "quantize_linf"]

#: 8-bit levels of an image file: values k / 255, k = 0..255.
LEVELS = 255


def quantize_linf(adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The 8-bit image an attacker would deliver: each value of ``adv`` rounded to the nearest level k / 255
    that stays within the L-infinity ball of radius ``eps`` around ``x`` and in [0, 1].

    Levels are float32(k) / 255, exactly what an 8-bit image decodes to. Per element, k is round(255 adv)
    clipped to the levels inside [x - eps, x + eps] (checked exactly in float64); such a level exists for
    every eps >= 1/510 (the interval is at least one level wide), else ValueError.

    Args:
        adv: adversarial images, B x C x H x W in [0, 1] (float32 or float64), within eps of ``x``.
        x: clean images, same shape, in [0, 1].
        eps: L-infinity radius in [0, 1].

    Returns:
        float32 tensor of the shape of ``x``, values k / 255, ``max |out - x| <= eps``.
    """
    eps = check_eps(eps)
    check_projection_pair(adv, x)
    x64 = x.detach().double()
    lo, hi = (x64 - eps).clamp(min=0.0), (x64 + eps).clamp(max=1.0)
    k_lo, k_hi = torch.ceil(lo * LEVELS - 1e-9), torch.floor(hi * LEVELS + 1e-9)
    k = torch.minimum(torch.maximum(torch.round(adv.detach().double() * LEVELS), k_lo), k_hi)
    for _ in range(4):  # a level on the ball's edge may decode a hair outside it: step one level inward
        out = k.float() / LEVELS
        over = (out.double() - x64).abs() > eps
        if not bool(over.any()):
            return out
        k = torch.where(over, k - torch.sign(out.double() - x64), k)
    raise ValueError(f"eps {eps} is too small for 8-bit levels around these images (needs eps >= 1/510)")
