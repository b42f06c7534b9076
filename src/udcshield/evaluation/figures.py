"""Small figure renderers for the report (PNG via imageio, a scikit-image dependency; no plotting library)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from udcshield.store.atomic import atomic_file

_CHANNEL_TINT = np.array([[1.0, 0.25, 0.25], [0.25, 1.0, 0.25], [0.35, 0.45, 1.0]])


def psf_panel(psf: np.ndarray, *, decades: float = 5.0, zoom: int = 4) -> np.ndarray:
    """Log-scale view of a PSF, one tinted panel per channel side by side.

    Args:
        psf: (C, s, s) non-negative, each channel summing to 1.
        decades: dynamic range shown; values below max * 10**-decades are black.
        zoom: nearest-neighbour magnification.

    Returns:
        (zoom*s, C*zoom*s + (C-1)*zoom, 3) uint8 image.
    """
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 3 or not np.isfinite(psf).all() or (psf < 0).any():
        raise ValueError(f"psf must be (C, s, s), finite and non-negative, got shape {psf.shape}")
    panels = []
    for c, channel in enumerate(psf):
        log = np.log10(np.maximum(channel / channel.max(), 10.0 ** -decades))
        unit = (log + decades) / decades
        tint = _CHANNEL_TINT[c % len(_CHANNEL_TINT)]
        panels.append(np.kron(unit[..., None] * tint, np.ones((zoom, zoom, 1))))
        panels.append(np.zeros((panels[-1].shape[0], zoom, 3)))
    return (np.clip(np.concatenate(panels[:-1], axis=1), 0, 1) * 255).round().astype(np.uint8)


def mask_panel(mask: np.ndarray, *, zoom: int = 2) -> np.ndarray:
    """Display transmission (Y, X) in [0, 1] as a grey (zoom*Y, zoom*X, 3) uint8 image."""
    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2 or not np.isfinite(mask).all():
        raise ValueError(f"mask must be a finite 2-D array, got shape {mask.shape}")
    grey = np.kron(np.clip(mask, 0, 1), np.ones((zoom, zoom)))
    return (np.repeat(grey[..., None], 3, axis=2) * 255).round().astype(np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write an (H, W, 3) uint8 image as PNG atomically."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, image, extension=".png")
