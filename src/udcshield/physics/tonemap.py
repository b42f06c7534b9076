"""Tone mapping and sRGB transfer functions.

Tone map (DISCNet convention, Feng et al., CVPR 2021): t(v) = v / (v + knee), knee = 0.25, applied to
both the degraded input and the ground truth; maps linear HDR radiance [0, inf) onto [0, 1).
sRGB transfer functions follow IEC 61966-2-1.
"""

from __future__ import annotations

import math

import numpy as np


def _as_finite(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or Inf")
    return a


def _check_knee(knee: float) -> float:
    k = float(knee)
    if not math.isfinite(k) or k <= 0:
        raise ValueError(f"knee must be a positive finite number, got {knee!r}")
    return k


def tonemap(v: np.ndarray, knee: float = 0.25) -> np.ndarray:
    """t = v / (v + knee). v: any shape, linear radiance >= 0 (float). Returns float64 in [0, 1)."""
    k = _check_knee(knee)
    a = _as_finite(v, "v")
    if a.size and a.min() < 0:
        raise ValueError(f"v must be >= 0 (linear radiance), min is {a.min():.3g}")
    return a / (a + k)


def inverse_tonemap(t: np.ndarray, knee: float = 0.25) -> np.ndarray:
    """v = knee * t / (1 - t), the inverse of :func:`tonemap`. t: any shape in [0, 1). Returns float64 >= 0."""
    k = _check_knee(knee)
    a = _as_finite(t, "t")
    if a.size and (a.min() < 0 or a.max() >= 1):
        raise ValueError(f"t must lie in [0, 1), got range [{a.min():.3g}, {a.max():.3g}]; clip it first")
    return k * a / (1.0 - a)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] (any shape) -> linear values in [0, 1], float64 (IEC 61966-2-1)."""
    a = _as_finite(x, "x")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise ValueError(f"x must lie in [0, 1], got range [{a.min():.3g}, {a.max():.3g}]")
    return np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] (any shape) -> sRGB-encoded values in [0, 1], float64 (IEC 61966-2-1)."""
    a = _as_finite(x, "x")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise ValueError(f"x must lie in [0, 1], got range [{a.min():.3g}, {a.max():.3g}]")
    return np.where(a <= 0.0031308, a * 12.92, 1.055 * np.power(a, 1.0 / 2.4) - 0.055)
