"""Spectral integration of the display-diffraction PSF over sensor response curves.

A colour channel integrates the monochromatic PSF over wavelength, weighted by the channel's spectral
response (Goodman, *Introduction to Fourier Optics*, incoherent imaging with broadband light):

    PSF_c(u) = sum_l w_c(lambda_l) PSF_lambda_l(u) / sum_l w_c(lambda_l).

Each monochromatic PSF comes from :func:`udcshield.physics.psf.compute_psf` and has unit sum, so each
channel of the result has unit sum too. Diffraction orders sit at lambda f / pitch, so a broad response
smears them radially (the colour fringes of UDC flare).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from udcshield.physics.psf import compute_psf


def load_sensor_response(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a sensor response CSV: header ``wavelength_nm,<channel>,...``, one row per sample.

    Returns:
        (wavelengths (L,) float64 nm, strictly increasing; response (C, L) float64 >= 0, no all-zero channel).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sensor response file not found: {path}")
    try:
        table = np.genfromtxt(path, delimiter=",", names=True, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"sensor response {path} is not a numeric CSV with a header: {exc}") from None
    names = table.dtype.names or ()
    if len(names) < 2 or names[0] != "wavelength_nm":
        raise ValueError(f"sensor response {path} needs columns wavelength_nm,<channel>,...; got {list(names)}")
    table = np.atleast_1d(table)
    wavelengths = np.asarray(table[names[0]], dtype=np.float64)
    response = np.stack([np.asarray(table[n], dtype=np.float64) for n in names[1:]])
    check_response(wavelengths, response, str(path))
    return wavelengths, response


def check_response(wavelengths: np.ndarray, response: np.ndarray, where: str = "response") -> None:
    """Validate (L,) wavelengths and (C, L) response; ValueError naming ``where`` otherwise."""
    if wavelengths.ndim != 1 or response.ndim != 2 or response.shape[1] != wavelengths.shape[0]:
        raise ValueError(f"{where}: expected wavelengths (L,) and response (C, L), got {wavelengths.shape} "
                         f"and {response.shape}")
    if not (np.isfinite(wavelengths).all() and np.isfinite(response).all()):
        raise ValueError(f"{where}: contains NaN or Inf")
    if (wavelengths <= 0).any() or (np.diff(wavelengths) <= 0).any():
        raise ValueError(f"{where}: wavelengths must be positive and strictly increasing")
    if (response < 0).any() or (response.sum(axis=1) <= 0).any():
        raise ValueError(f"{where}: responses must be >= 0 with at least one positive value per channel")


def spectral_psf(wavelengths_nm: np.ndarray, response: np.ndarray, **psf_kwargs: Any) -> np.ndarray:
    """Channel PSFs integrated over wavelength.

    Args:
        wavelengths_nm: (L,) sample wavelengths in nm.
        response: (C, L) non-negative channel responses at those wavelengths.
        psf_kwargs: every other argument of :func:`compute_psf` (mask, pitch, lens, sensor, support...).

    Returns:
        (C, s, s) float64, each channel >= 0 with unit sum.
    """
    wavelengths_nm = np.asarray(wavelengths_nm, dtype=np.float64)
    response = np.asarray(response, dtype=np.float64)
    check_response(wavelengths_nm, response)
    used = response.sum(axis=0) > 0  # wavelengths no channel sees need no PSF
    mono = compute_psf(wavelengths_nm=tuple(wavelengths_nm[used].tolist()), **psf_kwargs)
    weights = response[:, used] / response[:, used].sum(axis=1, keepdims=True)
    out = np.einsum("cl,lyx->cyx", weights, mono)
    return out / out.sum(axis=(1, 2), keepdims=True)
