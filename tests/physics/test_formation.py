import numpy as np
import pytest
from scipy.signal import convolve2d

from udcshield.physics.formation import blur, blur_adjoint, degrade


def _rand(rng, *shape):
    return rng.random(shape)


def test_blur_delta_returns_psf():
    rng = np.random.default_rng(0)
    psf = _rand(rng, 3, 9, 9)
    psf /= psf.sum(axis=(1, 2), keepdims=True)
    img = np.zeros((3, 31, 40))
    img[:, 12, 20] = 1.0
    out = blur(img, psf)
    assert out.shape == img.shape
    np.testing.assert_allclose(out[:, 8:17, 16:25], psf, atol=1e-13)
    out[:, 8:17, 16:25] = 0
    assert np.abs(out).max() < 1e-13


def test_blur_matches_direct_convolution_and_no_wraparound():
    rng = np.random.default_rng(1)
    img = _rand(rng, 2, 20, 17)
    psf = _rand(rng, 2, 7, 5)
    out = blur(img, psf)
    for c in range(2):
        np.testing.assert_allclose(out[c], convolve2d(img[c], psf[c], mode="same"), atol=1e-12)
    corner = np.zeros((1, 20, 20))
    corner[0, 0, 0] = 1.0
    k = np.ones((1, 5, 5))
    y = blur(corner, k)
    assert y[0, :3, :3].sum() == pytest.approx(9.0)
    assert np.abs(y[0, 3:, :]).max() < 1e-12 and np.abs(y[0, :, 3:]).max() < 1e-12  # nothing wrapped around


@pytest.mark.parametrize("kshape", [(9, 9), (4, 6), (1, 3)])
def test_adjoint_identity(kshape):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 23, 18))
    y = rng.normal(size=(3, 23, 18))
    k = rng.random((3, *kshape))
    lhs = np.vdot(blur(x, k), y)
    rhs = np.vdot(x, blur_adjoint(y, k))
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0)


def test_blur_bad_input():
    with pytest.raises(ValueError, match="scene"):
        blur(np.zeros((3, 5)), np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="psf"):
        blur(np.zeros((3, 5, 5)), np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="scene"):
        blur(np.full((1, 5, 5), np.nan), np.ones((1, 3, 3)))
    with pytest.raises(ValueError, match="psf"):
        blur_adjoint(np.zeros((1, 5, 5)), np.full((1, 3, 3), np.inf))


def test_degrade_noiseless_and_clip():
    rng = np.random.default_rng(3)
    scene = rng.random((3, 16, 16)) * 2
    scene[:, 8, 8] = 5000.0
    psf = np.zeros((3, 5, 5))
    psf[:, 2, 2] = 0.5
    psf[:, 2, 3] = 0.5
    y = degrade(scene, psf, transmission=0.4, saturation=500.0)
    ref = np.clip(blur(scene, psf) * 0.4, 0, 500)
    np.testing.assert_allclose(y, ref, atol=1e-12)
    assert y.max() == 500.0 and y.min() >= 0
    tint = np.array([1.0, 0.9, 0.5])
    y2 = degrade(scene, psf, transmission=tint, saturation=1e9)
    np.testing.assert_allclose(y2, blur(scene, psf) * tint[:, None, None], atol=1e-9)


def test_degrade_noise():
    scene = np.full((3, 64, 64), 0.5)
    psf = np.ones((3, 3, 3)) / 9
    a = degrade(scene, psf, noise="poisson_gaussian", rng=np.random.default_rng(5), full_well_e=1000.0)
    b = degrade(scene, psf, noise="poisson_gaussian", rng=np.random.default_rng(5), full_well_e=1000.0)
    assert np.array_equal(a, b)
    interior = a[:, 2:-2, 2:-2]
    assert interior.mean() == pytest.approx(0.5, rel=0.01)
    # Poisson: variance of the value = mean / full_well (plus a small read-noise term)
    expected_var = 0.5 / 1000.0 + (4.9 / 1000.0) ** 2
    assert interior.var() == pytest.approx(expected_var, rel=0.1)


@pytest.mark.parametrize(
    "kwargs,culprit",
    [
        (dict(noise="gauss"), "noise"),
        (dict(noise="poisson_gaussian"), "rng"),
        (dict(transmission=0.0), "transmission"),
        (dict(transmission=np.ones(2)), "transmission"),
        (dict(saturation=-1.0), "saturation"),
        (dict(noise="poisson_gaussian", rng=np.random.default_rng(0), full_well_e=0.0), "full_well_e"),
        (dict(noise="poisson_gaussian", rng=np.random.default_rng(0), read_noise_e=-1.0), "read_noise_e"),
    ],
)
def test_degrade_bad_input(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        degrade(np.ones((3, 8, 8)), np.ones((3, 3, 3)) / 9, **kwargs)


def test_degrade_rejects_negative_scene():
    with pytest.raises(ValueError, match="scene"):
        degrade(-np.ones((3, 8, 8)), np.ones((3, 3, 3)) / 9)
