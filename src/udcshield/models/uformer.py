"""Uformer: a U-shaped transformer of locally-enhanced window (LeWin) blocks.

Paper: Z. Wang, X. Cun, J. Bao, W. Zhou, J. Liu, H. Li, "Uformer: A General U-Shaped Transformer for
Image Restoration", CVPR 2022. The "paper" size here is Uformer-T (embedding dim 16, two blocks per
stage, window 8; published size 5.23 M parameters).

Kept from the paper: 3x3 input projection + LeakyReLU; encoder stages of LeWin blocks (non-overlapping
window self-attention with relative position bias, then the LeFF feed-forward: linear → depthwise
3x3 conv → linear, expansion 4), a 4x4 stride-2 convolution doubling the channels between stages; a
bottleneck stage; decoder stages that up-sample with a 2x2 stride-2 transposed convolution, concatenate
the encoder features (so a decoder stage works on twice the encoder's channels) and apply LeWin blocks
carrying the learnable multi-scale restoration modulator; a 3x3 output projection whose result is
added to the input. The head dimension is the embedding dimension at every stage (Uformer-T's
heads 1, 2, 4, 8 | 16 | 16, 8, 4, 2).

Simplified / changed here:

* windows are never shifted (as in the paper's default) and padded windows at the border are masked
  (the official code pads the image instead); the image itself is padded to a multiple of
  ``2**levels`` and cropped back, so any H and W work;
* no stochastic depth, no dropout; the output projection is zero-initialized (untrained model =
  identity); outputs are not clamped.
"""

from __future__ import annotations

import torch
from torch import nn

from udcshield.models.blocks import Downsample, LeWinBlock, Upsample, pad_to_multiple, unet_features, zero_init
from udcshield.models.registry import check_image_batch, register_restorer

__all__ = ["Uformer"]


@register_restorer("uformer")
class Uformer(nn.Module):
    """U-shaped LeWin transformer restorer (Wang et al. CVPR 2022); defaults = Uformer-T ("paper" size).

    Input ``(B, 3, H, W)`` in [0, 1], any H and W. Output: same shape, ``x + residual``, not clamped.

    Args:
        embed_dim: channels after the input projection (also the per-head dimension everywhere).
        levels: number of encoder stages (each followed by a down-sampling).
        depth: LeWin blocks per stage (encoder, bottleneck and decoder).
        window: attention window side.
        expansion: LeFF hidden-size ratio.
    """

    def __init__(self, embed_dim: int = 16, levels: int = 4, depth: int = 2, window: int = 8,
                 expansion: float = 4.0) -> None:
        super().__init__()
        for arg, value in (("embed_dim", embed_dim), ("levels", levels), ("depth", depth), ("window", window)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Uformer: {arg} must be an int >= 1, got {value!r}")
        if not expansion > 0:
            raise ValueError(f"Uformer: expansion must be > 0, got {expansion!r}")
        self.levels = levels
        dims = [embed_dim * 2**i for i in range(levels + 1)]

        def stage(channels: int, modulator: bool) -> nn.Sequential:
            return nn.Sequential(*[LeWinBlock(channels, channels // embed_dim, window, expansion, modulator)
                                   for _ in range(depth)])

        self.input_proj = nn.Sequential(nn.Conv2d(3, embed_dim, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.encoders = nn.ModuleList([stage(dims[i], False) for i in range(levels)])
        self.downs = nn.ModuleList([Downsample(dims[i], dims[i + 1]) for i in range(levels)])
        self.bottleneck = stage(dims[levels], False)
        # decoder level i: up-sample to dims[i], concat skip → 2*dims[i]
        self.ups = nn.ModuleList([Upsample(dims[levels] if i == levels - 1 else 2 * dims[i + 1], dims[i])
                                  for i in range(levels)])
        self.decoders = nn.ModuleList([stage(2 * dims[i], True) for i in range(levels)])
        self.output_proj = zero_init(nn.Conv2d(2 * dims[0], 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (B, 3, H, W); returns (B, 3, H, W) = x + residual (unclamped)."""
        check_image_batch(x, "Uformer input", finite=False)
        padded, (height, width) = pad_to_multiple(x, 2**self.levels)
        feat = unet_features(self.input_proj(padded), self.encoders, self.downs, self.bottleneck, self.ups,
                             self.decoders)
        return x + self.output_proj(feat)[..., :height, :width]
