import numpy as np
import pytest
from skimage import io as skio

from udcshield.data.sources import EMBEDDED_PHOTOS, extract_patches, load_photo, load_photo_file, rescale_image


@pytest.mark.parametrize("name", EMBEDDED_PHOTOS)
def test_embedded_photos_load_offline(name):
    img = load_photo(name)
    assert img.ndim == 3 and img.shape[0] == 3 and min(img.shape[1:]) >= 256
    assert img.dtype == np.float64 and img.min() >= 0 and img.max() <= 1
    assert img.std() > 0.01


def test_unknown_photo_lists_valid_names():
    with pytest.raises(ValueError, match="chelsea"):
        load_photo("camera_man")


def test_load_photo_file(tmp_path):
    rgb = (np.arange(8 * 10 * 3).reshape(8, 10, 3) % 256).astype(np.uint8)
    skio.imsave(str(tmp_path / "a.png"), rgb, check_contrast=False)
    img = load_photo_file(tmp_path / "a.png")
    assert img.shape == (3, 8, 10)
    np.testing.assert_allclose(img, rgb.transpose(2, 0, 1) / 255.0)
    grey = np.full((5, 6), 128, dtype=np.uint8)
    skio.imsave(str(tmp_path / "g.jpg"), grey, check_contrast=False)
    g = load_photo_file(tmp_path / "g.jpg")
    assert g.shape == (3, 5, 6) and np.allclose(g[0], g[2])
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    skio.imsave(str(tmp_path / "r.png"), rgba, check_contrast=False)
    assert load_photo_file(tmp_path / "r.png").shape == (3, 4, 4)
    with pytest.raises(FileNotFoundError):
        load_photo_file(tmp_path / "none.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match="bad.jpg"):
        load_photo_file(tmp_path / "bad.jpg")


def test_extract_patches_are_windows_of_the_image():
    rng = np.random.default_rng(0)
    img = rng.random((3, 20, 30))
    patches = extract_patches(img, 5, 6, np.random.default_rng(1))
    assert patches.shape == (6, 3, 5, 5)
    for p in patches:
        found = any(
            np.array_equal(img[:, y : y + 5, x : x + 5], p) for y in range(16) for x in range(26)
        )
        assert found
    again = extract_patches(img, 5, 6, np.random.default_rng(1))
    assert np.array_equal(patches, again)


def test_extract_patches_scale_and_errors():
    img = np.random.default_rng(0).random((3, 40, 60))
    p = extract_patches(img, 16, 3, np.random.default_rng(0), scale=0.5)
    assert p.shape == (3, 3, 16, 16)
    assert rescale_image(img, 0.5).shape == (3, 20, 30)
    with pytest.raises(ValueError, match="size"):
        extract_patches(img, 32, 1, np.random.default_rng(0), scale=0.5)
    with pytest.raises(ValueError, match="scale"):
        extract_patches(img, 8, 1, np.random.default_rng(0), scale=0.0)
    with pytest.raises(ValueError, match="img"):
        extract_patches(img[0], 8, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="count"):
        extract_patches(img, 8, -1, np.random.default_rng(0))
