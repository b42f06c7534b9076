"""Paired augmentation: identical transform for input and target, seeded, clamped."""

import pytest
import torch

from udcshield.training.augment import random_crop_flip_jitter

from tests.tiny import gen


def test_same_transform_for_input_and_target():
    x = torch.rand(6, 3, 20, 17, generator=gen())
    a, b = random_crop_flip_jitter(x, x * 0.5, crop=9, flips=True, color_jitter=0.0, generator=gen(1))
    assert a.shape == b.shape == (6, 3, 9, 9)
    torch.testing.assert_close(b, a * 0.5)


def test_jitter_identical_gain_per_channel_in_range():
    x = torch.full((16, 3, 8, 8), 0.5)
    a, b = random_crop_flip_jitter(x, x, crop=8, flips=False, color_jitter=0.1, generator=gen(2))
    torch.testing.assert_close(a, b)
    gains = a / 0.5
    assert gains.amin() >= 0.9 - 1e-6 and gains.amax() <= 1.1 + 1e-6
    assert torch.allclose(gains, gains[..., :1, :1].expand_as(gains))  # one gain per image and channel
    assert gains[:, :, 0, 0].std() > 0.01


def test_clamped_to_unit_range():
    x = torch.full((4, 3, 8, 8), 0.99)
    a, _ = random_crop_flip_jitter(x, x, crop=4, flips=True, color_jitter=0.5, generator=gen(3))
    assert a.max() <= 1.0


def test_crops_are_windows_of_the_source_and_flips_happen():
    rows = torch.arange(10.0).view(1, 1, 10, 1).expand(32, 3, 10, 10) / 10
    a, _ = random_crop_flip_jitter(rows, rows, crop=4, flips=True, color_jitter=0.0, generator=gen(4))
    diffs = a[:, 0, 1:, 0] - a[:, 0, :-1, 0]
    torch.testing.assert_close(diffs.abs(), torch.full_like(diffs, 0.1))  # contiguous rows, maybe reversed
    assert (diffs.sign() == diffs[:, :1].sign()).all()  # one direction per crop
    assert (diffs[:, 0] < 0).any() and (diffs[:, 0] > 0).any()  # some vertical flips, not all


def test_deterministic():
    x = torch.rand(4, 3, 12, 12, generator=gen())
    first = random_crop_flip_jitter(x, x, crop=6, flips=True, color_jitter=0.05, generator=gen(5))
    second = random_crop_flip_jitter(x, x, crop=6, flips=True, color_jitter=0.05, generator=gen(5))
    torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"crop": 13}, "crop"), ({"crop": 0}, "crop"), ({"color_jitter": 1.5}, "color_jitter")],
)
def test_bad_arguments(kwargs, match):
    x = torch.rand(2, 3, 12, 12)
    args = {"crop": 6, "flips": True, "color_jitter": 0.0, "generator": gen()} | kwargs
    with pytest.raises(ValueError, match=match):
        random_crop_flip_jitter(x, x, **args)


def test_mismatched_pair():
    with pytest.raises(ValueError, match="differ"):
        random_crop_flip_jitter(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 9), crop=4, flips=False,
                                color_jitter=0.0, generator=gen())
