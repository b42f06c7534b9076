"""Building blocks shared by the UDC restorers of :mod:`udcshield.models`.

Every block maps feature maps ``(B, C, H, W)`` to feature maps and keeps the spatial size unless its
name says otherwise (``Downsample`` halves, ``Upsample`` doubles). Nothing here clamps values. The
blocks are generic restoration components described in the papers cited at each class; the
restorers that use them cite their own paper in their module docstring.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from udcshield.models.unet import ResBlock, pad_to_multiple, unet_features

__all__ = [
    "ResBlock",
    "pad_to_multiple",
    "zero_init",
    "LayerNorm2d",
    "ChannelAttention",
    "RCAB",
    "Downsample",
    "Upsample",
    "SFT",
    "GatedFFN",
    "apply_dynamic_filters",
    "box_filter",
    "WindowAttention",
    "LeFF",
    "LeWinBlock",
    "stretch_code",
    "PSFCoded",
    "unet_features",
]


def zero_init(module: nn.Module) -> nn.Module:
    """Zero the weight and bias of ``module`` (e.g. a restorer's last convolution, so that an untrained
    residual restorer is the identity, as in ResUNet of Zhou et al. 2021); returns ``module``."""
    for name in ("weight", "bias"):
        param = getattr(module, name, None)
        if isinstance(param, torch.Tensor):
            nn.init.zeros_(param)
    return module


def stretch_code(code: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Spatially stretch a per-image code ``(B, D)`` to a map ``(B, D, H, W)`` (the kernel-code
    stretching of SRMD, Zhang et al. CVPR 2018, reused by DISCNet, Feng et al. CVPR 2021)."""
    return code[:, :, None, None].expand(-1, -1, height, width)


class LayerNorm2d(nn.Module):
    """Layer normalization over the channel dimension of a ``(B, C, H, W)`` map (per pixel), as used by
    the transformer blocks of Restormer (Zamir et al. CVPR 2022) and NAFNet (Chen et al. ECCV 2022)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize each pixel's channel vector; (B, C, H, W) → (B, C, H, W)."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (Hu et al. CVPR 2018; RCAN, Zhang et al. ECCV 2018)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the channels of ``x`` (B, C, H, W) by a global-context gate in (0, 1)."""
        return x * self.body(x)


class RCAB(nn.Module):
    """Residual channel-attention block: conv-act-conv-CA plus identity (RCAN, Zhang et al. ECCV 2018).

    ``dilation`` > 1 makes both convolutions atrous (Yu & Koltun, ICLR 2016).
    """

    def __init__(self, channels: int, reduction: int = 8, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation), ChannelAttention(channels, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        return x + self.body(x)


class Downsample(nn.Module):
    """Stride-2 4x4 convolution, ``in_ch`` → ``out_ch``; halves H and W (which must be even)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, H, W) → (B, out_ch, H/2, W/2)."""
        return self.conv(x)


class Upsample(nn.Module):
    """2x2 stride-2 transposed convolution, ``in_ch`` → ``out_ch``; doubles H and W."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, H, W) → (B, out_ch, 2H, 2W)."""
        return self.conv(x)


class SFT(nn.Module):
    """Spatial feature transform: ``x * (1 + scale(c)) + shift(c)`` with scale/shift predicted from a
    condition map ``c`` (Wang et al., SFT-GAN, CVPR 2018). Zero-initialized, so it starts as identity."""

    def __init__(self, channels: int, cond_channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or cond_channels
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 1), nn.LeakyReLU(0.1, inplace=True))
        self.scale = zero_init(nn.Conv2d(hidden, channels, 1))
        self.shift = zero_init(nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Modulate ``x`` (B, C, H, W) by ``cond`` (B, Cc, H, W)."""
        hidden = self.shared(cond)
        return x * (1 + self.scale(hidden)) + self.shift(hidden)


class GatedFFN(nn.Module):
    """Depthwise-convolution feed-forward network: 1x1 expand → depthwise 3x3 → GELU gate → 1x1 reduce
    (the gated-Dconv FFN of Restormer, Zamir et al. CVPR 2022). (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, expansion: float = 2.0) -> None:
        super().__init__()
        hidden = max(1, int(round(channels * expansion)))
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project_out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Position-wise gated feed-forward with local (3x3) mixing."""
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


def apply_dynamic_filters(feat: torch.Tensor, filters: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Apply per-pixel, per-channel ``k x k`` filters to ``feat``.

    ``feat`` is (B, C, H, W); ``filters`` is (B, C*k*k, H, W) (one k x k kernel per channel and pixel,
    as predicted by the filter generators of dynamic filter networks, Jia et al. NeurIPS 2016, and of
    DISCNet's dynamic skip connections, Feng et al. CVPR 2021). Zero padding at the borders.
    Returns (B, C, H, W).
    """
    batch, channels, height, width = feat.shape
    filters = filters.view(batch, channels, kernel_size * kernel_size, height, width)
    if torch.compiler.is_compiling():
        return _dynamic_filters_shifted(feat, filters, kernel_size)
    return _dynamic_filters_unfold(feat, filters, kernel_size)


def _dynamic_filters_unfold(feat: torch.Tensor, filters: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """:func:`apply_dynamic_filters` through an explicit (B, C, k*k, H, W) patch tensor (unfold); the
    fastest eager form. ``filters`` is (B, C, k*k, H, W)."""
    patches = F.unfold(feat, kernel_size, padding=kernel_size // 2)  # (B, C*k*k, H*W)
    return (patches.view(filters.shape) * filters).sum(2)


def _dynamic_filters_shifted(feat: torch.Tensor, filters: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The same sum as :func:`apply_dynamic_filters` written as k*k shifted multiply-adds.

    ``filters`` is (B, C, k*k, H, W). Eagerly this is k*k small kernels and slower than unfold; under
    ``torch.compile`` it fuses into one pass without the (B, C*k*k, H*W) patch tensor and its col2im
    backward (2.7-4.6x faster than compiled unfold per forward + backward on CPU, benchmarks/dynamic_filter.py).
    """
    height, width = feat.shape[-2:]
    pad = kernel_size // 2
    padded = F.pad(feat, (pad, pad, pad, pad))
    out = padded[:, :, :height, :width] * filters[:, :, 0]
    for index in range(1, kernel_size * kernel_size):
        dy, dx = divmod(index, kernel_size)
        out = out + padded[:, :, dy:dy + height, dx:dx + width] * filters[:, :, index]
    return out


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, computed with cumulative sums and renormalized at the borders (the
    O(1) box filter of He et al., Guided Image Filtering, TPAMI 2013). (B, C, H, W) → same shape."""
    if radius <= 0:
        return x
    height, width = x.shape[-2:]
    ones = x.new_ones(1, 1, height, width)

    def summed(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t, (radius + 1, radius, radius + 1, radius))
        t = t.cumsum(-2)
        t = t[..., 2 * radius + 1:, :] - t[..., : -(2 * radius + 1), :]
        t = t.cumsum(-1)
        return t[..., 2 * radius + 1:] - t[..., : -(2 * radius + 1)]

    return summed(x) / summed(ones)


class WindowAttention(nn.Module):
    """Non-overlapping window multi-head self-attention with a learned relative position bias (Swin,
    Liu et al. ICCV 2021; the W-MSA of Uformer's LeWin block, Wang et al. CVPR 2022).

    Works on token maps (B, H, W, C) of any H and W: the map is zero-padded to a multiple of the window
    and padded keys are masked out, so results do not depend on the padding.
    """

    def __init__(self, channels: int, heads: int, window: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"WindowAttention: channels {channels} not divisible by heads {heads}")
        self.heads, self.window = heads, window
        self.scale = (channels // heads) ** -0.5
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("bias_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def _partition(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        w = self.window
        x = x.view(batch, height // w, w, width // w, w, channels).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(-1, w * w, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) tokens → (B, H, W, C)."""
        batch, height, width, channels = x.shape
        w = self.window
        pad_h, pad_w = (-height) % w, (-width) % w
        mask = None
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
            valid = x.new_zeros(1, height + pad_h, width + pad_w, 1)
            valid[:, :height, :width] = 1
            # (nW, 1, 1, N): -inf on padded keys; every window holds at least one real pixel
            mask = self._partition(valid).squeeze(-1)[:, None, None, :]
            mask = torch.zeros_like(mask).masked_fill(mask == 0, float("-inf"))
        hp, wp = height + pad_h, width + pad_w
        windows = self._partition(x)  # (B*nW, N, C)
        n = w * w
        qkv = self.qkv(windows).view(-1, n, 3, self.heads, channels // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B*nW, heads, N, N)
        bias = self.bias_table[self.bias_index.reshape(-1)].view(n, n, self.heads).permute(2, 0, 1)
        attn = attn + bias[None]
        if mask is not None:
            n_windows = mask.shape[0]
            attn = (attn.view(batch, n_windows, self.heads, n, n) + mask[None]).view(-1, self.heads, n, n)
        out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, channels)
        out = self.proj(out)
        out = out.view(batch, hp // w, wp // w, w, w, channels).permute(0, 1, 3, 2, 4, 5)
        return out.reshape(batch, hp, wp, channels)[:, :height, :width]


class LeFF(nn.Module):
    """Locally-enhanced feed-forward network: linear expand → GELU → depthwise 3x3 conv → GELU → linear
    (Uformer, Wang et al. CVPR 2022). Tokens (B, H, W, C) → (B, H, W, C)."""

    def __init__(self, channels: int, expansion: float = 4.0) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.fc1 = nn.Linear(channels, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token-wise MLP with a depthwise convolution in the hidden space."""
        x = F.gelu(self.fc1(x)).permute(0, 3, 1, 2)
        x = F.gelu(self.dwconv(x)).permute(0, 2, 3, 1)
        return self.fc2(x)


class LeWinBlock(nn.Module):
    """Locally-enhanced window transformer block: ``x + W-MSA(LN(x))`` then ``x + LeFF(LN(x))`` (Uformer,
    Wang et al. CVPR 2022). Optional learnable multi-scale restoration modulator (a ``window x window x C``
    bias added to the tokens of every window before attention). Maps (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, heads: int, window: int, expansion: float = 4.0,
                 modulator: bool = False) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(channels)
        self.attn = WindowAttention(channels, heads, window)
        self.norm2 = nn.LayerNorm(channels)
        self.ffn = LeFF(channels, expansion)
        self.modulator = nn.Parameter(torch.zeros(window, window, channels)) if modulator else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        tokens = x.permute(0, 2, 3, 1)
        normed = self.norm1(tokens)
        if self.modulator is not None:
            height, width = normed.shape[1:3]
            reps_h, reps_w = math.ceil(height / self.window), math.ceil(width / self.window)
            normed = normed + self.modulator.repeat(reps_h, reps_w, 1)[:height, :width]
        tokens = tokens + self.attn(normed)
        tokens = tokens + self.ffn(self.norm2(tokens))
        return tokens.permute(0, 3, 1, 2)


class PSFCoded:
    """Mixin for restorers conditioned on a PSF code (DISCNet, Feng et al. 2021; UDCUNet, Liu et al. 2022):
    ``self.code_dim`` entries per image, ``self.default_code`` (a learned (code_dim,) parameter) when
    none is given."""

    code_dim: int
    default_code: torch.Tensor

    def _code(self, psf_code: torch.Tensor | None, batch: int, ref: torch.Tensor) -> torch.Tensor:
        """(batch, code_dim) codes in ``ref``'s dtype from None, one (code_dim,) code or (batch, code_dim)."""
        if psf_code is None:
            return self.default_code.to(ref.dtype)[None].expand(batch, -1)
        if psf_code.ndim == 1:
            psf_code = psf_code[None].expand(batch, -1)
        if psf_code.shape != (batch, self.code_dim):
            raise ValueError(f"{type(self).__name__}: psf_code must have shape ({batch}, {self.code_dim}) or "
                             f"({self.code_dim},), got {tuple(psf_code.shape)}")
        return psf_code.to(ref.dtype)
