"""Report figures: PNG bytes that decode, clear errors on bad input, the perturbation view's mapping."""

import imageio.v3 as iio
import numpy as np
import pytest

from udcshield.evaluation.figures import (
    PNG_SIGNATURE,
    Curve,
    budget_curves_png,
    grouped_bars_png,
    image_grid_png,
    perturbation_view,
    png_bytes,
)


def decoded(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    return iio.imread(png, extension=".png")


def curves():
    return [Curve("m: undefended", [0, 2, 8], {"psnr": [30.0, 25.0, 20.0], "ssim": [0.9, 0.8, 0.7]}, "m", "none"),
            Curve("m: purified", [0, 2, 8], {"psnr": [29.0, 28.0, 27.0], "ssim": [0.85, 0.84, 0.8]}, "m", "pur")]


def test_budget_curves_have_a_panel_per_metric():
    two = decoded(budget_curves_png("pgd", curves()))
    one = decoded(budget_curves_png("pgd", curves(), metrics=("psnr",)))
    assert two.shape[1] > 1.8 * one.shape[1] and two.std() > 5


@pytest.mark.parametrize("bad,match", [
    (Curve("x", [2, 0], {"psnr": [1.0, 2.0]}), "ascend"),
    (Curve("x", [0, 2], {"psnr": [1.0, float("nan")]}), "finite"),
    (Curve("x", [0, 2], {"psnr": [1.0]}), "finite"),
])
def test_budget_curves_reject_bad_series(bad, match):
    with pytest.raises(ValueError, match=match):
        budget_curves_png("t", [bad])
    with pytest.raises(ValueError, match="no curves"):
        budget_curves_png("t", [])


def test_grouped_bars_skip_missing_values_and_check_lengths():
    img = decoded(grouped_bars_png("worst", ["a", "b"], {"clean": [30.0, 29.0], "purified": [26.0, None]}))
    assert img.ndim == 3 and img.std() > 5
    with pytest.raises(ValueError, match="need 2 finite"):
        grouped_bars_png("worst", ["a", "b"], {"clean": [30.0]})
    with pytest.raises(ValueError, match="every value is None"):
        grouped_bars_png("worst", ["a"], {"clean": [None]})


def test_image_grid_checks_shapes_and_values():
    rng = np.random.default_rng(0)
    cols = [("gt", rng.random((2, 3, 8, 8))), ("out", rng.random((2, 3, 8, 8)))]
    img = decoded(image_grid_png(cols, ["i0", "i1"], {"out": ["1 dB", "2 dB"]}))
    assert img.shape[0] > 100 and img.shape[1] > 100
    with pytest.raises(ValueError, match="expected \\(2, 3, H, W\\)"):
        image_grid_png([("gt", rng.random((3, 3, 8, 8)))], ["i0", "i1"])
    bad = rng.random((2, 3, 8, 8))
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        image_grid_png([("gt", bad)], ["i0", "i1"])


def test_perturbation_view_maps_the_budget_to_black_and_white():
    clean = np.full((1, 3, 2, 2), 0.5, np.float32)
    adv = clean + np.array([-0.1, 0.0, 0.05, 0.2], np.float32).reshape(1, 1, 2, 2)
    view = perturbation_view(adv, clean, eps=0.1)
    np.testing.assert_allclose(view[0, 0].ravel(), [0.0, 0.5, 0.75, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="eps"):
        perturbation_view(adv, clean, eps=0.0)
    with pytest.raises(ValueError, match="shapes"):
        perturbation_view(adv, clean[..., :1], eps=0.1)


def test_png_bytes_needs_uint8_rgb():
    assert decoded(png_bytes(np.zeros((3, 4, 3), np.uint8))).shape == (3, 4, 3)
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((3, 4, 3), np.float32))
