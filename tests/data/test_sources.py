import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import io as skio

from udcshield.data.sources import EMBEDDED_PHOTOS, extract_patches, load_photo, load_photo_file, rescale_image


_PLUGIN_HINT = re.compile(r"pip install|pyav|opencv|backend", re.IGNORECASE)


def write_png16(path, a: np.ndarray, ctype: int) -> None:
    """Minimal 16-bit PNG encoder (no filtering): ``a`` (H, W, C) uint16; ctype 2 RGB, 4 grey+alpha, 6 RGBA."""
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in a)

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 16, ctype, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


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



@pytest.mark.parametrize("name", ["e.png", "e.jpg", "e"])
def test_load_photo_file_empty_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"cannot decode image file .*: the file is empty \(0 bytes\)") as err:
        load_photo_file(tmp_path / name)
    assert name in str(err.value) and not _PLUGIN_HINT.search(str(err.value))


def test_load_photo_file_undecodable_has_no_plugin_hint(tmp_path):
    for name in ("junk.png", "junk"):
        (tmp_path / name).write_bytes(b"garbage, not an image " * 3)
        with pytest.raises(ValueError, match="cannot decode image file") as err:
            load_photo_file(tmp_path / name)
        assert name in str(err.value) and not _PLUGIN_HINT.search(str(err.value))


def test_load_photo_file_grey_alpha(tmp_path):
    for h in (3, 5):
        g = (np.arange(h * 4).reshape(h, 4) * 11 % 256).astype(np.uint8)
        Image.fromarray(np.dstack([g, np.full_like(g, 7)])).save(tmp_path / "la.png")  # mode "LA"
        assert np.array_equal(load_photo_file(tmp_path / "la.png"), np.repeat(g[None] / 255.0, 3, axis=0))
    g16 = np.array([[1000, 40001], [0, 65535]], dtype=np.uint16)
    write_png16(tmp_path / "la16.png", np.dstack([g16, np.full_like(g16, 3)]), 4)
    assert np.array_equal(load_photo_file(tmp_path / "la16.png"), np.repeat(g16[None] / 65535.0, 3, axis=0))


@pytest.mark.parametrize("ctype", [2, 6])
def test_load_photo_file_16bit_colour_full_precision(tmp_path, ctype):
    a = np.random.default_rng(0).integers(0, 65536, size=(4, 5, 4 if ctype == 6 else 3)).astype(np.uint16)
    a[0, 0, :3] = (1000, 40001, 7)  # not multiples of 257
    write_png16(tmp_path / "c16.png", a, ctype)
    out = load_photo_file(tmp_path / "c16.png")
    assert out.dtype == np.float64 and out.shape == (3, 4, 5)
    assert np.array_equal(out, a[..., :3].transpose(2, 0, 1) / 65535.0)
    assert np.float32(out[0, 0, 0]) == np.float32(1000 / 65535) and out[1, 0, 0] == 40001 / 65535
    skio.imsave(str(tmp_path / "t16.tif"), a[..., :3], check_contrast=False)
    assert np.array_equal(load_photo_file(tmp_path / "t16.tif"), out)


def test_load_photo_file_grey16_and_palette(tmp_path):
    g16 = np.array([[0, 1000, 40001, 65535]], dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "i16.png")  # mode "I;16"
    assert np.array_equal(load_photo_file(tmp_path / "i16.png"), np.repeat(g16[None] / 65535.0, 3, axis=0))
    pal = Image.fromarray(np.array([[0, 1, 2]], dtype=np.uint8))
    pal.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30])
    pal.save(tmp_path / "p.png")
    lut = np.array([[255, 0, 0], [0, 255, 0], [10, 20, 30]])
    assert np.array_equal(load_photo_file(tmp_path / "p.png"), lut[None].transpose(2, 0, 1) / 255.0)


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
