import numpy as np
import pytest
from skimage import io as skio

from udcshield.physics.masks import display_mask, load_user_mask, max_open_ratio, narrowest_feature_um
from udcshield.physics.psf import transmission_factor

COMMON = dict(pitch_um=168.0, sample_um=2.0, extent_um=168.0 * 6)


def test_toled_stripe_fraction_and_binary():
    m = display_mask("toled", open_ratio=5 / 21, **COMMON)
    assert m.shape == (504, 504) and m.dtype == np.float64
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert transmission_factor(m) == pytest.approx(5 / 21, abs=0.01)
    # vertical stripe: every row identical
    assert np.all(m == m[0:1])


@pytest.mark.parametrize("kind,ratio", [("circle", 0.3), ("poled", 0.25), ("toled", 0.4)])
def test_area_fraction(kind, ratio):
    m = display_mask(kind, open_ratio=ratio, pitch_um=168.0, sample_um=1.0, extent_um=168.0 * 4)
    assert m.mean() == pytest.approx(ratio, rel=0.03)


def test_antialias_gives_coverage():
    m = display_mask("circle", open_ratio=0.3, antialias=4, pitch_um=168.0, sample_um=7.3, extent_um=1000.0)
    assert m.min() >= 0 and m.max() <= 1
    assert np.any((m > 0) & (m < 1))
    assert m.mean() == pytest.approx(0.3, rel=0.05)


def test_open_and_user():
    assert np.all(display_mask("open", open_ratio=0.3, **COMMON) == 1.0)
    cell = np.zeros((4, 4))
    cell[1, 2] = 1.0
    m = display_mask("user", open_ratio=0.0, user_mask=cell, pitch_um=8.0, sample_um=2.0, extent_um=32.0)
    assert m.shape == (16, 16)
    assert m.mean() == pytest.approx(1 / 16)
    assert np.array_equal(m[:8], m[8:]) and np.array_equal(m[:, :8], m[:, 8:])
    assert narrowest_feature_um("user", 8.0, 0.0, cell) == pytest.approx(2.0)


def test_random_tile_flip_deterministic():
    kw = dict(open_ratio=0.3, random_tile_flip=True, **COMMON)
    a = display_mask("poled", rng=np.random.default_rng(3), **kw)
    b = display_mask("poled", rng=np.random.default_rng(3), **kw)
    plain = display_mask("poled", open_ratio=0.3, **COMMON)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, plain)
    assert a.mean() == pytest.approx(plain.mean(), rel=0.02)
    with pytest.raises(ValueError, match="rng"):
        display_mask("poled", **kw)


@pytest.mark.parametrize(
    "kwargs,culprit",
    [
        (dict(kind="hexagon"), "kind"),
        (dict(pitch_um=0.0), "pitch_um"),
        (dict(sample_um=-1.0), "sample_um"),
        (dict(extent_um=float("nan")), "extent_um"),
        (dict(open_ratio=0.0), "open_ratio"),
        (dict(kind="circle", open_ratio=0.9), "open_ratio"),
        (dict(kind="poled", open_ratio=max_open_ratio("poled") + 0.05), "open_ratio"),
        (dict(kind="user"), "user_mask"),
        (dict(kind="user", user_mask=np.full((3, 3), np.nan)), "user_mask"),
        (dict(kind="user", user_mask=np.zeros(5)), "user_mask"),
        (dict(antialias=0), "antialias"),
    ],
)
def test_bad_input(kwargs, culprit):
    args = dict(kind="toled", pitch_um=168.0, open_ratio=0.25, sample_um=2.0, extent_um=200.0)
    args.update(kwargs)
    kind = args.pop("kind")
    with pytest.raises(ValueError, match=culprit):
        display_mask(kind, **args)


def test_load_user_mask(tmp_path):
    cell = np.zeros((21, 21), dtype=np.uint8)
    cell[:, 8:13] = 255
    path = tmp_path / "cell.png"
    skio.imsave(str(path), cell, check_contrast=False)
    m = load_user_mask(path)
    assert m.shape == (21, 21) and m.dtype == np.float64
    assert m.sum() == 21 * 5
    with pytest.raises(FileNotFoundError):
        load_user_mask(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="bad.png"):
        load_user_mask(bad)
    dark = tmp_path / "dark.png"
    skio.imsave(str(dark), np.zeros((4, 4), dtype=np.uint8), check_contrast=False)
    with pytest.raises(ValueError, match="no open"):
        load_user_mask(dark)
