"""PCA kernel codes of a PSF bank (DISCNet-style conditioning)."""

import numpy as np
import pytest

from udcshield.physics import psf_pca_codes
from udcshield.physics.psf import psf_bank
from udcshield.seeding import numpy_rng


def _bank(k: int = 9, s: int = 7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    b = rng.random((k, 3, s, s))
    return b / b.sum(axis=(2, 3), keepdims=True)


def test_shape_dtype_centred_and_deterministic():
    bank = _bank()
    codes = psf_pca_codes(bank)
    assert codes.shape == (9, 5) and codes.dtype == np.float32
    np.testing.assert_allclose(codes.sum(axis=0), 0.0, atol=1e-6)  # centred on the bank mean
    np.testing.assert_array_equal(codes, psf_pca_codes(bank.copy()))
    var = (codes.astype(np.float64) ** 2).sum(axis=0)
    assert np.all(np.diff(var) <= 1e-12)  # decreasing variance
    assert psf_pca_codes(bank, dim=3).shape == (9, 3)
    np.testing.assert_allclose(psf_pca_codes(bank, dim=3), codes[:, :3], rtol=1e-6, atol=1e-9)


def test_codes_distinguish_psfs_of_a_real_bank():
    centre = np.zeros((3, 9, 9))
    centre[:, 4, 4] = 0.6
    centre[:, 3:6, 3:6] += 0.4 / 9
    bank = psf_bank(centre, 9, numpy_rng(0, "test/bank"))
    codes = psf_pca_codes(bank)
    d = np.linalg.norm(codes[:, None, :] - codes[None, :, :], axis=-1)
    assert np.all(d[~np.eye(9, dtype=bool)] > 0)


def test_known_answer_two_psfs():
    a = np.zeros((3, 3, 3))
    a[:, 1, 1] = 1.0
    b = np.zeros((3, 3, 3))
    b[:, 0, 1] = 1.0
    codes = psf_pca_codes(np.stack([a, b]))
    # centred: +-(a - b) / 2, one axis (a - b) / |a - b|, |a - b| = sqrt(6); tie -> first code positive
    half = np.sqrt(6.0) / 2
    np.testing.assert_allclose(codes, [[half, 0, 0, 0, 0], [-half, 0, 0, 0, 0]], rtol=1e-6, atol=1e-7)


def test_small_banks_are_zero_padded():
    assert np.array_equal(psf_pca_codes(_bank(k=1)), np.zeros((1, 5), np.float32))
    same = np.repeat(_bank(k=1), 4, axis=0)
    assert np.array_equal(psf_pca_codes(same), np.zeros((4, 5), np.float32))
    codes = psf_pca_codes(_bank(k=3))
    assert np.all(codes[:, 2:] == 0) and np.all(np.abs(codes[:, :2]).max(axis=0) > 0)


def test_sign_is_fixed_by_the_largest_entry():
    codes = psf_pca_codes(_bank(seed=3))
    for j in range(codes.shape[1]):
        assert codes[np.argmax(np.abs(codes[:, j])), j] > 0


@pytest.mark.parametrize("bank, dim, match", [
    (np.zeros((2, 1, 3, 3)), 5, "shape"),
    (np.zeros((3, 3, 3)), 5, "shape"),
    (np.full((2, 3, 3, 3), np.nan), 5, "NaN"),
    (np.zeros((2, 3, 3, 3)), 0, "dim"),
    (np.zeros((2, 3, 3, 3)), True, "dim"),
])
def test_bad_input(bank, dim, match):
    with pytest.raises(ValueError, match=match):
        psf_pca_codes(bank, dim=dim)
