"""BNUDC: a two-branched network that restores the high- and low-frequency parts separately.

Paper: J. Koh, J. Lee, S. Yoon, "BNUDC: A Two-Branched Deep Neural Network for Restoring Images from
Under-Display Cameras", CVPR 2022 (published size 4.57 M parameters).

Kept from the paper: the degraded image is split into a low-frequency component and a high-frequency
component; a high-frequency branch of dilated (atrous) residual blocks working at full resolution
restores edges and texture (large receptive field without down-sampling), a low-frequency branch with
an encoder-decoder (U-Net) restores colour, contrast and the smooth flare/haze; the two branches'
features are fused and a residual is added to the input.

Simplified here (say so when quoting results):

* the split is a fixed (not learned) separable Gaussian low-pass filter: ``low = G * x``,
  ``high = x - low``; each branch also sees the full image;
* the blocks are generic residual channel-attention blocks (RCAN-style) with dilation rates cycling
  1, 2, 4 in the high-frequency branch and plain residual blocks in the low-frequency U-Net; the fusion
  is a concatenation → 1x1 conv → channel-attention block → 3x3 conv. The paper's exact block design,
  widths and losses are not reproduced, only its parameter budget;
* last convolution zero-initialized (untrained model = identity); outputs not clamped; any H and W
  (the low-frequency U-Net pads to a multiple of ``2**(levels-1)`` and crops back).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from udcshield.models.blocks import RCAB, Downsample, ResBlock, Upsample, pad_to_multiple, zero_init
from udcshield.models.registry import check_image_batch, register_restorer

__all__ = ["BNUDC", "gaussian_lowpass"]


def gaussian_lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` (B, C, H, W) with reflect/replicate padding; same shape.

    Kernel radius ``ceil(3 sigma)``; used to split an image into low and high frequencies (BNUDC,
    Koh et al. CVPR 2022).
    """
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    height, width = x.shape[-2:]
    mode = "reflect" if radius < height and radius < width else "replicate"
    x = F.pad(x, (radius, radius, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


@register_restorer("bnudc")
class BNUDC(nn.Module):
    """Two-branch (high-/low-frequency) UDC restorer (Koh et al. CVPR 2022); defaults = "paper" size.

    Input ``(B, 3, H, W)`` in [0, 1], any H and W. Output: same shape, ``x + residual``, not clamped.

    Args:
        high_channels: width of the high-frequency (dilated) branch.
        high_blocks: number of dilated residual channel-attention blocks.
        low_channels: full-resolution width of the low-frequency U-Net (doubled per level).
        low_levels: scales of the low-frequency U-Net.
        low_blocks: residual blocks per U-Net stage.
        sigma: standard deviation (pixels) of the Gaussian that defines the low-frequency part.
    """

    def __init__(self, high_channels: int = 48, high_blocks: int = 18, low_channels: int = 28, low_levels: int = 4,
                 low_blocks: int = 2, sigma: float = 2.0) -> None:
        super().__init__()
        for arg, value in (("high_channels", high_channels), ("high_blocks", high_blocks),
                           ("low_channels", low_channels), ("low_levels", low_levels), ("low_blocks", low_blocks)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BNUDC: {arg} must be an int >= 1, got {value!r}")
        if not sigma > 0:
            raise ValueError(f"BNUDC: sigma must be > 0, got {sigma!r}")
        self.sigma, self.low_levels = float(sigma), low_levels
        widths = [low_channels * 2**i for i in range(low_levels)]
        reduction = 8 if high_channels >= 16 else 2

        def stage(channels: int) -> nn.Sequential:
            return nn.Sequential(*[ResBlock(channels) for _ in range(low_blocks)])

        # high-frequency branch (full resolution, atrous)
        self.high_head = nn.Conv2d(6, high_channels, 3, padding=1)
        self.high_body = nn.Sequential(*[RCAB(high_channels, reduction, dilation=(1, 2, 4)[i % 3])
                                         for i in range(high_blocks)])
        # low-frequency branch (U-Net)
        self.low_head = nn.Conv2d(6, widths[0], 3, padding=1)
        self.low_encoders = nn.ModuleList([stage(widths[i]) for i in range(low_levels - 1)])
        self.low_downs = nn.ModuleList([Downsample(widths[i], widths[i + 1]) for i in range(low_levels - 1)])
        self.low_bottleneck = stage(widths[-1])
        self.low_ups = nn.ModuleList([Upsample(widths[i + 1], widths[i]) for i in range(low_levels - 1)])
        self.low_fuses = nn.ModuleList([nn.Conv2d(2 * widths[i], widths[i], 1) for i in range(low_levels - 1)])
        self.low_decoders = nn.ModuleList([stage(widths[i]) for i in range(low_levels - 1)])
        # fusion
        fused = high_channels + widths[0]
        self.fusion = nn.Sequential(nn.Conv2d(fused, high_channels, 1), RCAB(high_channels, reduction))
        self.tail = zero_init(nn.Conv2d(high_channels, 3, 3, padding=1))

    def _low_branch(self, inp: torch.Tensor) -> torch.Tensor:
        padded, (height, width) = pad_to_multiple(inp, 2 ** (self.low_levels - 1))
        feat = self.low_head(padded)
        skips = []
        for encoder, down in zip(self.low_encoders, self.low_downs):
            feat = encoder(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.low_bottleneck(feat)
        for level in reversed(range(self.low_levels - 1)):
            feat = self.low_ups[level](feat)
            feat = self.low_fuses[level](torch.cat([feat, skips[level]], dim=1))
            feat = self.low_decoders[level](feat)
        return feat[..., :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (B, 3, H, W); returns x + residual (unclamped)."""
        check_image_batch(x, "BNUDC input", finite=False)
        low = gaussian_lowpass(x, self.sigma)
        high = x - low
        high_feat = self.high_body(self.high_head(torch.cat([x, high], dim=1)))
        low_feat = self._low_branch(torch.cat([x, low], dim=1))
        return x + self.tail(self.fusion(torch.cat([high_feat, low_feat], dim=1)))
