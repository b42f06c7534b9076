"""Full-reference image metrics, SYNTH convention (DISCNet / BasicSR).

Both images are clamped to [0, 1], quantized to 8 bit (round(x * 255)) and compared over RGB in the
0..255 range, as in BasicSR's calculate_psnr / calculate_ssim used by DISCNet and by Song et al.
(arXiv 2402.13629). Computation runs in float64 with torch. LPIPS (:func:`lpips_distance`) scores the same
8-bit images, mapped back to [0, 1] (k / 255), with a given LPIPS network in float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

PSNR_CAP_DB: float = 100.0
SSIM_WINDOW: int = 11
SSIM_SIGMA: float = 1.5
#: Metrics where a lower value is better (a distance): their worst case over attacks is the maximum.
LOWER_IS_BETTER: frozenset[str] = frozenset({"lpips"})

ImageLike = torch.Tensor | np.ndarray


def to_8bit(images: ImageLike, name: str = "images") -> torch.Tensor:
    """Clamp to [0, 1] and quantize to 8-bit levels: float64 tensor B x C x H x W with values 0..255.

    Accepts float numpy arrays or tensors shaped B x C x H x W or C x H x W (a batch of one); NaN and
    integer dtypes raise ValueError.
    """
    t = torch.as_tensor(np.asarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(images).__name__}")
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.numel() == 0:
        raise ValueError(f"{name} must have shape B x C x H x W or C x H x W, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be floating point in [0, 1], got dtype {t.dtype}")
    t = t.detach().to(torch.float64)
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} contains NaN")
    return torch.round(t.clamp(0.0, 1.0) * 255.0)


def _pair(output: ImageLike, target: ImageLike) -> tuple[torch.Tensor, torch.Tensor]:
    out, tgt = to_8bit(output, "output"), to_8bit(target, "target")
    if out.shape != tgt.shape:
        raise ValueError(f"output shape {tuple(out.shape)} does not match target shape {tuple(tgt.shape)}")
    return out, tgt.to(out.device)


def psnr(
    output: ImageLike, target: ImageLike, cap: float | None = PSNR_CAP_DB,
) -> torch.Tensor:
    """Per-image PSNR in dB over all RGB pixels of 8-bit-quantized images (BasicSR convention).

    Args:
        output, target: B x C x H x W (or C x H x W) in [0, 1] (clamped), numpy or torch.
        cap: values are reported as min(PSNR, cap); identical images give ``cap`` (100 dB by default)
            instead of +inf. ``None`` disables the cap (identical images give +inf).

    Returns:
        float64 tensor (B,): 10 * log10(255^2 / MSE).
    """
    out, tgt = _pair(output, target)
    mse = ((out - tgt) ** 2).reshape(out.shape[0], -1).mean(dim=1)
    value = 10.0 * torch.log10(255.0**2 / mse)  # +inf where mse == 0
    if cap is not None:
        if not math.isfinite(cap):
            raise ValueError(f"cap must be finite or None, got {cap!r}")
        value = value.clamp(max=cap)
    return value


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalized 2-D Gaussian window (size x size, float64), outer product of 1-D kernels (sum 1)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(output: ImageLike, target: ImageLike) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004), BasicSR-style, on 8-bit-quantized images.

    11 x 11 Gaussian window with sigma 1.5, 'valid' filtering (no padding), C1 = (0.01 * 255)^2,
    C2 = (0.03 * 255)^2, population (not sample) covariances; the SSIM map is averaged per channel,
    then over channels. Matches skimage's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255) up to float rounding.

    Args:
        output, target: B x C x H x W (or C x H x W) in [0, 1] (clamped), numpy or torch; H, W >= 11.

    Returns:
        float64 tensor (B,), values in [-1, 1]; 1 for identical images.
    """
    out, tgt = _pair(output, target)
    b, c, h, w = out.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    win = gaussian_window().to(out.device).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, groups=c)

    mu1, mu2 = filt(out), filt(tgt)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filt(out * out) - mu1_sq
    s2 = filt(tgt * tgt) - mu2_sq
    s12 = filt(out * tgt) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)


def worse(metric: str) -> Callable[..., float]:
    """``max`` for a metric where lower is better (:data:`LOWER_IS_BETTER`, e.g. ``lpips``), else ``min``: the
    function picking the worst of several values of ``metric``."""
    return max if metric in LOWER_IS_BETTER else min


def lpips_distance(output: ImageLike, target: ImageLike,
                   net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Per-image LPIPS distance (Zhang et al., CVPR 2018) under the SYNTH convention.

    Both images are clamped to [0, 1] and quantized to 8 bit like PSNR and SSIM (:func:`to_8bit`), mapped back
    to [0, 1] (k / 255) and scored in float32 by ``net`` on the device of its parameters.

    Args:
        output, target: B x 3 x H x W (or 3 x H x W) in [0, 1] (clamped), numpy or torch; H, W >= 31 for the
            AlexNet trunk.
        net: an LPIPS module, e.g. :class:`udcshield.attacks.lpips.LPIPS` (``net(a, b)`` -> (B,) distances).

    Returns:
        float64 tensor (B,) on the CPU: >= 0 for non-negative linear weights (about 0..1 for the reference
        weights), 0 for identical images; lower is better.
    """
    out, tgt = _pair(output, target)
    param = next(iter(net.parameters()), None) if isinstance(net, torch.nn.Module) else None
    device = out.device if param is None else param.device
    with torch.no_grad():
        d = net((out / 255.0).to(device, torch.float32), (tgt / 255.0).to(device, torch.float32))
    return d.detach().to("cpu", torch.float64).reshape(out.shape[0])
