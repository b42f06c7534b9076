import numpy as np
import pytest

from udcshield.physics.hdr import pseudo_hdr
from udcshield.physics.tonemap import inverse_tonemap, linear_to_srgb, srgb_to_linear, tonemap


def test_tonemap_round_trip_and_range():
    v = np.unique(np.concatenate([np.linspace(0, 1, 50), np.geomspace(1, 500, 50)]))
    t = tonemap(v)
    assert t.min() == 0 and t.max() < 1
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(inverse_tonemap(t), v, rtol=1e-10, atol=1e-12)
    assert tonemap(np.array(0.25)) == pytest.approx(0.5)
    assert tonemap(np.array(1.0), knee=1.0) == pytest.approx(0.5)
    assert tonemap(np.array(500.0)) == pytest.approx(500 / 500.25)


def test_tonemap_bad_input():
    with pytest.raises(ValueError, match="v"):
        tonemap(np.array([-0.1]))
    with pytest.raises(ValueError, match="v"):
        tonemap(np.array([np.nan]))
    with pytest.raises(ValueError, match="knee"):
        tonemap(np.array([0.1]), knee=0.0)
    with pytest.raises(ValueError, match="t"):
        inverse_tonemap(np.array([1.0]))


def test_srgb():
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert srgb_to_linear(np.array(0.5)) == pytest.approx(0.21404, abs=1e-5)
    assert srgb_to_linear(np.array(1.0)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="x"):
        srgb_to_linear(np.array([1.5]))


def test_pseudo_hdr_highlights_and_lights():
    img = np.full((3, 32, 32), 0.3)
    img[:, :8, :8] = 1.0
    out = pseudo_hdr(img, np.random.default_rng(0), n_light_sources=0, highlight_gain=20.0)
    np.testing.assert_allclose(out[:, :8, :8], 20.0)
    np.testing.assert_allclose(out[:, 8:, 8:], 0.3)
    lit = pseudo_hdr(img * 0.5, np.random.default_rng(0), n_light_sources=3, light_gain_range=(50.0, 60.0))
    assert lit.shape == (3, 32, 32) and lit.dtype == np.float64 and lit.min() >= 0
    assert 40.0 <= lit.max() <= 61.0 * 3
    again = pseudo_hdr(img * 0.5, np.random.default_rng(0), n_light_sources=3, light_gain_range=(50.0, 60.0))
    assert np.array_equal(lit, again)
    other = pseudo_hdr(img * 0.5, np.random.default_rng(1), n_light_sources=3, light_gain_range=(50.0, 60.0))
    assert not np.array_equal(lit, other)


@pytest.mark.parametrize(
    "kwargs,culprit",
    [
        (dict(highlight_threshold=1.0), "highlight_threshold"),
        (dict(highlight_gain=0.5), "highlight_gain"),
        (dict(n_light_sources=-1), "n_light_sources"),
        (dict(light_gain_range=(10.0, 5.0)), "light_gain_range"),
        (dict(light_radius_px=(0.0, 1.0)), "light_radius_px"),
    ],
)
def test_pseudo_hdr_bad_params(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        pseudo_hdr(np.zeros((3, 8, 8)), np.random.default_rng(0), **kwargs)


def test_pseudo_hdr_bad_image():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="linear"):
        pseudo_hdr(np.zeros((8, 8, 3)), rng)
    with pytest.raises(ValueError, match="linear"):
        pseudo_hdr(np.full((3, 8, 8), 2.0), rng)
    with pytest.raises(ValueError, match="linear"):
        pseudo_hdr(np.full((3, 8, 8), np.nan), rng)
