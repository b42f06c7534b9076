"""DISCNet: dynamic skip connections conditioned on the point-spread function.

Paper: R. Feng, C. Li, H. Chen, S. Li, C. C. Loy, J. Gu, "Removing Diffraction Image Artifacts in
Under-Display Camera via Dynamic Skip Connection Network", CVPR 2021 (published size 3.80 M parameters).

What the paper describes and this module keeps:

* a restoration branch: a three-level convolutional encoder/decoder built from residual blocks, with
  stride-2 convolutions down and transposed convolutions up, predicting a residual added to the input;
* a condition encoder that sees the degraded image concatenated with the spatially stretched PSF
  kernel code (the PSF projected by PCA to a short vector, SRMD-style stretching) and produces
  condition features at every scale;
* dynamic skip connections: at every scale a filter generator reads the encoder features and the
  condition features and predicts one ``k x k`` filter per channel and pixel; those filters are applied
  to the encoder features before they are passed to the decoder.

Simplified here (say so when quoting results):

* the PSF condition is a plain ``code_dim``-vector argument ``psf_code`` (B, code_dim) or (code_dim,);
  the PCA projection of a measured PSF is not part of the model. Our pipeline calls ``model(x)`` with
  the image only: then a **learned default code** (a parameter, initialized to zeros and trained with the
  rest of the network) is used, so the network behaves as if every image came from one fixed PSF,
  which is exactly the single-device DISCNet-compatible simulation of this project;
* the filter generator is two 3x3 convolutions followed by a 1x1 projection to ``C*k*k`` channels;
  DISCNet's exact layer counts per block and its HDR-specific input handling are not reproduced;
* the last convolution is zero-initialized (untrained model = identity); outputs are not clamped.

Any H and W are accepted: the input is padded to a multiple of ``2**(levels-1)`` and cropped back.
"""

from __future__ import annotations

import torch
from torch import nn

from udcshield.models.blocks import (
    Downsample, PSFCoded, ResBlock, Upsample, apply_dynamic_filters, pad_to_multiple, stretch_code, zero_init,
)
from udcshield.models.registry import check_image_batch, register_restorer

__all__ = ["DISCNet", "DynamicSkip"]


class DynamicSkip(nn.Module):
    """Dynamic skip connection: predict per-pixel ``k x k`` filters from encoder + condition features and
    filter the encoder features with them (Feng et al. CVPR 2021). (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, cond_channels: int, kernel_size: int, hidden: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.generator = nn.Sequential(
            nn.Conv2d(channels + cond_channels, hidden, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(hidden, channels * kernel_size**2, 1))
        self.fuse = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, feat: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Filter ``feat`` with dynamic filters generated from ``feat`` and ``cond``; residual output."""
        filters = self.generator(torch.cat([feat, cond], dim=1))
        return feat + self.fuse(apply_dynamic_filters(feat, filters, self.kernel_size))


@register_restorer("discnet")
class DISCNet(PSFCoded, nn.Module):
    """PSF-conditioned restorer with dynamic skip connections (Feng et al. CVPR 2021).

    Input ``(B, 3, H, W)`` in [0, 1], any H and W; optional ``psf_code`` (B, code_dim) or (code_dim,).
    Output: same shape, ``x + residual``, not clamped. Defaults are the "paper" size (≈3.8 M parameters).

    Args:
        base_channels: channels at full resolution, doubled at every level.
        levels: number of scales (≥ 1); ``levels - 1`` down-samplings.
        blocks_per_level: residual blocks per encoder/decoder level (the bottleneck has twice as many).
        kernel_size: size of the dynamic filters (odd).
        code_dim: length of the PSF kernel code.
        cond_channels: condition-encoder channels at full resolution (doubled per level).
        generator_channels: hidden channels of the filter generators at full resolution (doubled per level).
    """

    def __init__(self, base_channels: int = 32, levels: int = 3, blocks_per_level: int = 2, kernel_size: int = 3,
                 code_dim: int = 5, cond_channels: int = 32, generator_channels: int = 48) -> None:
        super().__init__()
        for arg, value in (("base_channels", base_channels), ("levels", levels), ("blocks_per_level", blocks_per_level),
                           ("code_dim", code_dim), ("cond_channels", cond_channels),
                           ("generator_channels", generator_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DISCNet: {arg} must be an int >= 1, got {value!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"DISCNet: kernel_size must be a positive odd int, got {kernel_size!r}")
        self.levels, self.code_dim = levels, code_dim
        widths = [base_channels * 2**i for i in range(levels)]
        cond_widths = [cond_channels * 2**i for i in range(levels)]

        def stage(channels: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[ResBlock(channels) for _ in range(n)])

        self.default_code = nn.Parameter(torch.zeros(code_dim))
        # condition encoder: image ++ stretched code → features at every scale
        self.cond_head = nn.Sequential(nn.Conv2d(3 + code_dim, cond_widths[0], 3, padding=1),
                                       nn.LeakyReLU(0.1, inplace=True), ResBlock(cond_widths[0]))
        self.cond_downs = nn.ModuleList([
            nn.Sequential(Downsample(cond_widths[i], cond_widths[i + 1]), nn.LeakyReLU(0.1, inplace=True),
                          ResBlock(cond_widths[i + 1])) for i in range(levels - 1)])
        # restoration branch
        self.head = nn.Conv2d(3, widths[0], 3, padding=1)
        self.encoders = nn.ModuleList([stage(widths[i], blocks_per_level) for i in range(levels)])
        self.downs = nn.ModuleList([Downsample(widths[i], widths[i + 1]) for i in range(levels - 1)])
        self.skips = nn.ModuleList([DynamicSkip(widths[i], cond_widths[i], kernel_size, generator_channels * 2**i)
                                    for i in range(levels)])
        self.bottleneck = stage(widths[-1], blocks_per_level)
        self.ups = nn.ModuleList([Upsample(widths[i + 1], widths[i]) for i in range(levels - 1)])
        self.fuses = nn.ModuleList([nn.Conv2d(2 * widths[i], widths[i], 1) for i in range(levels - 1)])
        self.decoders = nn.ModuleList([stage(widths[i], blocks_per_level) for i in range(levels - 1)])
        self.tail = zero_init(nn.Conv2d(widths[0], 3, 3, padding=1))

    def forward(self, x: torch.Tensor, psf_code: torch.Tensor | None = None) -> torch.Tensor:
        """Restore ``x`` (B, 3, H, W); ``psf_code`` defaults to the learned code. Returns x + residual."""
        check_image_batch(x, "DISCNet input", finite=False)
        padded, (height, width) = pad_to_multiple(x, 2 ** (self.levels - 1))
        code = self._code(psf_code, x.shape[0], x)
        cond = self.cond_head(torch.cat([padded, stretch_code(code, *padded.shape[-2:])], dim=1))
        conds = [cond]
        for down in self.cond_downs:
            cond = down(cond)
            conds.append(cond)
        feat = self.head(padded)
        skips = []
        for level in range(self.levels):
            feat = self.encoders[level](feat)
            skips.append(self.skips[level](feat, conds[level]))
            if level < self.levels - 1:
                feat = self.downs[level](feat)
        feat = self.bottleneck(skips[-1])
        for level in reversed(range(self.levels - 1)):
            feat = self.ups[level](feat)
            feat = self.fuses[level](torch.cat([feat, skips[level]], dim=1))
            feat = self.decoders[level](feat)
        return x + self.tail(feat)[..., :height, :width]
