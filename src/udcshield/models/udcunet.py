"""UDC-UNet: a U-shaped network with a condition branch and kernel-guided dynamic convolutions.

Paper: X. Liu, J. Hu, X. Chen, C. Dong, "UDC-UNet: Under-Display Camera Image Restoration via U-Shape
Dynamic Network", ECCV Workshops 2022 (AIM/MIPI 2022 UDC challenge winner; published size 14.06 M
parameters).

Kept from the paper: a four-level U-Net of residual blocks as the base network; a condition branch that
reads the degraded image and produces spatially varying condition features at every scale, which
modulate the base network's features (spatial feature transform: per-pixel scale and shift), to
handle the space-variant, brightness-dependent UDC degradation; a kernel branch that turns the PSF
prior into a code steering the convolutions of every level (kernel-guided convolution); output =
input + predicted residual.

Simplified here (say so when quoting results):

* the kernel branch takes a ``code_dim``-vector ``psf_code`` (as in :mod:`udcshield.models.discnet`) or,
  when absent (our pipeline calls ``model(x)``), a **learned default code**; an MLP maps the code to
  per-level channel gates, and the "kernel-guided convolution" is a 3x3 convolution whose output
  channels are rescaled by ``1 + gate`` — a per-channel (rank-one) modulation of the kernel rather than
  the paper's full kernel prediction;
* the condition branch is a plain strided CNN (no separate brightness/exposure handling); SFT layers
  sit after every encoder and decoder stage;
* trained in the tone-mapped [0, 1] domain; the paper's tone-mapping / HDR loss is a training choice,
  not part of this module. Last convolution zero-initialized (untrained model = identity); outputs not
  clamped. Any H and W (padded to a multiple of ``2**(levels-1)``, cropped back).
"""

from __future__ import annotations

import torch
from torch import nn

from udcshield.models.blocks import SFT, Downsample, PSFCoded, ResBlock, Upsample, pad_to_multiple, zero_init
from udcshield.models.registry import check_image_batch, register_restorer

__all__ = ["UDCUNet", "KernelGuidedConv"]


class KernelGuidedConv(nn.Module):
    """3x3 convolution whose output channels are rescaled by ``1 + gate`` with ``gate`` (B, C) predicted
    from the PSF code (simplified kernel-guided convolution of Liu et al. 2022), plus identity.
    (B, C, H, W), (B, C) → (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Residual modulated convolution."""
        return x + self.conv(x) * (1 + gate[:, :, None, None])


@register_restorer("udcunet")
class UDCUNet(PSFCoded, nn.Module):
    """U-Net with condition branch and kernel branch (Liu et al., ECCVW 2022); defaults = "paper" size.

    Input ``(B, 3, H, W)`` in [0, 1], any H and W; optional ``psf_code`` (B, code_dim) or (code_dim,).
    Output: same shape, ``x + residual``, not clamped.

    Args:
        base_channels: channels at full resolution, doubled per level.
        levels: number of scales (≥ 1).
        blocks_per_level: residual blocks per encoder/decoder stage (bottleneck: the same number).
        cond_channels: condition-branch channels at full resolution (doubled per level).
        code_dim: PSF code length; ``code_hidden``: width of the kernel-branch MLP.
    """

    def __init__(self, base_channels: int = 32, levels: int = 4, blocks_per_level: int = 5, cond_channels: int = 32,
                 code_dim: int = 5, code_hidden: int = 64) -> None:
        super().__init__()
        for arg, value in (("base_channels", base_channels), ("levels", levels), ("blocks_per_level", blocks_per_level),
                           ("cond_channels", cond_channels), ("code_dim", code_dim), ("code_hidden", code_hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"UDCUNet: {arg} must be an int >= 1, got {value!r}")
        self.levels, self.code_dim = levels, code_dim
        widths = [base_channels * 2**i for i in range(levels)]
        cond_widths = [cond_channels * 2**i for i in range(levels)]

        def stage(channels: int) -> nn.Sequential:
            return nn.Sequential(*[ResBlock(channels) for _ in range(blocks_per_level)])

        # kernel branch: code → per-level channel gates for encoder, bottleneck and decoder convolutions
        self.default_code = nn.Parameter(torch.zeros(code_dim))
        self.kernel_mlp = nn.Sequential(nn.Linear(code_dim, code_hidden), nn.LeakyReLU(0.1, inplace=True),
                                        nn.Linear(code_hidden, code_hidden), nn.LeakyReLU(0.1, inplace=True))
        self.enc_gates = nn.ModuleList([zero_init(nn.Linear(code_hidden, widths[i])) for i in range(levels)])
        self.dec_gates = nn.ModuleList([zero_init(nn.Linear(code_hidden, widths[i])) for i in range(levels - 1)])
        # condition branch
        self.cond_head = nn.Sequential(nn.Conv2d(3, cond_widths[0], 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                                       nn.Conv2d(cond_widths[0], cond_widths[0], 3, padding=1),
                                       nn.LeakyReLU(0.1, inplace=True))
        self.cond_downs = nn.ModuleList([
            nn.Sequential(Downsample(cond_widths[i], cond_widths[i + 1]), nn.LeakyReLU(0.1, inplace=True),
                          nn.Conv2d(cond_widths[i + 1], cond_widths[i + 1], 3, padding=1),
                          nn.LeakyReLU(0.1, inplace=True)) for i in range(levels - 1)])
        # base U-Net
        self.head = nn.Conv2d(3, widths[0], 3, padding=1)
        self.encoders = nn.ModuleList([stage(widths[i]) for i in range(levels - 1)])
        self.enc_kconvs = nn.ModuleList([KernelGuidedConv(widths[i]) for i in range(levels)])
        self.enc_sfts = nn.ModuleList([SFT(widths[i], cond_widths[i]) for i in range(levels)])
        self.downs = nn.ModuleList([Downsample(widths[i], widths[i + 1]) for i in range(levels - 1)])
        self.bottleneck = stage(widths[-1])
        self.ups = nn.ModuleList([Upsample(widths[i + 1], widths[i]) for i in range(levels - 1)])
        self.fuses = nn.ModuleList([nn.Conv2d(2 * widths[i], widths[i], 1) for i in range(levels - 1)])
        self.decoders = nn.ModuleList([stage(widths[i]) for i in range(levels - 1)])
        self.dec_kconvs = nn.ModuleList([KernelGuidedConv(widths[i]) for i in range(levels - 1)])
        self.dec_sfts = nn.ModuleList([SFT(widths[i], cond_widths[i]) for i in range(levels - 1)])
        self.tail = zero_init(nn.Conv2d(widths[0], 3, 3, padding=1))

    def forward(self, x: torch.Tensor, psf_code: torch.Tensor | None = None) -> torch.Tensor:
        """Restore ``x`` (B, 3, H, W); returns x + residual (unclamped)."""
        check_image_batch(x, "UDCUNet input", finite=False)
        padded, (height, width) = pad_to_multiple(x, 2 ** (self.levels - 1))
        hidden = self.kernel_mlp(self._code(psf_code, x.shape[0], x))
        cond = self.cond_head(padded)
        conds = [cond]
        for down in self.cond_downs:
            cond = down(cond)
            conds.append(cond)
        feat = self.head(padded)
        skips = []
        for level in range(self.levels):
            feat = self.encoders[level](feat) if level < self.levels - 1 else self.bottleneck(feat)
            feat = self.enc_kconvs[level](feat, self.enc_gates[level](hidden))
            feat = self.enc_sfts[level](feat, conds[level])
            if level < self.levels - 1:
                skips.append(feat)
                feat = self.downs[level](feat)
        for level in reversed(range(self.levels - 1)):
            feat = self.ups[level](feat)
            feat = self.fuses[level](torch.cat([feat, skips[level]], dim=1))
            feat = self.decoders[level](feat)
            feat = self.dec_kconvs[level](feat, self.dec_gates[level](hidden))
            feat = self.dec_sfts[level](feat, conds[level])
        return x + self.tail(feat)[..., :height, :width]
