"""Point spread functions of a camera behind a display, by Fraunhofer diffraction.

Physics (Goodman, Introduction to Fourier Optics, 3rd ed., sec. 4.2 and 5.2): for a thin lens of focal
length f focused at infinity, the field in the focal plane is the Fourier transform of the pupil
function P(x, y) evaluated at spatial frequency nu = u / (lambda f). The incoherent intensity PSF is
|FT{P}|^2. Here P = circular aperture of diameter D = f / N (N the f-number) times the tiled display
mask (Zhou et al., CVPR 2021; Kwon et al., "Controllable image restoration for under-display camera",
and Feng et al., DISCNet, CVPR 2021 for measured PSFs of the same structure). A periodic mask of pitch
p puts diffraction orders at u = m lambda f / p on the sensor, so red spreads further than blue.

Sampling: with pupil window L and N_fft samples, the FFT grid on the sensor has spacing
du = lambda f / L. We choose L = lambda f * oversample / sensor_pitch so that du = sensor_pitch /
oversample, then box-integrate oversample x oversample blocks into sensor pixels. |FT|^2 is the
autocorrelation of P, which has support 2D, so L >= 2D avoids aliasing; where the requested
oversample is too small for that, it is raised for that wavelength.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from udcshield.physics.masks import MASK_KINDS, _check_positive, display_mask, max_open_ratio, narrowest_feature_um


def _aperture(n: int, dx: float, diameter: float, antialias: int) -> np.ndarray:
    """Coverage of a centred circular aperture of ``diameter`` (µm) on n x n samples of spacing dx."""
    c = (np.arange(n) - (n - 1) / 2.0) * dx
    offsets = ((np.arange(antialias) + 0.5) / antialias - 0.5) * dx
    r2 = (diameter / 2.0) ** 2
    acc = np.zeros((n, n))
    for oy in offsets:
        y2 = ((c + oy) ** 2)[:, None]
        for ox in offsets:
            acc += (y2 + ((c + ox) ** 2)[None, :]) <= r2
    return acc / (antialias * antialias)


def _box_weights(support: int, os: int, centre: int, length: int) -> np.ndarray:
    """(support, length) matrix integrating fine samples (spacing 1/os pixel) into sensor pixels.

    Sensor pixel k (k = -support//2 .. support//2) covers fine coordinates [k os - os/2, k os + os/2]
    around ``centre``; for even os the two boundary samples get half weight (trapezoid rule).
    """
    w = np.zeros((support, length))
    half = support // 2
    for row, k in enumerate(range(-half, half + 1)):
        mid = centre + k * os
        if os % 2 == 1:
            w[row, mid - os // 2 : mid + os // 2 + 1] = 1.0
        else:
            w[row, mid - os // 2 : mid + os // 2 + 1] = 1.0
            w[row, mid - os // 2] = 0.5
            w[row, mid + os // 2] = 0.5
    return w


def pupil_sampling(lam_um: float, f_um: float, diameter_um: float, sensor_pitch_um: float, support_px: int,
                   oversample: int, feature_um: float | None, samples_per_opening: int) -> tuple[int, float, int]:
    """(effective oversampling, pupil window L in µm, FFT side) of :func:`compute_psf` at one wavelength.

    Oversampling is raised until the window holds the aperture twice; the pupil step is fine enough for
    the aperture (1/32 of it), for the FFT output to cover the PSF support, and for ``samples_per_opening``
    samples across the narrowest display opening ``feature_um`` (None: not known, no constraint).
    """
    os_eff = max(oversample, math.ceil(2.0 * diameter_um * sensor_pitch_um / (lam_um * f_um) - 1e-9))
    window = lam_um * f_um * os_eff / sensor_pitch_um  # pupil window L (µm)
    dx_target = min(
        diameter_um / 32.0,
        lam_um * f_um / (sensor_pitch_um * (support_px + 4)),  # FFT output must cover the support
        feature_um / samples_per_opening if feature_um else math.inf,
    )
    return os_eff, window, sfft.next_fast_len(int(math.ceil(window / dx_target)))


def compute_psf(
    *,
    mask_kind: str,
    pitch_um: float,
    open_ratio: float,
    focal_length_mm: float,
    f_number: float,
    wavelengths_nm: tuple[float, ...],
    sensor_pitch_um: float,
    support_px: int,
    oversample: int = 4,
    user_mask: np.ndarray | None = None,
    samples_per_opening: int = 4,
    antialias: int = 4,
    rng: np.random.Generator | None = None,
    random_tile_flip: bool = False,
    max_fft: int = 4096,
) -> np.ndarray:
    """Incoherent PSF of a lens behind a display, one channel per wavelength (Fraunhofer).

    Args:
        mask_kind: display layout, see :func:`udcshield.physics.masks.display_mask`.
        pitch_um: display pixel pitch (µm) > 0.
        open_ratio: open area fraction of a display cell.
        focal_length_mm: lens focal length f (mm) > 0, e.g. 4.67.
        f_number: N = f / D > 0, e.g. 2.
        wavelengths_nm: one wavelength per output channel (nm), e.g. (610, 530, 470) for R, G, B.
        sensor_pitch_um: sensor pixel pitch (µm) > 0, e.g. 2.
        support_px: odd PSF side in sensor pixels (>= 3).
        oversample: fine samples per sensor pixel (>= 1); raised per wavelength if needed for L >= 2D.
        user_mask: unit cell for mask_kind="user".
        samples_per_opening: pupil samples across the narrowest opening of the mask.
        antialias: sub-samples per pupil sample (per axis) for edge coverage.
        rng, random_tile_flip: random per-cell flips of the display (same panel for all wavelengths).
        max_fft: largest FFT side allowed (memory guard).

    Returns:
        float64 array (C, support_px, support_px), C = len(wavelengths_nm), values >= 0, each channel
        sums to 1, optical axis at index support_px // 2. Light lost in the display is not included:
        see :func:`transmission_factor` and :func:`display_tint`.
    """
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    pitch = _check_positive("pitch_um", pitch_um)
    f_um = _check_positive("focal_length_mm", focal_length_mm) * 1000.0
    fno = _check_positive("f_number", f_number)
    spix = _check_positive("sensor_pitch_um", sensor_pitch_um)
    if not isinstance(support_px, (int, np.integer)) or support_px < 3 or support_px % 2 == 0:
        raise ValueError(f"support_px must be an odd int >= 3, got {support_px!r}")
    for name, val in (("oversample", oversample), ("samples_per_opening", samples_per_opening), ("antialias", antialias)):
        if not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be an int >= 1, got {val!r}")
    lams = tuple(wavelengths_nm) if not isinstance(wavelengths_nm, (int, float)) else (wavelengths_nm,)
    if len(lams) == 0:
        raise ValueError("wavelengths_nm must hold at least one wavelength")
    lams_um = [_check_positive("wavelengths_nm", lam) / 1000.0 for lam in lams]
    if mask_kind != "open" and mask_kind != "user":
        _check_positive("open_ratio", open_ratio)
        if open_ratio > max_open_ratio(mask_kind) + 1e-12:
            raise ValueError(f"open_ratio {open_ratio} exceeds the maximum {max_open_ratio(mask_kind):.3f} for {mask_kind!r}")
    diameter = f_um / fno
    feature = narrowest_feature_um(mask_kind, pitch, open_ratio, user_mask)
    flip_seed = None
    if random_tile_flip:
        if rng is None:
            raise ValueError("rng is required when random_tile_flip=True")
        flip_seed = int(rng.integers(0, 2**63 - 1))

    support = int(support_px)
    out = np.empty((len(lams), support, support), dtype=np.float64)
    for ci, lam in enumerate(lams_um):
        os_eff, window, n_fft = pupil_sampling(lam, f_um, diameter, spix, support, int(oversample), feature,
                                               samples_per_opening)
        if n_fft > max_fft:
            raise ValueError(
                f"PSF needs an FFT of {n_fft} > max_fft={max_fft} at {lam * 1000:.0f} nm; reduce oversample, "
                "support_px or f_number/sensor_pitch_um ratio, or raise max_fft"
            )
        dx = window / n_fft
        m = min(n_fft, int(math.ceil(diameter / dx)) + 2)  # pupil support; the rest of the window is zero
        pupil = _aperture(m, dx, diameter, antialias)
        if mask_kind != "open":
            pupil *= display_mask(
                mask_kind,
                pitch_um=pitch,
                open_ratio=open_ratio,
                sample_um=dx,
                extent_um=m * dx,
                user_mask=user_mask,
                rng=np.random.default_rng(flip_seed) if flip_seed is not None else None,
                random_tile_flip=random_tile_flip,
                antialias=antialias,
            )
        if pupil.sum() <= 0:
            raise ValueError("the pupil transmits no light (check mask parameters)")
        field = sfft.fft2(pupil, s=(n_fft, n_fft), workers=-1)
        inten = np.abs(sfft.fftshift(field)) ** 2
        centre = n_fft // 2
        half = (support // 2) * os_eff + os_eff // 2 + 1
        lo, hi = centre - half, centre + half + 1
        crop = inten[lo:hi, lo:hi]
        w = _box_weights(support, os_eff, half, crop.shape[0])
        psf = w @ crop @ w.T
        out[ci] = psf / psf.sum()
    return out


def transmission_factor(mask: np.ndarray) -> float:
    """Mean transmission (open area fraction) of a display mask (2-D array with values in [0, 1])."""
    m = np.asarray(mask, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"mask must be a non-empty 2-D array, got shape {m.shape}")
    if not np.all(np.isfinite(m)) or m.min() < 0 or m.max() > 1:
        raise ValueError("mask values must be finite and in [0, 1]")
    return float(m.mean())


def display_tint(mask_kind: str, wavelengths_nm: tuple[float, ...]) -> np.ndarray:
    """Relative spectral transmission of the display substrate, normalised to max 1; shape (C,).

    P-OLED panels sit on a polyimide substrate that absorbs blue, so images through them look yellowish
    (Zhou et al., CVPR 2021). We model it as a logistic absorption edge at 450 nm (width 25 nm); this is
    an illustrative model, not a measured curve. Other kinds are neutral (all ones). Multiply it with
    :func:`transmission_factor` to get a per-channel light loss; the PSF itself stays unit-sum.
    """
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    lams = np.array([_check_positive("wavelengths_nm", lam) for lam in wavelengths_nm], dtype=np.float64)
    if lams.size == 0:
        raise ValueError("wavelengths_nm must hold at least one wavelength")
    if mask_kind != "poled":
        return np.ones_like(lams)
    t = 1.0 / (1.0 + np.exp(-(lams - 450.0) / 25.0))
    return t / t.max()


def _check_psf(psf: np.ndarray, name: str = "psf") -> np.ndarray:
    p = np.asarray(psf, dtype=np.float64)
    if p.ndim != 3 or p.shape[1] < 1 or p.shape[2] < 1:
        raise ValueError(f"{name} must have shape (C, h, w), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains NaN or Inf")
    if p.min() < 0:
        raise ValueError(f"{name} has negative values")
    if np.any(p.sum(axis=(1, 2)) <= 0):
        raise ValueError(f"{name} has a channel with zero sum")
    return p


def psf_bank(
    psf: np.ndarray,
    k: int,
    rng: np.random.Generator,
    max_rotation_deg: float = 5.0,
    max_scale: float = 0.05,
) -> np.ndarray:
    """A bank of K PSFs: the centre PSF plus K-1 warped variants (field-dependent PSFs).

    Feng et al. (DISCNet, CVPR 2021) simulate with a centre PSF and 8 warped variants; we draw for each
    variant a rotation uniform in [-max_rotation_deg, max_rotation_deg] and an isotropic scale uniform
    in [1 - max_scale, 1 + max_scale] about the PSF centre (same warp for all channels), resampled
    bilinearly (non-negative by construction; a PSF made of sub-pixel spikes is smoothed slightly).

    Args:
        psf: (C, s, s) float, >= 0, non-zero channels.
        k: number of PSFs >= 1.
        rng: generator for the warps.

    Returns:
        float64 (k, C, s, s), each channel summing to 1; entry 0 is ``psf`` normalised.
    """
    p = _check_psf(psf)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy Generator")
    rot = float(max_rotation_deg)
    if not math.isfinite(rot) or rot < 0:
        raise ValueError(f"max_rotation_deg must be finite and >= 0, got {max_rotation_deg!r}")
    sc = float(max_scale)
    if not math.isfinite(sc) or not 0 <= sc < 1:
        raise ValueError(f"max_scale must be in [0, 1), got {max_scale!r}")
    c, h, w = p.shape
    bank = np.empty((k, c, h, w))
    bank[0] = p / p.sum(axis=(1, 2), keepdims=True)
    centre = np.array([h // 2, w // 2], dtype=np.float64)  # the blur convention's PSF centre
    for i in range(1, k):
        theta = math.radians(rng.uniform(-rot, rot))
        scale = rng.uniform(1.0 - sc, 1.0 + sc)
        rot_m = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        mat = rot_m.T / scale  # output coords -> input coords
        offset = centre - mat @ centre
        for ch in range(c):
            warped = ndimage.affine_transform(bank[0, ch], mat, offset=offset, order=1, mode="constant", cval=0.0)
            warped = np.clip(warped, 0.0, None)
            s = warped.sum()
            bank[i, ch] = warped / s if s > 0 else bank[0, ch]
    return bank
