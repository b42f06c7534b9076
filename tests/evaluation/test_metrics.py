import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from udcshield.evaluation import PSNR_CAP_DB, psnr, ssim, to_8bit


def rand_images(n: int = 2, h: int = 32, w: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_psnr_identical_is_cap_and_inf_without_cap():
    x = rand_images()
    assert torch.equal(psnr(x, x), torch.full((2,), PSNR_CAP_DB, dtype=torch.float64))
    assert PSNR_CAP_DB == 100.0
    assert bool(torch.isinf(psnr(x, x, cap=None)).all())


def test_psnr_constant_offset_of_one_level():
    levels = torch.randint(0, 255, (2, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    x = levels.float() / 255
    y = (levels + 1).float() / 255
    expected = 20 * math.log10(255)
    assert expected == pytest.approx(48.1308, abs=1e-4)
    torch.testing.assert_close(psnr(y, x), torch.full((2,), expected, dtype=torch.float64))


def test_psnr_clamps_and_quantizes():
    x = torch.full((1, 3, 8, 8), 0.5)
    # values beyond [0, 1] are clamped; sub-level noise vanishes after 8-bit rounding
    assert float(psnr(x + 0.0004, x)) == PSNR_CAP_DB
    expected = torch.tensor([[[[0.0, 255.0]]]], dtype=torch.float64)
    assert torch.equal(to_8bit(torch.tensor([[[[-0.2, 1.3]]]])), expected)


def test_ssim_identical_and_decreasing_with_noise():
    x = rand_images(1, 48, 48, seed=2)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-12)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    values = [float(ssim((x + s * noise).clamp(0, 1), x)) for s in (0.01, 0.05, 0.1, 0.3)]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_ssim_matches_skimage():
    rng = np.random.default_rng(4)
    a = rng.random((3, 37, 45)).astype(np.float32)
    b = np.clip(a + 0.15 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    ref = structural_similarity(
        np.round(a * 255).astype(np.float64), np.round(b * 255).astype(np.float64),
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=0,
    )
    ours = ssim(a, b)  # numpy C x H x W input: a batch of one
    assert ours.shape == (1,)
    assert float(ours[0]) == pytest.approx(ref, abs=1e-3)
    assert float(ours[0]) == pytest.approx(ref, abs=1e-6)  # same algorithm, float64 throughout


def test_metric_input_errors():
    x = rand_images()
    with pytest.raises(ValueError, match="shape"):
        psnr(x, x[:, :, :16])
    with pytest.raises(ValueError, match="output"):
        psnr(x[0, 0], x[0, 0])
    with pytest.raises(ValueError, match="NaN"):
        ssim(x * float("nan"), x)
    with pytest.raises(ValueError, match="dtype"):
        psnr((x * 255).to(torch.uint8), x)
    with pytest.raises(ValueError, match="11"):
        ssim(x[:, :, :8, :8], x[:, :, :8, :8])


# ------------------------------------------------------------------------------------------ LPIPS, worse
def test_lpips_distance_scores_the_8bit_images_with_the_network():
    """The same SYNTH convention as PSNR: clamped, rounded to k / 255, then the network in float32; a change of
    less than half a level does not move it, out-of-range values are clamped first, identical images give 0."""
    from udcshield.attacks.lpips import LPIPS
    from udcshield.evaluation.metrics import lpips_distance

    net = LPIPS.random_for_tests(seed=3)
    a, b = rand_images(2, 32, 36, seed=4), rand_images(2, 32, 36, seed=5)
    got = lpips_distance(a, b, net)
    qa, qb = torch.round(a * 255) / 255, torch.round(b * 255) / 255
    assert got.dtype == torch.float64 and got.shape == (2,)
    torch.testing.assert_close(got, net(qa, qb).double(), rtol=0, atol=0)
    assert bool((got > 0).all())
    assert not torch.equal(got, net(a, b).double())  # the float images score differently
    assert torch.equal(lpips_distance(qa + 0.4 / 255, b, net), got)  # within the same 8-bit level
    assert torch.equal(lpips_distance(a * 3 - 1, b, net), lpips_distance((a * 3 - 1).clamp(0, 1), b, net))
    assert torch.equal(lpips_distance(a, a, net), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not match target shape"):
        lpips_distance(a, b[:1], net)


def test_worse_is_the_max_for_a_distance_and_the_min_otherwise():
    from udcshield.evaluation.metrics import LOWER_IS_BETTER, worse

    assert LOWER_IS_BETTER == {"lpips"}
    assert worse("lpips")([0.1, 0.7, 0.3]) == 0.7
    assert worse("psnr")([20.0, 11.0, 30.0]) == 11.0 and worse("ssim")([0.9, 0.5]) == 0.5
