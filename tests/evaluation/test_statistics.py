"""Percentile bootstrap (Efron & Tibshirani 1993): coverage at the nominal rate, determinism, edge cases, errors,
and paired differences."""

import numpy as np
import pytest

from udcshield.evaluation.statistics import (bootstrap_ci, bootstrap_means, cell_seed, crossed_bootstrap_ci,
                                             paired_difference, per_image)
from udcshield.seeding import derive_seed


@pytest.mark.parametrize("name", ["normal", "gamma"])
def test_interval_covers_the_true_mean_at_about_the_nominal_rate(name):
    # 400 seeded trials of N = 32 draws; the true mean is 3 for both (gamma: shape 2, scale 1.5, skewed).
    rng = np.random.Generator(np.random.PCG64(123))
    trials, hits, widths = 400, 0, []
    for k in range(trials):
        x = rng.normal(3.0, 2.0, 32) if name == "normal" else rng.gamma(2.0, 1.5, 32)
        low, high = bootstrap_ci(x, seed=k)
        assert low <= x.mean() <= high
        hits += low <= 3.0 <= high
        widths.append(high - low)
    assert 0.91 <= hits / trials <= 0.98
    # the width is about 2 * 1.96 * sd / sqrt(N) (sd 2 for the normal, 1.5 * sqrt(2) for the gamma)
    sd = 2.0 if name == "normal" else 1.5 * np.sqrt(2.0)
    assert np.mean(widths) == pytest.approx(2 * 1.96 * sd / np.sqrt(32), rel=0.1)


def test_a_wider_level_gives_a_wider_interval_and_a_narrow_one_a_narrower():
    x = np.random.Generator(np.random.PCG64(0)).normal(0.0, 1.0, 50)
    w = {level: np.subtract(*bootstrap_ci(x, 7, level=level)[::-1]) for level in (0.5, 0.95, 0.99)}
    assert 0 < w[0.5] < w[0.95] < w[0.99]


def test_deterministic_in_the_seed_and_different_across_seeds():
    x = np.random.Generator(np.random.PCG64(1)).normal(20.0, 3.0, 200)
    assert bootstrap_ci(x, 5) == bootstrap_ci(list(x), 5)
    assert bootstrap_ci(x, 5) != bootstrap_ci(x, 6)
    assert np.array_equal(bootstrap_means(x, 5, 300), bootstrap_means(x, 5, 300))


def test_draws_come_from_a_pcg64_generator_with_the_given_seed():
    x = np.arange(10.0)
    idx = np.random.Generator(np.random.PCG64(42)).integers(0, 10, size=(4, 10))
    assert np.allclose(bootstrap_means(x, 42, 4), x[idx].mean(axis=1))


def test_the_global_random_state_is_neither_used_nor_changed():
    x = np.random.Generator(np.random.PCG64(2)).normal(size=30)
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    first = bootstrap_ci(x, 3)
    assert np.array_equal(np.random.get_state()[1], before)
    np.random.seed(99)
    assert bootstrap_ci(x, 3) == first


def test_large_n_is_fast_and_blocked_draws_stay_deterministic():
    x = np.random.Generator(np.random.PCG64(3)).normal(25.0, 2.0, 4000)  # 2000 x 4000 indices: drawn in blocks
    low, high = bootstrap_ci(x, 11)
    assert low < x.mean() < high and high - low == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(4000), rel=0.15)
    assert bootstrap_ci(x, 11) == (low, high)


def test_one_image_or_equal_values_give_a_point_interval():
    assert bootstrap_ci([17.25], 0) == (17.25, 17.25)
    assert bootstrap_ci(np.full(5, 3.5), 0) == (3.5, 3.5)


def test_per_image_sorts_by_id_and_averages_draws():
    ids, values = per_image([("b", 2.0), ("a", 1.0), ("b", 4.0), ("c", 5.0)])
    assert ids == ["a", "b", "c"] and values.tolist() == [1.0, 3.0, 5.0]
    shuffled = per_image([("c", 5.0), ("b", 4.0), ("a", 1.0), ("b", 2.0)])
    assert shuffled[0] == ids and np.array_equal(shuffled[1], values)


def test_cell_seed_derives_from_the_run_seed_and_the_label():
    assert cell_seed(0, "m|none|clean|psnr") == derive_seed(0, "statistics/bootstrap", "m|none|clean|psnr")
    assert cell_seed(0, "m|none|clean|psnr") != cell_seed(1, "m|none|clean|psnr")
    assert cell_seed(0, "m|none|clean|psnr") != cell_seed(0, "m|none|clean|ssim")
    assert 0 <= cell_seed(12, "x") < 2**63


@pytest.mark.parametrize(("values", "match"), [
    ([1.0, float("nan"), 2.0], r"values holds NaN at index 1"),
    ([1.0, float("inf")], r"values holds an infinite value at index 1"),
    ([], r"values is empty"),
    ([[1.0, 2.0], [3.0, 4.0]], r"values must be 1-D .* shape \(2, 2\)"),
    (3.0, r"values must be 1-D"),
    (["a", "b"], r"values must be a 1-D array of numbers"),
])
def test_bad_values_are_named(values, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(values, 0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"level": 1.0}, "level must be"), ({"level": 0}, "level must be"), ({"level": float("nan")}, "level must be"),
    ({"resamples": 0}, "resamples must be"), ({"resamples": 2.5}, "resamples must be"),
    ({"seed": -1}, "seed must be"), ({"seed": 1.5}, "seed must be"),
])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(**{"values": [1.0, 2.0, 3.0], "seed": 0, **kwargs})


def test_paired_difference_excludes_zero_for_a_clear_shift():
    rng = np.random.Generator(np.random.PCG64(4))
    base = rng.normal(20.0, 3.0, 64)  # large spread between images, small within a pair
    shifted = base + 0.3 + rng.normal(0.0, 0.2, 64)
    out = paired_difference(shifted, base, seed=9)
    assert set(out) == {"mean", "ci_low", "ci_high", "n", "excludes_zero"}
    assert out["n"] == 64 and out["mean"] == pytest.approx(float(np.mean(shifted - base)))
    assert 0.0 < out["ci_low"] < out["mean"] < out["ci_high"] < 0.6 and out["excludes_zero"] is True
    # the same shift is invisible to two unpaired intervals, which overlap widely
    a, b = bootstrap_ci(shifted, 1), bootstrap_ci(base, 2)
    assert a[0] < b[1]
    flipped = paired_difference(base, shifted, seed=9)
    assert flipped["mean"] < 0 and flipped["ci_high"] < 0 and flipped["excludes_zero"] is True


def test_paired_difference_of_noise_includes_zero():
    rng = np.random.Generator(np.random.PCG64(5))
    base = rng.normal(20.0, 3.0, 64)
    noisy = base + rng.normal(0.0, 0.2, 64)
    out = paired_difference(noisy, base, seed=9)
    assert out["ci_low"] < 0.0 < out["ci_high"] and out["excludes_zero"] is False
    same = paired_difference(base, base, seed=9)
    assert (same["mean"], same["ci_low"], same["ci_high"], same["excludes_zero"]) == (0.0, 0.0, 0.0, False)


def test_paired_difference_errors():
    with pytest.raises(ValueError, match="lengths 3 and 2"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0], 0)
    with pytest.raises(ValueError, match="b holds NaN at index 0"):
        paired_difference([1.0], [float("nan")], 0)
    with pytest.raises(ValueError, match="a is empty"):
        paired_difference([], [], 0)


def test_crossed_interval_counts_the_variance_across_training_seeds():
    # value = 3 + seed effect (sd 0.5) + image effect (sd 1) + noise (sd 0.3): 8 seeds x 24 images, 200 trials.
    # The seeds x images bootstrap covers the true mean at about the nominal rate; bootstrapping the images
    # of the seed-averaged values alone ignores the seed variance and covers clearly less often.
    rng = np.random.Generator(np.random.PCG64(1))
    trials, crossed, images_only = 200, 0, 0
    for k in range(trials):
        x = 3.0 + rng.normal(0, 0.5, (8, 1)) + rng.normal(0, 1.0, (1, 24)) + rng.normal(0, 0.3, (8, 24))
        r = crossed_bootstrap_ci(x, seed=k, resamples=1000)
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
        crossed += r["ci_low"] <= 3.0 <= r["ci_high"]
        low, high = bootstrap_ci(x.mean(axis=0), seed=k, resamples=1000)
        images_only += low <= 3.0 <= high
    assert 0.9 <= crossed / trials <= 0.99
    assert images_only / trials < crossed / trials - 0.04


def test_crossed_summary_reports_each_run_and_their_spread():
    x = np.array([[10.0, 12.0, 14.0], [11.0, 13.0, 15.0]])
    r = crossed_bootstrap_ci(x, seed=0)
    assert r["seed_means"] == [12.0, 13.0]
    assert r["seed_std"] == pytest.approx(np.std([12.0, 13.0], ddof=1))
    assert (r["n_seeds"], r["n_images"], r["mean"]) == (2, 3, 12.5)
    assert r == crossed_bootstrap_ci(x, seed=0)
    one = crossed_bootstrap_ci(x[:1], seed=0)
    assert one["seed_std"] == 0.0 and one["n_seeds"] == 1


@pytest.mark.parametrize("values, match", [(np.ones(3), "2-D"), (np.zeros((2, 0)), "empty"),
                                           (np.array([[1.0, np.nan]]), "NaN"), ([["a", "b"]], "numbers")])
def test_crossed_bad_values_are_named(values, match):
    with pytest.raises(ValueError, match=match):
        crossed_bootstrap_ci(values, seed=0)
