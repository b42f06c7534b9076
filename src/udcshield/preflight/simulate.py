"""Preflight of ``simulate``: the display layout can realise ``open_ratio``, the PSF's FFT stays within the
simulator's memory guard, and every embedded-source photo is a bundled photo or an image path.

Each check mirrors the one the simulate stage would hit once it runs: :func:`udcshield.physics.masks.display_mask`
(``open_ratio`` above :func:`~udcshield.physics.masks.max_open_ratio`), :func:`udcshield.physics.psf.compute_psf`
(``max_fft``) and :func:`udcshield.data.simulate.simulate_split` (photo names). Files named by params (user
mask, sensor response, photo files) are read by the stage, not here.
"""

from __future__ import annotations

import inspect
from pathlib import PurePath

from udcshield.config import ConfigError, OpticsConfig, Params
from udcshield.data.sources import EMBEDDED_PHOTOS
from udcshield.physics.masks import max_open_ratio, narrowest_feature_um
from udcshield.physics.psf import compute_psf, pupil_sampling

__all__ = ["check", "check_fft", "check_open_ratio", "check_photos", "psf_fft_sides"]

#: Sources whose PSFs come from the simulator (the paired datasets may bring their own, ``PSF/*.npy``).
SIMULATED_SOURCES = ("embedded", "folder")
_DEFAULTS = {name: p.default for name, p in inspect.signature(compute_psf).parameters.items()}


def check_open_ratio(optics: OpticsConfig) -> None:
    """ConfigError naming ``simulate.optics.open_ratio`` when the layout of ``mask`` cannot open that much."""
    if optics.mask in ("open", "user"):
        return  # no ratio: a clear aperture, or the user's unit cell
    limit = max_open_ratio(optics.mask)
    if optics.open_ratio > limit + 1e-12:
        raise ConfigError(f"simulate.optics.open_ratio ({optics.open_ratio}) exceeds the {optics.mask!r} layout's "
                          f"maximum {limit:.4f}: open_ratio must be in (0, {limit:.4f}] for mask {optics.mask!r} "
                          "(larger openings would overlap)")


def psf_fft_sides(optics: OpticsConfig) -> list[tuple[float, int]]:
    """(wavelength in nm, FFT side) :func:`udcshield.physics.psf.compute_psf` needs for each of
    ``optics.wavelengths_nm``, by its own sampling rule (:func:`udcshield.physics.psf.pupil_sampling`).

    For a ``user`` mask the narrowest opening is unknown before its file is read: the sides are then lower
    bounds (the file can only make them larger).
    """
    f_um = optics.focal_length_mm * 1000.0
    feature = None if optics.mask == "user" else narrowest_feature_um(optics.mask, optics.pitch_um, optics.open_ratio)
    return [(lam_nm, pupil_sampling(lam_nm / 1000.0, f_um, f_um / optics.f_number, optics.sensor_pitch_um,
                                    optics.support_px, optics.oversample, feature,
                                    _DEFAULTS["samples_per_opening"])[2])
            for lam_nm in optics.wavelengths_nm]


def check_fft(optics: OpticsConfig) -> None:
    """ConfigError naming ``simulate.optics`` when some wavelength needs an FFT above ``compute_psf``'s
    ``max_fft`` (only for PSFs taken at ``wavelengths_nm``: a sensor response file brings its own)."""
    if optics.spectral_response_path:
        return
    limit = _DEFAULTS["max_fft"]
    for lam, side in psf_fft_sides(optics):
        if side > limit:
            raise ConfigError(
                f"simulate.optics (mask {optics.mask!r}, open_ratio {optics.open_ratio}, pitch_um {optics.pitch_um}, "
                f"f_number {optics.f_number}, sensor_pitch_um {optics.sensor_pitch_um}, support_px "
                f"{optics.support_px}, oversample {optics.oversample}): the PSF at {lam:g} nm needs an FFT of "
                f"{side} > {limit} samples a side; the FFT side must be <= {limit}: widen the narrowest "
                "opening (open_ratio, pitch_um), or reduce oversample, support_px or f_number / sensor_pitch_um")


def check_photos(params: Params) -> None:
    """ConfigError naming ``simulate.<split>_photos[i]`` for an entry that is neither a bundled photo nor a
    path with a file suffix (the ``embedded`` source only: ``folder`` lists its own files)."""
    cfg = params.simulate
    if cfg.source != "embedded":
        return
    for split in ("train_photos", "test_photos"):
        for i, name in enumerate(getattr(cfg, split)):
            if name not in EMBEDDED_PHOTOS and not PurePath(name).suffix:
                raise ConfigError(f"simulate.{split}[{i}] {name!r} is neither a bundled photo (one of "
                                  f"{', '.join(EMBEDDED_PHOTOS)}) nor an image path (a file name with a suffix, "
                                  "e.g. .png)")


def check(params: Params) -> None:
    """The ``simulate`` checks above, in the order the stage would meet them."""
    optics = params.simulate.optics
    check_photos(params)
    check_open_ratio(optics)
    if params.simulate.source in SIMULATED_SOURCES:
        check_fft(optics)
