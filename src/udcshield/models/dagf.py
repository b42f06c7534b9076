"""DAGF: Deep Atrous Guided Filter.

Paper: V. Sundar, S. Hegde, D. Kothandaraman, K. Mitra, "Deep Atrous Guided Filter for Image
Restoration in Under Display Cameras", ECCV Workshops 2020 (RLQ-TOD UDC challenge; published size
1.12 M parameters).

Kept from the paper: two stages. (1) A low-resolution network restores a down-sampled copy of the
image with a stack of atrous (dilated) residual blocks with channel attention, the dilation rate
growing and shrinking along the stack (large receptive field at low cost); each dilated convolution is
preceded by a "smoothed dilated convolution" step — a shared, separable (one kernel for all channels,
depthwise) ``(2d-1) x (2d-1)`` filter that removes gridding artifacts (Wang & Ji, KDD 2018). (2) A
trainable guided filter (fast end-to-end guided filter of Wu et al., CVPR 2018) transfers the
low-resolution result back to full resolution: a small 1x1-convolution network turns the full-resolution
input into a guidance image; the local linear coefficients ``A, b`` are computed at low resolution with
a box filter, refined by 1x1 convolutions, bilinearly up-sampled and applied to the full-resolution
guidance: ``out = A_up * guide + b_up``.

Simplified here (say so when quoting results):

* down-sampling is average pooling by ``scale`` (the paper uses pixel-shuffle down-sampling of its
  high-resolution challenge images); the block sequence and widths are chosen to match the published
  parameter budget;
* unlike the other restorers of this package, the output is *not* ``input + residual``: it is the guided
  filter's output, which is only close to the input at initialization (the low-resolution network
  itself is residual and zero-initialized). Outputs are not clamped. Any H and W (padded to a multiple
  of ``scale`` and cropped back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from udcshield.models.blocks import ChannelAttention, box_filter, pad_to_multiple, zero_init
from udcshield.models.registry import check_image_batch, register_restorer

__all__ = ["DAGF", "AtrousBlock", "GuidedFilterUpsampler"]

DILATION_PATTERN = (1, 2, 4, 8, 4, 2)


class SharedSmoothing(nn.Module):
    """One ``k x k`` kernel shared by all channels, applied depthwise (smoothed dilated convolution,
    Wang & Ji KDD 2018, used by Sundar et al. 2020). Initialized to a delta (identity)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        weight = torch.zeros(1, 1, kernel_size, kernel_size)
        weight[0, 0, kernel_size // 2, kernel_size // 2] = 1.0
        self.weight = nn.Parameter(weight)
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W), zero padding."""
        channels = x.shape[1]
        return F.conv2d(x, self.weight.expand(channels, 1, -1, -1), padding=self.kernel_size // 2, groups=channels)


class AtrousBlock(nn.Module):
    """Residual block of two smoothed dilated 3x3 convolutions plus channel attention (Sundar et al.
    2020). (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        smooth = (lambda: SharedSmoothing(2 * dilation - 1)) if dilation > 1 else nn.Identity
        self.body = nn.Sequential(
            smooth(), nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation),
            nn.LeakyReLU(0.2, inplace=True),
            smooth(), nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation),
            ChannelAttention(channels, reduction=8 if channels >= 16 else 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual atrous block."""
        return x + self.body(x)


class GuidedFilterUpsampler(nn.Module):
    """Trainable fast guided filter (Wu et al. CVPR 2018): lift a low-resolution output ``y_lr``
    (B, 3, h, w) to full resolution using the full-resolution input ``x`` (B, 3, H, W) as guidance."""

    def __init__(self, radius: int = 1, eps: float = 1e-4, hidden: int = 16) -> None:
        super().__init__()
        self.radius, self.eps = radius, eps
        # both correction networks start at zero: guide = input, A = plain guided-filter coefficients
        self.guide = nn.Sequential(nn.Conv2d(3, hidden, 1), nn.LeakyReLU(0.2, inplace=True),
                                   zero_init(nn.Conv2d(hidden, 3, 1)))
        self.refine = nn.Sequential(nn.Conv2d(6, hidden, 1), nn.LeakyReLU(0.2, inplace=True),
                                    zero_init(nn.Conv2d(hidden, 3, 1)))

    def forward(self, x: torch.Tensor, y_lr: torch.Tensor, scale: int) -> torch.Tensor:
        """Return the (B, 3, H, W) guided-filter output."""
        guide = x + self.guide(x)
        guide_lr = F.avg_pool2d(guide, scale) if scale > 1 else guide
        mean_g = box_filter(guide_lr, self.radius)
        mean_y = box_filter(y_lr, self.radius)
        cov = box_filter(guide_lr * y_lr, self.radius) - mean_g * mean_y
        var = box_filter(guide_lr * guide_lr, self.radius) - mean_g * mean_g
        a = cov / (var + self.eps)
        a = a + self.refine(torch.cat([cov, var], dim=1))
        b = mean_y - a * mean_g
        a, b = box_filter(a, self.radius), box_filter(b, self.radius)
        if scale > 1:
            a = F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return a * guide + b


@register_restorer("dagf")
class DAGF(nn.Module):
    """Deep atrous guided filter (Sundar et al., ECCVW 2020); defaults = "paper" size.

    Input ``(B, 3, H, W)`` in [0, 1], any H and W. Output: same shape, the guided-filter output
    (not ``x + residual``), not clamped.

    Args:
        channels: width of the low-resolution network.
        blocks: number of atrous residual blocks (dilations cycle through 1, 2, 4, 8, 4, 2).
        scale: down-sampling factor of the low-resolution branch (≥ 1).
        gf_radius: box radius of the guided filter (low-resolution pixels).
        gf_eps: guided-filter regularization.
        gf_hidden: width of the guided filter's 1x1 networks.
    """

    def __init__(self, channels: int = 64, blocks: int = 15, scale: int = 2, gf_radius: int = 1, gf_eps: float = 1e-4,
                 gf_hidden: int = 16) -> None:
        super().__init__()
        for arg, value, low in (("channels", channels, 1), ("blocks", blocks, 1), ("scale", scale, 1),
                                ("gf_radius", gf_radius, 0), ("gf_hidden", gf_hidden, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"DAGF: {arg} must be an int >= {low}, got {value!r}")
        if not gf_eps > 0:
            raise ValueError(f"DAGF: gf_eps must be > 0, got {gf_eps!r}")
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*[AtrousBlock(channels, DILATION_PATTERN[i % len(DILATION_PATTERN)])
                                    for i in range(blocks)])
        self.tail = zero_init(nn.Conv2d(channels, 3, 3, padding=1))
        self.upsampler = GuidedFilterUpsampler(gf_radius, gf_eps, gf_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (B, 3, H, W); returns (B, 3, H, W) (guided-filter output, unclamped)."""
        check_image_batch(x, "DAGF input", finite=False)
        padded, (height, width) = pad_to_multiple(x, self.scale)
        x_lr = F.avg_pool2d(padded, self.scale) if self.scale > 1 else padded
        y_lr = x_lr + self.tail(self.body(self.head(x_lr)))
        return self.upsampler(padded, y_lr, self.scale)[..., :height, :width]
