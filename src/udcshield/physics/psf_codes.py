"""Low-dimensional PCA codes of a PSF bank, the kernel condition of DISCNet.

DISCNet (Feng et al., "Removing Diffraction Image Artifacts in Under-Display Camera via Dynamic Skip
Connection Network", CVPR 2021) conditions its restorer on the PSF of each image through a kernel code:
the PSF is projected by principal component analysis onto a short vector (``d = 5`` in the release,
``PSF/kernel_code/ZTE_new_code_<k>.npy``), after SRMD (Zhang et al., CVPR 2018). The release ships the
codes of its nine measured PSFs but not the projection, so :func:`psf_pca_codes` computes the analogous
codes of any bank: PCA over the bank's own PSFs.

Procedure for a bank of K PSFs, each flattened to a vector of 3 * s * s values (all colour channels):
centre the K vectors on their mean, take the principal axes from the singular value decomposition of
the centred (K, 3 s^2) matrix, and return the projections ("scores") of the centred PSFs onto the first
``dim`` axes, in order of decreasing variance. No whitening: codes are in the PSF's own units (for
unit-sum PSFs, differences of order of the PSF's peak values).

Adaptation to small banks: K centred vectors span at most K - 1 dimensions, so components beyond
``rank = min(K - 1, 3 s^2)`` (and components of numerically zero variance) are zero: codes are
zero-padded up to ``dim`` when K <= dim. A single PSF (K = 1), or K identical PSFs, gives all-zero codes.

Determinism: no randomness; the sign of each principal axis (arbitrary in an SVD) is fixed so that the
code entry of largest magnitude in that column is positive (on ties, up to a relative 1e-9, the first
such entry in bank order).
"""

from __future__ import annotations

import numpy as np

DEFAULT_CODE_DIM = 5
"""Length of a DISCNet kernel code (``psf_nc: 5`` in the release's configs)."""

# Singular values below this fraction of the largest are treated as zero variance (ties, round-off).
_REL_TOL = 1e-10
# Code entries within this relative distance of the column's largest magnitude count as tied for the sign.
_TIE_TOL = 1e-9


def psf_pca_codes(bank: np.ndarray, dim: int = DEFAULT_CODE_DIM) -> np.ndarray:
    """DISCNet-style PCA kernel codes of a PSF bank (see the module docstring for the procedure).

    Args:
        bank: (K, 3, s, s) (or (K, 3, h, w)) PSF bank, finite float, K >= 1; typically >= 0 with unit
            sum per channel, though any finite values are accepted.
        dim: code length D >= 1 (DISCNet: 5).

    Returns:
        (K, D) float32: row k is the code of ``bank[k]``; columns in order of decreasing variance over
        the bank; each column sums to zero over the bank (centred); columns beyond the bank's rank are
        zero.

    Raises:
        ValueError: bank not 4-D with 3 channels, empty, NaN/Inf; ``dim`` not an int >= 1.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an int >= 1, got {dim!r}")
    b = np.asarray(bank, dtype=np.float64)
    if b.ndim != 4 or b.shape[1] != 3 or b.shape[0] < 1 or b.shape[2] < 1 or b.shape[3] < 1:
        raise ValueError(f"bank must have shape (K, 3, h, w) with K >= 1, got {np.shape(bank)}")
    if not np.all(np.isfinite(b)):
        raise ValueError("bank contains NaN or Inf")
    k = b.shape[0]
    flat = b.reshape(k, -1)
    centred = flat - flat.mean(axis=0, keepdims=True)
    codes = np.zeros((k, int(dim)), dtype=np.float64)
    if k > 1:
        # Scores = U * S of the thin SVD of the centred matrix (K x M, K small): no M x M matrix is formed.
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        keep = int(np.sum(s > _REL_TOL * s[0])) if s.size and s[0] > 0 else 0
        n = min(keep, int(dim), k - 1)
        scores = u[:, :n] * s[:n]
        for j in range(n):
            col = scores[:, j]
            mag = np.abs(col)
            lead = int(np.flatnonzero(mag >= mag.max() * (1.0 - _TIE_TOL))[0])
            if col[lead] < 0:
                scores[:, j] = -col
        codes[:, :n] = scores
    return codes.astype(np.float32)


__all__ = ["DEFAULT_CODE_DIM", "psf_pca_codes"]
