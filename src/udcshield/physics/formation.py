"""Image formation behind a display: y = clip(x * k * transmission + noise, 0, saturation).

Blur is a linear (not circular) convolution computed by FFT with zero padding, output cropped to the
input size ('same'; PSF centre at index h // 2, w // 2). The DISCNet-compatible mode (Feng et al., CVPR
2021) is saturation 500, no noise, both sides tone-mapped by v / (v + 0.25). The noise option is the
usual Poisson-Gaussian sensor model (shot noise on collected electrons plus Gaussian read noise; e.g.
Foi et al., "Practical Poissonian-Gaussian noise modeling", IEEE TIP 2008).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

NOISE_KINDS: tuple[str, ...] = ("none", "poisson_gaussian")


def _check_pair(x: np.ndarray, psf: np.ndarray, xname: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64)
    k = np.asarray(psf, dtype=np.float64)
    if a.ndim != 3 or min(a.shape) < 1:
        raise ValueError(f"{xname} must have shape (C, H, W), got {a.shape}")
    if k.ndim != 3 or min(k.shape) < 1:
        raise ValueError(f"psf must have shape (C, h, w), got {k.shape}")
    if k.shape[0] != a.shape[0]:
        raise ValueError(f"psf has {k.shape[0]} channels but {xname} has {a.shape[0]}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{xname} contains NaN or Inf")
    if not np.all(np.isfinite(k)):
        raise ValueError("psf contains NaN or Inf")
    return a, k


def _fft_shape(a: np.ndarray, k: np.ndarray) -> tuple[int, int]:
    return (sfft.next_fast_len(a.shape[1] + k.shape[1] - 1, real=True), sfft.next_fast_len(a.shape[2] + k.shape[2] - 1, real=True))


def blur(scene: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Per-channel linear convolution of ``scene`` with ``psf``, same size as ``scene``.

    out[c, i, j] = sum_{p, q} scene[c, i - p + h//2, j - q + w//2] * psf[c, p, q], scene zero outside.

    Args:
        scene: (C, H, W) float, finite. psf: (C, h, w) float, finite.

    Returns:
        float64 (C, H, W).
    """
    a, k = _check_pair(scene, psf, "scene")
    _, hh, ww = a.shape
    s = _fft_shape(a, k)
    full = sfft.irfft2(sfft.rfft2(a, s=s) * sfft.rfft2(k, s=s), s=s)
    ch, cw = k.shape[1] // 2, k.shape[2] // 2
    return full[:, ch : ch + hh, cw : cw + ww]


def blur_adjoint(y: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`blur` (a correlation): <blur(x, k), y> == <x, blur_adjoint(y, k)>.

    Args:
        y: (C, H, W) float, finite. psf: (C, h, w) float, finite.

    Returns:
        float64 (C, H, W).
    """
    a, k = _check_pair(y, psf, "y")
    c, hh, ww = a.shape
    ch, cw = k.shape[1] // 2, k.shape[2] // 2
    s = _fft_shape(a, k)
    padded = np.zeros((c, s[0], s[1]))
    padded[:, ch : ch + hh, cw : cw + ww] = a
    corr = sfft.irfft2(sfft.rfft2(padded) * np.conj(sfft.rfft2(k, s=s)), s=s)
    return corr[:, :hh, :ww]


def degrade(
    scene: np.ndarray,
    psf: np.ndarray,
    *,
    transmission: float | np.ndarray = 1.0,
    saturation: float = 500.0,
    noise: str = "none",
    full_well_e: float = 15500.0,
    read_noise_e: float = 4.9,
    white_level: float = 1.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Simulate the display camera: clip(blur(scene, psf) * transmission + noise, 0, saturation).

    Args:
        scene: (C, H, W) linear HDR radiance >= 0 (1 = diffuse white).
        psf: (C, h, w) PSF, normally unit sum per channel.
        transmission: display light loss in (0, 1], a float or a (C,) vector (transmission x tint).
        saturation: clip level > 0 (DISCNet: 500).
        noise: "none" or "poisson_gaussian".
        full_well_e: electrons collected at radiance ``white_level`` (> 0).
        read_noise_e: read-noise standard deviation in electrons (>= 0).
        white_level: radiance that maps to ``full_well_e`` electrons (> 0).
        rng: generator, required when noise != "none".

    Returns:
        float64 (C, H, W) in [0, saturation].
    """
    a = np.asarray(scene, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"scene must have shape (C, H, W), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("scene contains NaN or Inf")
    if a.size and a.min() < 0:
        raise ValueError(f"scene must be >= 0 (linear radiance), min is {a.min():.3g}")
    t = np.asarray(transmission, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(a.shape[0], float(t))
    if t.shape != (a.shape[0],) or not np.all(np.isfinite(t)) or t.min() <= 0 or t.max() > 1:
        raise ValueError(f"transmission must be a float or ({a.shape[0]},) vector in (0, 1], got {transmission!r}")
    sat = float(saturation)
    if not math.isfinite(sat) or sat <= 0:
        raise ValueError(f"saturation must be a positive finite number, got {saturation!r}")
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
    y = blur(a, psf) * t[:, None, None]
    y = np.maximum(y, 0.0)  # FFT round-off can leave tiny negatives
    if noise == "poisson_gaussian":
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng (numpy Generator) is required when noise='poisson_gaussian'")
        fw = float(full_well_e)
        rn = float(read_noise_e)
        wl = float(white_level)
        if not math.isfinite(fw) or fw <= 0:
            raise ValueError(f"full_well_e must be a positive finite number, got {full_well_e!r}")
        if not math.isfinite(rn) or rn < 0:
            raise ValueError(f"read_noise_e must be finite and >= 0, got {read_noise_e!r}")
        if not math.isfinite(wl) or wl <= 0:
            raise ValueError(f"white_level must be a positive finite number, got {white_level!r}")
        electrons = rng.poisson(y * (fw / wl)).astype(np.float64)
        electrons += rng.normal(0.0, rn, size=y.shape) if rn > 0 else 0.0
        y = electrons * (wl / fw)
    return np.clip(y, 0.0, sat)
