import time

import numpy as np
import pytest

from udcshield.physics.masks import display_mask
from udcshield.physics.psf import compute_psf, display_tint, psf_bank, transmission_factor

DEFAULT = dict(
    mask_kind="toled",
    pitch_um=168.0,
    open_ratio=5 / 21,
    focal_length_mm=4.67,
    f_number=2.0,
    wavelengths_nm=(610.0, 530.0, 470.0),
    sensor_pitch_um=2.0,
    support_px=65,
)


def _subpixel_min(profile: np.ndarray, lo: int, hi: int) -> float:
    i = lo + int(np.argmin(profile[lo:hi]))
    a, b, c = profile[i - 1], profile[i], profile[i + 1]
    return i + 0.5 * (a - c) / (a - 2 * b + c)


@pytest.mark.parametrize("kind", ["toled", "poled", "circle", "open"])
def test_unit_sum_shape_centre(kind):
    kw = dict(DEFAULT, mask_kind=kind, open_ratio=0.3 if kind == "circle" else 5 / 21)
    p = compute_psf(**kw)
    assert p.shape == (3, 65, 65) and p.dtype == np.float64
    assert p.min() >= 0
    np.testing.assert_allclose(p.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    for c in range(3):
        assert np.unravel_index(np.argmax(p[c]), p[c].shape) == (32, 32)
        np.testing.assert_allclose(p[c], p[c][::-1, ::-1], atol=1e-6 * p[c].max())  # real pupil: symmetric PSF


def test_airy_first_zero():
    lam, fno, pix = 0.53, 16.0, 0.5  # µm; zero at 1.22 lam N = 10.3 µm = 20.7 px
    p = compute_psf(**dict(DEFAULT, mask_kind="open", f_number=fno, wavelengths_nm=(530.0,), sensor_pitch_um=pix, oversample=2))
    expected = 1.22 * lam * fno / pix
    row = p[0, 32]
    r = _subpixel_min(row, 32 + int(0.7 * expected), 32 + int(1.3 * expected)) - 32
    assert r == pytest.approx(expected, rel=0.03)


def test_grating_orders_scale_with_wavelength():
    pix = 0.5
    p = compute_psf(**dict(DEFAULT, sensor_pitch_um=pix, support_px=129))
    c0 = 64
    pos = []
    for ch, lam in enumerate((0.610, 0.530, 0.470)):
        expected = lam * 4670.0 / 168.0 / pix
        profile = p[ch].sum(axis=0)  # vertical stripes diffract along x
        idx = np.arange(int(c0 + expected) - 3, int(c0 + expected) + 4)
        centroid = (profile[idx] * idx).sum() / profile[idx].sum() - c0
        assert centroid == pytest.approx(expected, rel=0.03)
        # the first order is a real peak, much brighter than the trough between orders
        assert profile[int(round(c0 + expected))] > 5 * profile[int(round(c0 + expected / 2))]
        pos.append(centroid)
    assert pos[0] / pos[2] == pytest.approx(610 / 470, rel=0.03)


def test_speed_default():
    t0 = time.perf_counter()
    compute_psf(**DEFAULT)
    assert time.perf_counter() - t0 < 4.0


def test_random_flip_and_user_mask():
    p = compute_psf(**dict(DEFAULT, mask_kind="poled", open_ratio=0.25, random_tile_flip=True, rng=np.random.default_rng(0)))
    np.testing.assert_allclose(p.sum(axis=(1, 2)), 1.0)
    cell = np.zeros((21, 21))
    cell[:, 8:13] = 1.0
    pu = compute_psf(**dict(DEFAULT, mask_kind="user", user_mask=cell))
    pt = compute_psf(**dict(DEFAULT, open_ratio=5 / 21))
    np.testing.assert_allclose(pu, pt, atol=0.02)


@pytest.mark.parametrize(
    "override,culprit",
    [
        (dict(support_px=64), "support_px"),
        (dict(f_number=-2.0), "f_number"),
        (dict(focal_length_mm=0.0), "focal_length_mm"),
        (dict(mask_kind="hex"), "mask_kind"),
        (dict(wavelengths_nm=(610.0, float("nan"))), "wavelengths_nm"),
        (dict(wavelengths_nm=()), "wavelengths_nm"),
        (dict(sensor_pitch_um=float("inf")), "sensor_pitch_um"),
        (dict(oversample=0), "oversample"),
        (dict(pitch_um=-1.0), "pitch_um"),
        (dict(open_ratio=-0.1), "open_ratio"),
        (dict(open_ratio=1.5), "open_ratio"),
        (dict(mask_kind="user"), "user_mask"),
        (dict(max_fft=64), "max_fft"),
    ],
)
def test_bad_input(override, culprit):
    with pytest.raises(ValueError, match=culprit):
        compute_psf(**dict(DEFAULT, **override))


def test_transmission_and_tint():
    m = display_mask("toled", pitch_um=168.0, open_ratio=5 / 21, sample_um=1.0, extent_um=168.0 * 3)
    assert transmission_factor(m) == pytest.approx(5 / 21, abs=0.01)
    with pytest.raises(ValueError, match="mask"):
        transmission_factor(np.full((3, 3), 2.0))
    t = display_tint("poled", (610.0, 530.0, 470.0))
    assert t.shape == (3,) and t.max() == pytest.approx(1.0) and t[2] < t[1] < t[0]
    assert np.all(display_tint("toled", (610.0, 530.0)) == 1.0)


def test_psf_bank():
    p = compute_psf(**dict(DEFAULT, support_px=33))
    bank = psf_bank(p, 9, np.random.default_rng(1))
    assert bank.shape == (9, 3, 33, 33)
    np.testing.assert_allclose(bank[0], p)
    np.testing.assert_allclose(bank.sum(axis=(2, 3)), 1.0, rtol=1e-12)
    assert bank.min() >= 0
    yy, xx = np.mgrid[-16:17, -16:17]
    r2 = (yy**2 + xx**2).astype(float)
    m0 = (bank[0] * r2).sum(axis=(1, 2))
    for i in range(1, 9):
        assert not np.allclose(bank[i], bank[0])
        # a small warp (scale within 5 %), not a different PSF: spread changes by a few percent at most
        ratio = np.sqrt((bank[i] * r2).sum(axis=(1, 2)) / m0)
        assert np.all(np.abs(ratio - 1) < 0.1), ratio
        assert np.unravel_index(np.argmax(bank[i, 1]), (33, 33)) == (16, 16)
    again = psf_bank(p, 9, np.random.default_rng(1))
    assert np.array_equal(bank, again)
    assert psf_bank(p, 1, np.random.default_rng(1)).shape == (1, 3, 33, 33)
    with pytest.raises(ValueError, match="k"):
        psf_bank(p, 0, np.random.default_rng(1))
    with pytest.raises(ValueError, match="psf"):
        psf_bank(p[0], 2, np.random.default_rng(1))
    with pytest.raises(ValueError, match="max_scale"):
        psf_bank(p, 2, np.random.default_rng(1), max_scale=1.5)
