"""SRUDC: UDC restoration that models the display as a scattering medium.

Paper: B. Song, X. Chen, S. Xu, J. Zhou, "Under-Display Camera Image Restoration with Scattering
Effect", ICCV 2023 (published size 3.11 M parameters).

Kept from the paper: the display panel is treated as a homogeneous scattering medium in front of the
lens, giving an atmospheric-scattering-style formation model ``y = x * t + A * (1 - t)`` (transmission
map ``t``, scattered "ambient" light ``A``); a two-branch network: a *scattering branch* of transformer
blocks with channel-wise (transposed) self-attention estimates the scattering effect, and an *image
branch* built from convolutions (local representation) recovers the scene, guided by the scattering
branch's features.

Simplified here (say so when quoting results):

* the scattering branch predicts ``t`` (per pixel and channel, squashed into ``[t_min, 1]``) and ``A``
  (per channel, from global pooling) and this module inverts the formation model explicitly,
  ``J = (y - A (1 - t)) / t``; ``J`` is given to the image branch as an extra input. The paper supervises
  its scattering branch with its own simulated scattering data and losses; here it is learned end to
  end from the restoration loss only, so ``t`` and ``A`` are latent variables, not calibrated physics;
* guidance = spatial feature transform (per-pixel scale/shift) of the image branch's encoder features by
  the scattering features at every scale; the image branch is a residual-block U-Net;
* the channel self-attention is Restormer's MDTA (Zamir et al. CVPR 2022) and the scattering branch is
  an encoder only (its features at every scale guide the image branch); widths/depths are chosen to
  match the published parameter budget;
* last convolution zero-initialized and ``t`` initialized near 1 (untrained model ≈ identity); outputs
  are not clamped; any H and W (padded to a multiple of ``2**(levels-1)`` and cropped back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from udcshield.models.blocks import (
    SFT, Downsample, GatedFFN, LayerNorm2d, ResBlock, Upsample, pad_to_multiple, zero_init,
)
from udcshield.models.registry import check_image_batch, register_restorer

__all__ = ["SRUDC", "ChannelSelfAttention", "ScatteringBlock"]


class ChannelSelfAttention(nn.Module):
    """Multi-head transposed (channel-wise) self-attention: attention maps are C/h x C/h, so the cost is
    linear in the number of pixels (MDTA of Restormer, Zamir et al. CVPR 2022; the scattering branch of
    Song et al. ICCV 2023). (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"ChannelSelfAttention: channels {channels} not divisible by heads {heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.qkv_dw = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channel attention over all pixels of each image."""
        batch, channels, height, width = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        shape = (batch, self.heads, channels // self.heads, height * width)
        q, k, v = q.reshape(shape), k.reshape(shape), v.reshape(shape)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(-1) @ v
        return self.proj(out.reshape(batch, channels, height, width))


class ScatteringBlock(nn.Module):
    """Transformer block of the scattering branch: pre-norm channel self-attention and pre-norm gated
    depthwise FFN, both residual (Song et al. ICCV 2023, Restormer-style). (B, C, H, W) → same."""

    def __init__(self, channels: int, heads: int, expansion: float = 2.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.attn = ChannelSelfAttention(channels, heads)
        self.norm2 = LayerNorm2d(channels)
        self.ffn = GatedFFN(channels, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual attention, then residual FFN."""
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


@register_restorer("srudc")
class SRUDC(nn.Module):
    """Scattering-aware two-branch restorer (Song et al. ICCV 2023); defaults = "paper" size.

    Input ``(B, 3, H, W)`` in [0, 1], any H and W. Output: same shape, ``x + residual``, not clamped.

    Args:
        scatter_channels: scattering-branch width at full resolution (doubled per level).
        image_channels: image-branch width at full resolution (doubled per level).
        levels: number of scales of both branches.
        scatter_blocks: transformer blocks per scattering-branch level.
        image_blocks: residual blocks per image-branch stage.
        heads: attention heads at full resolution (doubled per level).
        t_min: lower bound of the transmission map.
    """

    def __init__(self, scatter_channels: int = 24, image_channels: int = 48, levels: int = 3, scatter_blocks: int = 2,
                 image_blocks: int = 2, heads: int = 1, t_min: float = 0.1) -> None:
        super().__init__()
        for arg, value in (("scatter_channels", scatter_channels), ("image_channels", image_channels),
                           ("levels", levels), ("scatter_blocks", scatter_blocks), ("image_blocks", image_blocks),
                           ("heads", heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SRUDC: {arg} must be an int >= 1, got {value!r}")
        if not 0 < t_min < 1:
            raise ValueError(f"SRUDC: t_min must lie in (0, 1), got {t_min!r}")
        self.levels, self.t_min = levels, float(t_min)
        s_widths = [scatter_channels * 2**i for i in range(levels)]
        i_widths = [image_channels * 2**i for i in range(levels)]

        def res_stage(channels: int) -> nn.Sequential:
            return nn.Sequential(*[ResBlock(channels) for _ in range(image_blocks)])

        # scattering branch (encoder of channel-attention transformer blocks)
        self.s_head = nn.Conv2d(3, s_widths[0], 3, padding=1)
        self.s_stages = nn.ModuleList([
            nn.Sequential(*[ScatteringBlock(s_widths[i], heads * 2**i) for _ in range(scatter_blocks)])
            for i in range(levels)])
        self.s_downs = nn.ModuleList([Downsample(s_widths[i], s_widths[i + 1]) for i in range(levels - 1)])
        self.t_head = nn.Conv2d(s_widths[0], 3, 3, padding=1)
        nn.init.zeros_(self.t_head.weight)
        nn.init.constant_(self.t_head.bias, 4.0)  # sigmoid(4) ≈ 0.98: start close to "no scattering"
        self.a_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(s_widths[-1], 3, 1))
        # image branch (residual U-Net guided by the scattering features)
        self.i_head = nn.Conv2d(6, i_widths[0], 3, padding=1)
        self.i_encoders = nn.ModuleList([res_stage(i_widths[i]) for i in range(levels - 1)])
        self.i_sfts = nn.ModuleList([SFT(i_widths[i], s_widths[i]) for i in range(levels)])
        self.i_downs = nn.ModuleList([Downsample(i_widths[i], i_widths[i + 1]) for i in range(levels - 1)])
        self.i_bottleneck = res_stage(i_widths[-1])
        self.i_ups = nn.ModuleList([Upsample(i_widths[i + 1], i_widths[i]) for i in range(levels - 1)])
        self.i_fuses = nn.ModuleList([nn.Conv2d(2 * i_widths[i], i_widths[i], 1) for i in range(levels - 1)])
        self.i_decoders = nn.ModuleList([res_stage(i_widths[i]) for i in range(levels - 1)])
        self.tail = zero_init(nn.Conv2d(i_widths[0], 3, 3, padding=1))

    def scattering(self, padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Return transmission ``t`` (B, 3, H, W) in [t_min, 1], ambient light ``A`` (B, 3, 1, 1) and the
        scattering features at every scale, for a padded input."""
        feat = self.s_head(padded)
        feats = []
        for level in range(self.levels):
            feat = self.s_stages[level](feat)
            feats.append(feat)
            if level < self.levels - 1:
                feat = self.s_downs[level](feat)
        t = self.t_min + (1 - self.t_min) * torch.sigmoid(self.t_head(feats[0]))
        ambient = torch.sigmoid(self.a_head(feats[-1]))
        return t, ambient, feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (B, 3, H, W); returns x + residual (unclamped)."""
        check_image_batch(x, "SRUDC input", finite=False)
        padded, (height, width) = pad_to_multiple(x, 2 ** (self.levels - 1))
        t, ambient, s_feats = self.scattering(padded)
        inverted = (padded - ambient * (1 - t)) / t
        feat = self.i_head(torch.cat([padded, inverted], dim=1))
        skips = []
        for level in range(self.levels):
            feat = self.i_encoders[level](feat) if level < self.levels - 1 else self.i_bottleneck(feat)
            feat = self.i_sfts[level](feat, s_feats[level])
            if level < self.levels - 1:
                skips.append(feat)
                feat = self.i_downs[level](feat)
        for level in reversed(range(self.levels - 1)):
            feat = self.i_ups[level](feat)
            feat = self.i_fuses[level](torch.cat([feat, skips[level]], dim=1))
            feat = self.i_decoders[level](feat)
        return x + self.tail(feat)[..., :height, :width]
