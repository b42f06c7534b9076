"""Percentile bootstrap intervals for means over test images and for paired per-image differences.

Method: the percentile bootstrap (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", Chapman &
Hall, ch. 13). The N per-image values are resampled with replacement ``resamples`` times; the
interval at ``level`` is the (1 - level) / 2 and (1 + level) / 2 quantiles of the resampled means. A paired
comparison of two settings on the same images bootstraps the per-image differences a - b as one sample,
which keeps the correlation between the two settings on one image.

Determinism: every draw comes from ``numpy.random.Generator(numpy.random.PCG64(seed))``; callers sort the
values by image id first (:func:`per_image`), so an interval depends on the seed and the values, never on
the order of the records. :func:`cell_seed` gives every cell of a table its own seed from the run seed and
the cell's label, so one cell's interval does not change when other cells are added or removed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from udcshield.seeding import derive_seed

#: Default number of bootstrap resamples (Efron & Tibshirani 1993 ask for about 1000 or more for percentile
#: intervals, far more than for a standard error).
RESAMPLES = 2000
#: Default coverage of the intervals.
LEVEL = 0.95
#: Stage name of :func:`cell_seed` in :func:`udcshield.seeding.derive_seed`.
SEED_STAGE = "statistics/bootstrap"
# Largest resample-index block drawn at once (resamples x N entries), to bound memory for large N.
_BLOCK = 1 << 22


def cell_seed(seed: int, label: str) -> int:
    """Seed (0 <= s < 2**63) of one cell's bootstrap from the run seed (int >= 0) and the cell's label,
    e.g. ``"resunet:base|none|pgd_8|psnr"`` (:func:`udcshield.seeding.derive_seed`, stage ``statistics/bootstrap``)."""
    return derive_seed(seed, SEED_STAGE, label)


def per_image(pairs: Iterable[tuple[str, float]]) -> tuple[list[str], np.ndarray]:
    """(image ids sorted, float64 (N,) values in that order) from ``(image_id, value)`` pairs.

    Several values of one image (e.g. draws of a stochastic defense) are averaged, so the image, the
    independent unit, stays the unit that is resampled (Efron & Tibshirani 1993).
    """
    acc: dict[str, list[float]] = {}
    for image_id, value in pairs:
        acc.setdefault(str(image_id), []).append(float(value))
    ids = sorted(acc)
    return ids, np.array([math.fsum(acc[i]) / len(acc[i]) for i in ids], dtype=np.float64)


def _seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _check(values: npt.ArrayLike, name: str, resamples: int, level: float) -> np.ndarray:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of numbers") from None
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per image), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty: a mean needs at least one image")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        kind = "NaN" if np.isnan(x[bad[0]]) else "an infinite value"
        raise ValueError(f"{name} holds {kind} at index {int(bad[0])} ({bad.size} non-finite value(s) of {x.size})")
    return x


def bootstrap_means(values: npt.ArrayLike, seed: int, resamples: int = RESAMPLES) -> np.ndarray:
    """Means of ``resamples`` resamples with replacement of ``values`` (finite, shape (N,), N >= 1): (resamples,).

    Vectorised: the resample indices form a (resamples, N) matrix drawn in blocks of at most 2**22 entries
    from ``Generator(PCG64(seed))`` (the block size depends on N only, so the result depends on the seed,
    the values and ``resamples``).
    """
    x = _check(values, "values", resamples, LEVEL)
    rng = np.random.Generator(np.random.PCG64(_seed(seed)))
    n = x.size
    rows = max(1, _BLOCK // n)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def bootstrap_ci(values: npt.ArrayLike, seed: int, resamples: int = RESAMPLES,
                 level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of the mean of ``values`` (Efron & Tibshirani 1993, ch. 13).

    Args:
        values: finite per-image values, shape (N,), N >= 1, in a fixed order (sorted by image id).
        seed: int >= 0, seeds ``numpy.random.Generator(numpy.random.PCG64(seed))``.
        resamples: number of bootstrap resamples B >= 1.
        level: coverage in (0, 1), e.g. 0.95.

    Returns:
        (low, high) with low <= mean <= high in practice; (v, v) when N == 1 or all values are equal.

    Raises:
        ValueError naming ``values``, ``seed``, ``resamples`` or ``level``: NaN or infinite values, not 1-D, empty,
        B < 1, level outside (0, 1).
    """
    x = _check(values, "values", resamples, level)
    _seed(seed)
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    boot = bootstrap_means(x, seed, resamples)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_difference(a: npt.ArrayLike, b: npt.ArrayLike, seed: int, resamples: int = RESAMPLES,
                      level: float = LEVEL) -> dict[str, Any]:
    """Mean per-image difference ``a - b`` with its percentile bootstrap interval (Efron & Tibshirani 1993).

    Args:
        a, b: finite values of two settings on the same N >= 1 images, same order, shape (N,) each.
        seed, resamples, level: as in :func:`bootstrap_ci`.

    Returns:
        ``{"mean", "ci_low", "ci_high", "n", "excludes_zero"}``: the mean of a - b (float, same unit as the
        values, e.g. dB), the interval bounds, N, and whether 0 lies outside [ci_low, ci_high].

    Raises:
        ValueError naming ``a`` or ``b`` (see :func:`bootstrap_ci`) or a length mismatch.
    """
    x = _check(a, "a", resamples, level)
    y = _check(b, "b", resamples, level)
    if x.shape != y.shape:
        raise ValueError(f"a and b must hold one value per image of the same images: lengths {x.size} and {y.size}")
    d = x - y
    low, high = bootstrap_ci(d, seed, resamples, level)
    return {"mean": float(d.mean()), "ci_low": low, "ci_high": high, "n": int(d.size),
            "excludes_zero": bool(low > 0.0 or high < 0.0)}


def crossed_bootstrap_ci(values: npt.ArrayLike, seed: int, resamples: int = RESAMPLES,
                         level: float = LEVEL) -> dict[str, Any]:
    """Mean over training seeds x images with an interval that counts both sources of variance.

    Method: the pigeonhole bootstrap for crossed designs (Owen 2007, "The pigeonhole bootstrap", Annals
    of Applied Statistics 1(2)): every resample draws the S training seeds (rows) and the N images
    (columns) with replacement, independently, and takes the mean of the selected sub-matrix. The
    interval is the percentile interval of those means (Efron & Tibshirani 1993, ch. 13). With S = 1 it
    reduces to the image bootstrap of :func:`bootstrap_ci` (up to the draws).

    Args:
        values: finite per-(seed, image) values, shape (S, N), S >= 1 training runs of one restorer on
            the same N >= 1 images (columns in one image order), e.g. PSNR in dB.
        seed, resamples, level: as in :func:`bootstrap_ci`.

    Returns:
        ``{"mean", "ci_low", "ci_high", "seed_means", "seed_std", "n_seeds", "n_images"}``: the grand mean,
        the interval, each run's mean over images (list of S floats), their sample standard deviation
        (ddof 1; 0.0 when S == 1), S and N.

    Raises:
        ValueError naming ``values``: not 2-D, empty, NaN or infinite entries; or a bad seed, B or level.
    """
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("values must be a 2-D array of numbers (training seeds x images)") from None
    if x.ndim != 2:
        raise ValueError(f"values must be 2-D (training seeds x images), got shape {x.shape}")
    _check(x.reshape(-1), "values", resamples, level)
    rng = np.random.Generator(np.random.PCG64(_seed(seed)))
    s, n = x.shape
    means = np.empty(resamples, dtype=np.float64)
    for b in range(resamples):
        rows = rng.integers(0, s, size=s)
        cols = rng.integers(0, n, size=n)
        means[b] = x[np.ix_(rows, cols)].mean()
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    seed_means = x.mean(axis=1)
    return {"mean": float(x.mean()), "ci_low": float(low), "ci_high": float(high),
            "seed_means": [float(v) for v in seed_means],
            "seed_std": float(seed_means.std(ddof=1)) if s > 1 else 0.0, "n_seeds": s, "n_images": n}
