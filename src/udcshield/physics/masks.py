"""Display masks: the binary transmission of an OLED panel in front of the camera lens.

A display is a unit cell (one pixel, pitch ``p``) tiled over the lens aperture. Light reaches the sensor
only through the transparent part of each cell. Layouts follow the panels studied by Zhou et al.,
"Image Restoration for Under-Display Camera", CVPR 2021 (T-OLED: one vertical transparent stripe of
about 5/21 of the cell; P-OLED: a pentile layout with several openings of different size), plus a
circular opening, a clear aperture ("open") and any user-supplied unit cell (PNG).

Coordinates: the mask is sampled at the centres of ``n x n`` samples spaced ``sample_um`` apart, the
array centre is the optical axis and a cell centre. Row index = y (down), column index = x (right).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

MASK_KINDS: tuple[str, ...] = ("toled", "poled", "circle", "open", "user")

# P-OLED (pentile-like) unit cell: elliptical openings, one per quadrant, of different size.
# (centre u, centre v, share of the total open area, aspect = semi-axis x / semi-axis y)
_POLED_OPENINGS: tuple[tuple[float, float, float, float], ...] = (
    (0.25, 0.25, 0.35, 1.0),
    (0.75, 0.75, 0.35, 1.0),
    (0.75, 0.25, 0.18, 0.5),
    (0.25, 0.75, 0.12, 2.0),
)


def _check_positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _poled_ellipses(open_ratio: float) -> list[tuple[float, float, float, float]]:
    """Ellipses (cu, cv, semi-axis u, semi-axis v) in cell units for a P-OLED cell."""
    out = []
    for cu, cv, share, aspect in _POLED_OPENINGS:
        area = share * open_ratio
        a = math.sqrt(area * aspect / math.pi)
        b = math.sqrt(area / (math.pi * aspect))
        out.append((cu, cv, a, b))
    return out


def max_open_ratio(kind: str) -> float:
    """Largest open_ratio the layout of ``kind`` can realise without openings overlapping."""
    if kind == "toled":
        return 1.0
    if kind == "circle":
        return math.pi / 4.0
    if kind == "poled":
        # each ellipse must fit in its quadrant: semi-axes <= 0.25
        limits = []
        for _, _, share, aspect in _POLED_OPENINGS:
            k = max(aspect, 1.0 / aspect)
            limits.append(0.25**2 * math.pi / (share * k))
        return min(limits)
    if kind in ("open", "user"):
        return 1.0
    raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")


def _validate_user_mask(user_mask: np.ndarray | None) -> np.ndarray:
    if user_mask is None:
        raise ValueError("user_mask is required when kind='user'")
    cell = np.asarray(user_mask, dtype=np.float64)
    if cell.ndim != 2 or min(cell.shape) < 1:
        raise ValueError(f"user_mask must be a non-empty 2-D array, got shape {cell.shape}")
    if not np.all(np.isfinite(cell)):
        raise ValueError("user_mask contains NaN or Inf")
    if cell.min() < 0 or cell.max() > 1:
        raise ValueError("user_mask values must lie in [0, 1]")
    if cell.max() <= 0:
        raise ValueError("user_mask is fully opaque (no open pixel)")
    return cell


def _min_run(cell: np.ndarray) -> int:
    """Shortest run of equal values (open or closed) along rows and columns of a binary cell."""
    best = max(cell.shape)
    b = cell > 0.5
    for arr in (b, b.T):
        for row in arr:
            edges = np.flatnonzero(np.diff(row.astype(np.int8))) + 1
            if edges.size == 0:
                continue
            bounds = np.concatenate(([0], edges, [row.size]))
            best = min(best, int(np.diff(bounds).min()))
    return max(best, 1)


def narrowest_feature_um(kind: str, pitch_um: float, open_ratio: float, user_mask: np.ndarray | None = None) -> float | None:
    """Width (µm) of the narrowest opening (or bar) of the layout; None for the clear aperture.

    Used to choose the pupil sampling so that each opening spans several samples.
    """
    pitch = _check_positive("pitch_um", pitch_um)
    if kind == "open":
        return None
    if kind == "toled":
        return pitch * min(open_ratio, 1.0 - open_ratio) if open_ratio < 1.0 else None
    if kind == "circle":
        return pitch * 2.0 * math.sqrt(open_ratio / math.pi)
    if kind == "poled":
        return pitch * 2.0 * min(min(a, b) for _, _, a, b in _poled_ellipses(open_ratio))
    if kind == "user":
        cell = _validate_user_mask(user_mask)
        return pitch * _min_run(cell) / max(cell.shape)
    raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised SplitMix64 hash (uint64 -> uint64), used for order-free per-cell random flips."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _cell_transmission(kind: str, u: np.ndarray, v: np.ndarray, open_ratio: float, cell: np.ndarray | None) -> np.ndarray:
    """Transmission of the unit cell at cell coordinates u (x), v (y) in [0, 1); broadcasts."""
    if kind == "toled":
        half = open_ratio / 2.0
        return (np.abs(u - 0.5) < half).astype(np.float64) * np.ones_like(v)
    if kind == "circle":
        rho = math.sqrt(open_ratio / math.pi)
        return ((u - 0.5) ** 2 + (v - 0.5) ** 2 < rho * rho).astype(np.float64)
    if kind == "poled":
        out = np.zeros(np.broadcast_shapes(u.shape, v.shape))
        for cu, cv, a, b in _poled_ellipses(open_ratio):
            out[((u - cu) / a) ** 2 + ((v - cv) / b) ** 2 < 1.0] = 1.0
        return out
    if kind == "user":
        assert cell is not None
        h, w = cell.shape
        iu = np.minimum((u * w).astype(np.int64), w - 1)
        iv = np.minimum((v * h).astype(np.int64), h - 1)
        return cell[iv, iu]
    raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")


def display_mask(
    kind: str,
    *,
    pitch_um: float,
    open_ratio: float,
    sample_um: float,
    extent_um: float,
    user_mask: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    random_tile_flip: bool = False,
    antialias: int = 1,
) -> np.ndarray:
    """Tiled display transmission over a centred square of side ``extent_um``.

    Args:
        kind: "toled" (one vertical stripe per cell, open width = open_ratio * pitch; Zhou et al. CVPR
            2021 report about 5/21), "poled" (pentile-like: four elliptical openings of different size,
            total area fraction open_ratio), "circle" (one round opening, area fraction open_ratio),
            "open" (no display: all ones) or "user" (tile ``user_mask``, one array = one cell).
        pitch_um: display pixel pitch (µm), > 0. Typical 84-336, 168 common.
        open_ratio: open area fraction of a cell in (0, max_open_ratio(kind)]; ignored for "open"/"user".
        sample_um: sample spacing (µm), > 0.
        extent_um: side of the sampled square (µm), >= sample_um; n = round(extent_um / sample_um).
        user_mask: 2-D unit cell with values in [0, 1] (kind="user").
        rng: generator for ``random_tile_flip`` (only the first draw is used, as a hash key).
        random_tile_flip: flip each cell left-right and/or up-down at random (irregular panels).
        antialias: supersampling factor a >= 1; a > 1 returns the open-area coverage of each sample
            (values in [0, 1]) from a x a sub-samples instead of point samples.

    Returns:
        float64 array (n, n); values in {0, 1} when antialias == 1, in [0, 1] otherwise.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    pitch = _check_positive("pitch_um", pitch_um)
    dx = _check_positive("sample_um", sample_um)
    extent = _check_positive("extent_um", extent_um)
    if not isinstance(antialias, (int, np.integer)) or antialias < 1:
        raise ValueError(f"antialias must be an int >= 1, got {antialias!r}")
    n = int(round(extent / dx))
    if n < 1:
        raise ValueError(f"extent_um ({extent_um}) must be at least sample_um ({sample_um})")
    if n > 20000:
        raise ValueError(f"extent_um / sample_um gives {n} samples per side (limit 20000)")
    cell = None
    if kind == "user":
        cell = _validate_user_mask(user_mask)
    elif kind != "open":
        r = _check_positive("open_ratio", open_ratio)
        if r > max_open_ratio(kind) + 1e-12:
            raise ValueError(f"open_ratio {open_ratio} exceeds the maximum {max_open_ratio(kind):.3f} for kind {kind!r}")
    if kind == "open":
        return np.ones((n, n), dtype=np.float64)
    key = None
    if random_tile_flip:
        if rng is None:
            raise ValueError("rng is required when random_tile_flip=True")
        key = np.uint64(int(rng.integers(0, 2**63 - 1)))

    centres = (np.arange(n) - (n - 1) / 2.0) * dx
    acc = np.zeros((n, n), dtype=np.float64)
    offsets = (np.arange(antialias) + 0.5) / antialias - 0.5
    for oy in offsets:
        y = (centres + oy * dx)[:, None] / pitch + 0.5
        iy = np.floor(y)
        v = y - iy
        for ox in offsets:
            x = (centres + ox * dx)[None, :] / pitch + 0.5
            ix = np.floor(x)
            u = x - ix
            if key is not None:
                cid = (iy.astype(np.int64) * 1_000_003 + ix.astype(np.int64)).astype(np.uint64)
                h = _splitmix64(cid ^ key)
                flip_u = (h & np.uint64(1)).astype(bool)
                flip_v = (h & np.uint64(2)).astype(bool)
                uu = np.where(flip_u, 1.0 - u, u)
                vv = np.where(flip_v, 1.0 - v, v)
                acc += _cell_transmission(kind, uu, vv, open_ratio, cell)
            else:
                acc += _cell_transmission(kind, u, v, open_ratio, cell)
    acc /= antialias * antialias
    return acc


def load_user_mask(path: str | Path) -> np.ndarray:
    """Read a unit-cell PNG (grey, grey+alpha, RGB or RGBA; 8 or 16 bit) and binarise it at half the dtype's range.

    Returns:
        float64 array (h, w) with values in {0, 1} (1 = transparent).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded as an image, or it has no open pixel.
    """
    from udcshield.data.readers import decode_image_file

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"user mask file not found: {p}")
    try:
        img = decode_image_file(p)  # (h, w, 3): grey replicated, alpha dropped
    except ValueError as exc:
        raise ValueError(f"user mask image: {exc}") from exc
    arr = img.mean(axis=-1)
    full = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
    mask = (arr.astype(np.float64) >= 0.5 * full).astype(np.float64)
    if mask.max() <= 0:
        raise ValueError(f"user mask image {p} has no open (bright) pixel")
    return mask
