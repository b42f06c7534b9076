"""DWFormer: a lightweight transformer-style UDC restorer whose token mixer is a depthwise convolution.

Paper: Zhou et al., "DWFormer", a lightweight UDC image restorer, 2023 (published size 1.45 M
parameters; cited as listed among the candidate restorers of Song et al., arXiv 2402.13629). The idea
used here: keep the transformer block layout (pre-norm token mixer + pre-norm feed-forward network,
both residual) and the U-shaped multi-scale hierarchy, but replace self-attention by a large-kernel
depthwise convolution, which gives a large receptive field at a small parameter and FLOP cost — suited
to the wide, sparse diffraction PSF of a UDC.

Block (:class:`DWBlock`): ``x + conv1x1(DWConv_kxk(conv1x1(LN(x))))`` (token mixer, with a channel
attention gate), then ``x + GatedFFN(LN(x))`` (1x1 expand, depthwise 3x3, GELU gate, 1x1 reduce).
Network: 3x3 embedding, ``levels`` encoder stages with 4x4 stride-2 down-sampling (channels doubled),
bottleneck, decoder stages with 2x2 transposed-conv up-sampling, skip by concatenation + 1x1 reduction,
a 3x3 output convolution; output = input + residual.

Simplified / uncertain (say so when quoting results): only the general design (depthwise-convolution
token mixer in transformer-style blocks, U-shaped) is taken from the paper's description; the exact
block internals (here: 1x1 → depthwise 7x7 → GELU → channel attention → 1x1, and Restormer's gated
FFN), kernel size, widths and depths are our choices, sized to match the published parameter budget;
no dropout / drop-path. Last convolution zero-initialized (untrained
model = identity); outputs not clamped; any H and W (padded to a multiple of ``2**levels``, cropped back).
"""

from __future__ import annotations

import torch
from torch import nn

from udcshield.models.blocks import (
    ChannelAttention, Downsample, GatedFFN, LayerNorm2d, Upsample, pad_to_multiple, unet_features, zero_init,
)
from udcshield.models.registry import check_image_batch, register_restorer

__all__ = ["DWBlock", "DWFormer"]


class DWBlock(nn.Module):
    """Transformer-style block with a depthwise-convolution token mixer (DWFormer, Zhou et al. 2023).
    (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, kernel_size: int = 7, expansion: float = 2.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.mixer = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels),
            nn.GELU(), ChannelAttention(channels, reduction=4 if channels >= 8 else 1), nn.Conv2d(channels, channels, 1))
        self.norm2 = LayerNorm2d(channels)
        self.ffn = GatedFFN(channels, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-norm residual token mixing, then pre-norm residual feed-forward."""
        x = x + self.mixer(self.norm1(x))
        return x + self.ffn(self.norm2(x))


@register_restorer("dwformer")
class DWFormer(nn.Module):
    """U-shaped depthwise-convolution transformer (Zhou et al. 2023); defaults = "paper" size.

    Input ``(B, 3, H, W)`` in [0, 1], any H and W. Output: same shape, ``x + residual``, not clamped.

    Args:
        base_channels: channels at full resolution, doubled per level.
        levels: number of down-samplings.
        blocks_per_level: DW blocks per encoder/decoder stage; the bottleneck has twice as many.
        kernel_size: depthwise token-mixer kernel (odd).
        expansion: feed-forward expansion ratio.
    """

    def __init__(self, base_channels: int = 24, levels: int = 3, blocks_per_level: int = 1, kernel_size: int = 7,
                 expansion: float = 2.0) -> None:
        super().__init__()
        for arg, value in (("base_channels", base_channels), ("levels", levels), ("blocks_per_level", blocks_per_level)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DWFormer: {arg} must be an int >= 1, got {value!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"DWFormer: kernel_size must be a positive odd int, got {kernel_size!r}")
        if not expansion > 0:
            raise ValueError(f"DWFormer: expansion must be > 0, got {expansion!r}")
        self.levels = levels
        widths = [base_channels * 2**i for i in range(levels + 1)]

        def stage(channels: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[DWBlock(channels, kernel_size, expansion) for _ in range(n)])

        self.embed = nn.Conv2d(3, widths[0], 3, padding=1)
        self.encoders = nn.ModuleList([stage(widths[i], blocks_per_level) for i in range(levels)])
        self.downs = nn.ModuleList([Downsample(widths[i], widths[i + 1]) for i in range(levels)])
        self.bottleneck = stage(widths[levels], 2 * blocks_per_level)
        self.ups = nn.ModuleList([Upsample(widths[i + 1], widths[i]) for i in range(levels)])
        self.reduces = nn.ModuleList([nn.Conv2d(2 * widths[i], widths[i], 1) for i in range(levels)])
        self.decoders = nn.ModuleList([stage(widths[i], blocks_per_level) for i in range(levels)])
        self.output = zero_init(nn.Conv2d(widths[0], 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (B, 3, H, W); returns x + residual (unclamped)."""
        check_image_batch(x, "DWFormer input", finite=False)
        padded, (height, width) = pad_to_multiple(x, 2**self.levels)
        feat = unet_features(self.embed(padded), self.encoders, self.downs, self.bottleneck, self.ups, self.decoders,
                             self.reduces)
        return x + self.output(feat)[..., :height, :width]
