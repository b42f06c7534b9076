"""Scene sources: colour photos bundled with scikit-image, image files, random patches.

The photos listed in :data:`EMBEDDED_PHOTOS` ship inside the scikit-image wheel and load without
network access (checked for scikit-image 0.22-0.26). All images are returned channel-first, float64
sRGB-encoded values in [0, 1]; linearise with :func:`udcshield.physics.tonemap.srgb_to_linear`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

EMBEDDED_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)


def _to_chw_unit(img: np.ndarray, origin: str) -> np.ndarray:
    """HxW, HxWx1, HxWx2 (grey+alpha), HxWx3 or HxWx4 array of any numeric dtype -> (3, H, W) float64 in [0, 1].

    Integers are divided by their dtype maximum (uint16: v / 65535), bool gives 0/1, floats are clipped.
    """
    arr = np.asarray(img)
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    else:
        arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        shape = np.asarray(img).shape
        raise ValueError(f"{origin}: expected a grey, grey+alpha, RGB or RGBA image, got shape {shape}")
    arr = arr[..., :3] if arr.shape[-1] >= 3 else np.repeat(arr[..., :1], 3, axis=-1)
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"{origin}: empty image")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{origin}: image contains NaN or Inf")
    return np.ascontiguousarray(np.clip(arr, 0.0, 1.0).transpose(2, 0, 1))


def load_photo(name: str) -> np.ndarray:
    """Load one of :data:`EMBEDDED_PHOTOS` from scikit-image's bundled data.

    Returns:
        float64 (3, H, W), sRGB-encoded, values in [0, 1].
    """
    if name not in EMBEDDED_PHOTOS:
        raise ValueError(f"name must be one of {', '.join(EMBEDDED_PHOTOS)}; got {name!r}")
    import skimage.data

    return _to_chw_unit(getattr(skimage.data, name)(), f"photo {name!r}")


def load_photo_file(path: str | Path) -> np.ndarray:
    """Load a PNG/JPEG/TIFF (or any format imageio reads) as (3, H, W) float64 sRGB in [0, 1].

    Decoded by :func:`udcshield.data.readers.decode_image_file`: grey and grey+alpha images are replicated
    to 3 channels, palette images expanded to RGB, alpha is dropped. Integer samples are divided by their
    dtype maximum with full precision (8-bit: v / 255; 16-bit, colour PNGs included: v / 65535); float
    files are clipped to [0, 1].

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: "cannot decode image file <path>: <reason>" for an empty (0-byte) or undecodable file;
            not a 2-D grey/grey+alpha/RGB/RGBA image.
    """
    from udcshield.data.readers import decode_image_file

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    return _to_chw_unit(decode_image_file(p), f"image file {p}")


def rescale_image(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize a (C, H, W) image by ``scale`` in (0, 1] with anti-aliasing; returns float64 (C, H', W')."""
    s = float(scale)
    if not math.isfinite(s) or s <= 0 or s > 1:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    a = np.asarray(img, dtype=np.float64)
    if s == 1.0:
        return a.copy()
    from skimage.transform import rescale

    out = rescale(a.transpose(1, 2, 0), s, anti_aliasing=True, channel_axis=-1, preserve_range=True, order=1)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def extract_patches(img: np.ndarray, size: int, count: int, rng: np.random.Generator, *, scale: float = 1.0) -> np.ndarray:
    """Random square patches from a (C, H, W) image, optionally downscaled first.

    Args:
        img: (C, H, W) float array, finite.
        size: patch side in pixels (>= 1). count: number of patches (>= 0).
        rng: generator for the positions (uniform over all valid top-left corners).
        scale: resize factor in (0, 1] applied to the whole image first, so a patch shows more content.

    Returns:
        float64 (count, C, size, size), same value range as ``img``.
    """
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"img must have shape (C, H, W), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("img contains NaN or Inf")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be an int >= 0, got {count!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy Generator")
    a = rescale_image(a, scale)
    _, h, w = a.shape
    if h < size or w < size:
        raise ValueError(f"size {size} exceeds the (rescaled) image size {h}x{w}")
    out = np.empty((count, a.shape[0], size, size))
    for i in range(count):
        y = int(rng.integers(0, h - size + 1))
        x = int(rng.integers(0, w - size + 1))
        out[i] = a[:, y : y + size, x : x + size]
    return out
