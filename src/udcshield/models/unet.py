"""Compact residual U-Net restorer.

Follows the ResUNet baseline of Zhou et al., "Image Restoration for Under-Display Camera", CVPR 2021:
a U-Net (Ronneberger et al., MICCAI 2015) encoder/decoder with skip connections whose convolution
stages are residual blocks, predicting a residual that is added to the degraded input. No normalization
layers (common practice in restoration networks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from udcshield.models.registry import check_image_batch, register_restorer

__all__ = ["ResBlock", "ResUNet", "resunet_tiny", "pad_to_multiple"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``x`` (B, C, H, W) on the bottom/right to a multiple of ``multiple``; return it and (H, W).

    A U-Net with d down-samplings needs sides divisible by 2**d (Ronneberger et al. 2015); values
    keep their range (any float domain).

    Uses reflection where the padding is smaller than the image side, replication otherwise (tiny
    images). Crop back with ``y[..., :H, :W]``.
    """
    height, width = x.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (height, width)


def unet_features(feat: torch.Tensor, encoders: nn.ModuleList, downs: nn.ModuleList, bottleneck: nn.Module,
                  ups: nn.ModuleList, decoders: nn.ModuleList, fuses: nn.ModuleList | None = None) -> torch.Tensor:
    """Encoder-decoder pass of a U-Net (Ronneberger et al. 2015) on head features ``feat``.

    Per level: encode, keep the result as the skip, downsample; then the bottleneck; then per level,
    deepest first: upsample, concatenate the skip (upsampled features first), fuse (optional, e.g. a
    1x1 convolution) and decode. Returns the full-resolution decoder features.
    """
    skips = []
    for encoder, down in zip(encoders, downs):
        feat = encoder(feat)
        skips.append(feat)
        feat = down(feat)
    feat = bottleneck(feat)
    for level in reversed(range(len(skips))):
        feat = torch.cat([ups[level](feat), skips[level]], dim=1)
        if fuses is not None:
            feat = fuses[level](feat)
        feat = decoders[level](feat)
    return feat


class ResBlock(nn.Module):
    """conv3x3 → LeakyReLU → conv3x3, plus identity; (B, C, H, W) → (B, C, H, W) (Zhou et al. 2021)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block on a (B, C, H, W) feature map."""
        return x + self.conv2(self.act(self.conv1(x)))


@register_restorer("resunet")
class ResUNet(nn.Module):
    """Residual U-Net restorer (Zhou et al., CVPR 2021 ResUNet; Ronneberger et al. 2015 U-Net).

    Input ``(B, 3, H, W)`` tone-mapped UDC image in [0, 1], any H and W (padded internally to a
    multiple of ``2**depth`` and cropped back). Output: same shape, ``input + predicted residual``,
    not clamped. The last convolution is zero-initialized, so an untrained model is the identity.

    Args:
        base_channels: channels at full resolution; doubled at every level.
        depth: number of stride-2 down-samplings (0 gives a plain residual CNN).
        blocks_per_level: residual blocks per encoder level, decoder level and bottleneck.
    """

    def __init__(self, base_channels: int = 16, depth: int = 2, blocks_per_level: int = 1) -> None:
        super().__init__()
        for arg, value, low in (("base_channels", base_channels, 1), ("depth", depth, 0),
                                ("blocks_per_level", blocks_per_level, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"ResUNet: {arg} must be an int >= {low}, got {value!r}")
        self.depth = depth
        widths = [base_channels * 2**level for level in range(depth + 1)]

        def stage(channels: int) -> nn.Sequential:
            return nn.Sequential(*[ResBlock(channels) for _ in range(blocks_per_level)])

        self.head = nn.Conv2d(3, widths[0], 3, padding=1)
        self.encoders = nn.ModuleList([stage(widths[i]) for i in range(depth)])
        self.downs = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1) for i in range(depth)])
        self.bottleneck = stage(widths[depth])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth)])
        self.fuses = nn.ModuleList([nn.Conv2d(2 * widths[i], widths[i], 1) for i in range(depth)])
        self.decoders = nn.ModuleList([stage(widths[i]) for i in range(depth)])
        self.tail = nn.Conv2d(widths[0], 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (B, 3, H, W) in [0, 1]; returns (B, 3, H, W), ``x`` + residual (unclamped)."""
        check_image_batch(x, "ResUNet input", finite=False)
        padded, (height, width) = pad_to_multiple(x, 2**self.depth)
        feat = unet_features(self.head(padded), self.encoders, self.downs, self.bottleneck, self.ups, self.decoders,
                             self.fuses)
        residual = self.tail(feat)[..., :height, :width]
        return x + residual


@register_restorer("resunet_tiny")
def resunet_tiny(base_channels: int = 8, depth: int = 1, blocks_per_level: int = 1) -> ResUNet:
    """Tiny :class:`ResUNet` (Zhou et al. 2021; base 8, depth 1, about 10 k parameters) for tests and
    CPU demos; (B, 3, H, W) in [0, 1] → same shape."""
    return ResUNet(base_channels=base_channels, depth=depth, blocks_per_level=blocks_per_level)
