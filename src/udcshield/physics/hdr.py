"""Pseudo-HDR scenes from LDR photos.

Display flare is only visible around very bright sources (Feng et al., DISCNet, CVPR 2021, simulate
from HDR scenes and clip at 500). Photos are LDR, so after linearisation we (1) boost near-saturated
regions, which were clipped by the original camera and were probably much brighter, and (2) add a few
small synthetic light sources 8-100 times brighter than diffuse white.
"""

from __future__ import annotations

import math

import numpy as np


def _check_range(name: str, value: tuple[float, float], lower: float) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < lower or hi < lo:
        raise ValueError(f"{name} must satisfy {lower} <= low <= high < inf, got {value!r}")
    return lo, hi


def pseudo_hdr(
    linear: np.ndarray,
    rng: np.random.Generator,
    *,
    highlight_threshold: float = 0.95,
    highlight_gain: float = 20.0,
    n_light_sources: int = 2,
    light_gain_range: tuple[float, float] = (8.0, 100.0),
    light_radius_px: tuple[float, float] = (1.0, 3.0),
) -> np.ndarray:
    """Turn a linear LDR image into a plausible HDR scene.

    Highlights: with m = max over channels, s = clip((m - highlight_threshold) / (1 - highlight_threshold),
    0, 1) and a smoothstep ramp, pixels are multiplied by 1 + (highlight_gain - 1) * smoothstep(s)
    (hue kept). Light sources: ``n_light_sources`` anti-aliased discs at uniform random positions, radius
    uniform in ``light_radius_px``, peak radiance log-uniform in ``light_gain_range`` (times diffuse
    white = 1), a near-white colour with a random tint; they are added to the scene.

    Args:
        linear: (3, H, W) float linear radiance in [0, 1].
        rng: generator for all random choices.
        highlight_threshold: in (0, 1). highlight_gain: >= 1. n_light_sources: int >= 0.
        light_gain_range: (low, high), 0 < low <= high. light_radius_px: (low, high), 0 < low <= high.

    Returns:
        float64 (3, H, W), values >= 0 (up to about highlight_gain + max light gain).
    """
    x = np.asarray(linear, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] != 3 or x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"linear must have shape (3, H, W), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("linear contains NaN or Inf")
    if x.min() < -1e-6 or x.max() > 1 + 1e-6:
        raise ValueError(f"linear must lie in [0, 1], got range [{x.min():.3g}, {x.max():.3g}]")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy Generator")
    thr = float(highlight_threshold)
    if not 0 < thr < 1:
        raise ValueError(f"highlight_threshold must be in (0, 1), got {highlight_threshold!r}")
    gain = float(highlight_gain)
    if not math.isfinite(gain) or gain < 1:
        raise ValueError(f"highlight_gain must be finite and >= 1, got {highlight_gain!r}")
    if not isinstance(n_light_sources, (int, np.integer)) or n_light_sources < 0:
        raise ValueError(f"n_light_sources must be an int >= 0, got {n_light_sources!r}")
    g_lo, g_hi = _check_range("light_gain_range", light_gain_range, 1e-12)
    r_lo, r_hi = _check_range("light_radius_px", light_radius_px, 1e-12)

    x = np.clip(x, 0.0, 1.0)
    m = x.max(axis=0)
    s = np.clip((m - thr) / (1.0 - thr), 0.0, 1.0)
    s = s * s * (3.0 - 2.0 * s)
    out = x * (1.0 + (gain - 1.0) * s)[None]

    _, h, w = x.shape
    yy = np.arange(h, dtype=np.float64)[:, None]
    xx = np.arange(w, dtype=np.float64)[None, :]
    for _ in range(int(n_light_sources)):
        cy = rng.uniform(0.0, h - 1.0) if h > 1 else 0.0
        cx = rng.uniform(0.0, w - 1.0) if w > 1 else 0.0
        radius = rng.uniform(r_lo, r_hi)
        peak = math.exp(rng.uniform(math.log(g_lo), math.log(g_hi)))
        colour = 1.0 + rng.uniform(-0.2, 0.2, size=3)
        colour /= colour.max()
        dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        disc = np.clip(radius + 0.5 - dist, 0.0, 1.0)
        out += peak * colour[:, None, None] * disc[None]
    return out
