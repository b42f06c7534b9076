import math
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from skimage import io as skio

from udcshield.data.readers import (
    mat_is_hdf5,
    mat_keys,
    read_hdr,
    read_linear_image,
    read_mat_arrays,
    read_npy_image,
    read_png,
)
from udcshield.physics.tonemap import srgb_to_linear


def rgbe_encode(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float >= 0 -> (H, W, 4) uint8 RGBE (Radiance float2rgbe)."""
    out = np.zeros(img.shape[:2] + (4,), dtype=np.uint8)
    for idx in np.ndindex(img.shape[:2]):
        v = float(img[idx].max())
        if v < 1e-32:
            continue
        mant, e = math.frexp(v)
        scale = mant * 256.0 / v
        out[idx][:3] = np.floor(img[idx] * scale).astype(np.uint8)
        out[idx][3] = e + 128
    return out


def write_hdr(
    path: Path, rgbe_rows: bytes, h: int, w: int, res: str | None = None, fmt: str = "32-bit_rle_rgbe"
) -> None:
    header = f"#?RADIANCE\n# test\nFORMAT={fmt}\nEXPOSURE=1.0\n\n{res or f'-Y {h} +X {w}'}\n".encode()
    path.write_bytes(header + rgbe_rows)


def rle_component(values: list[int], plan: list[tuple[str, int]]) -> bytes:
    """Encode one component of a scanline with new-style RLE following ``plan`` of ("run"|"lit", count)."""
    out, x = bytearray(), 0
    for kind, n in plan:
        if kind == "run":
            assert len(set(values[x : x + n])) == 1
            out += bytes([128 + n, values[x]])
        else:
            out += bytes([n, *values[x : x + n]])
        x += n
    assert x == len(values)
    return bytes(out)


_PLUGIN_HINT = re.compile(r"pip install|pyav|opencv|backend", re.IGNORECASE)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def write_png(path: Path, a: np.ndarray, ctype: int, filters=(0,), interlace: bool = False) -> None:
    """Minimal 16-bit PNG encoder: ``a`` (H, W, C) uint16, row filters cycled from ``filters``, optional Adam7."""
    h, w, c = a.shape

    def encode(sub: np.ndarray) -> bytes:
        bpp, rows = 2 * c, []
        prev = np.zeros(sub.shape[1] * bpp, dtype=np.int64)
        for y in range(sub.shape[0]):
            cur = np.frombuffer(sub[y].astype(">u2").tobytes(), dtype=np.uint8).astype(np.int64)
            left = np.concatenate([np.zeros(bpp, np.int64), cur[:-bpp]])
            upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
            pa, pb, pc = np.abs(prev - upleft), np.abs(left - upleft), np.abs(left + prev - 2 * upleft)
            paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            f = filters[y % len(filters)]
            pred = [0 * cur, left, prev, (left + prev) // 2, paeth][f]
            rows.append(bytes([f]) + ((cur - pred) % 256).astype(np.uint8).tobytes())
            prev = cur
        return b"".join(rows)

    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b"".join(encode(a[y0::dy, x0::dx]) for x0, y0, dx, dy in passes if a[y0::dy, x0::dx].size)

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, int(interlace))
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


# ---------------------------------------------------------------- .npy


def test_read_npy_hwc_and_chw(tmp_path):
    arr = np.random.default_rng(0).uniform(0, 900, size=(24, 32, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", arr)
    out = read_npy_image(tmp_path / "a.npy")
    assert out.shape == (3, 24, 32) and out.dtype == np.float64
    np.testing.assert_array_equal(out, arr.transpose(2, 0, 1).astype(np.float64))
    np.save(tmp_path / "b.npy", arr.transpose(2, 0, 1))
    np.testing.assert_array_equal(read_npy_image(tmp_path / "b.npy"), out)


@pytest.mark.parametrize(
    "arr,match",
    [
        (np.zeros((24, 32)), "3-D"),
        (np.zeros((2, 24, 32, 3)), "3-D"),
        (np.zeros((24, 32, 4)), "3 colour channels"),
        (np.full((4, 5, 3), np.nan), "NaN or Inf"),
        (np.full((4, 5, 3), np.inf), "NaN or Inf"),
        (np.array(["a", "b", "c"] * 4).reshape(2, 2, 3), "numeric"),
    ],
)
def test_read_npy_rejects(tmp_path, arr, match):
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(ValueError, match=match) as err:
        read_npy_image(tmp_path / "x.npy")
    assert "x.npy" in str(err.value)


def test_read_npy_pickled_corrupt_missing(tmp_path):
    obj = np.empty((2, 2, 3), dtype=object)
    obj[...] = 1.0
    np.save(tmp_path / "p.npy", obj, allow_pickle=True)
    with pytest.raises(ValueError, match=r"p\.npy.*pickle"):
        read_npy_image(tmp_path / "p.npy")
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"c\.npy"):
        read_npy_image(tmp_path / "c.npy")
    np.save(tmp_path / "t.npy", np.ones((8, 8, 3)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-100])
    with pytest.raises(ValueError, match=r"t\.npy"):
        read_npy_image(tmp_path / "t.npy")
    with pytest.raises(FileNotFoundError, match="none.npy"):
        read_npy_image(tmp_path / "none.npy")


# ---------------------------------------------------------------- PNG / TIFF


def test_read_png_exact(tmp_path):
    rgb = (np.arange(24 * 32 * 3).reshape(24, 32, 3) % 256).astype(np.uint8)
    skio.imsave(str(tmp_path / "a.png"), rgb, check_contrast=False)
    out = read_png(tmp_path / "a.png")
    assert out.shape == (3, 24, 32) and out.dtype == np.float64
    assert np.array_equal(out, rgb.transpose(2, 0, 1) / 255.0)
    grey = np.full((5, 6), 51, dtype=np.uint8)
    skio.imsave(str(tmp_path / "g.png"), grey, check_contrast=False)
    assert np.array_equal(read_png(tmp_path / "g.png"), np.full((3, 5, 6), 0.2))
    rgba = np.concatenate([rgb, np.full((24, 32, 1), 7, np.uint8)], axis=-1)
    skio.imsave(str(tmp_path / "r.png"), rgba, check_contrast=False)
    assert np.array_equal(read_png(tmp_path / "r.png"), out)
    t16 = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 3001 % 65536).astype(np.uint16)
    skio.imsave(str(tmp_path / "t.tif"), t16, check_contrast=False)
    assert np.array_equal(read_png(tmp_path / "t.tif"), t16.transpose(2, 0, 1) / 65535.0)


def test_read_png_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.png"):
        read_png(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match=r"cannot decode image file .*bad\.png"):
        read_png(tmp_path / "bad.png")


@pytest.mark.parametrize("name", ["e.png", "e.jpg", "e.tif", "e"])
def test_read_png_empty_file_names_it(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    for reader in (read_png, read_linear_image):
        with pytest.raises(ValueError, match=r"cannot decode image file .*: the file is empty \(0 bytes\)") as err:
            reader(tmp_path / name)
        assert name in str(err.value) and not _PLUGIN_HINT.search(str(err.value))


@pytest.mark.parametrize("name", ["junk.png", "junk.jpg", "junk", "junk.webp"])
def test_read_png_undecodable_file_has_no_plugin_hint(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not an image at all " * 4)
    with pytest.raises(ValueError, match="cannot decode image file") as err:
        read_png(tmp_path / name)
    assert name in str(err.value) and not _PLUGIN_HINT.search(str(err.value))


def test_read_png_grey_alpha_8_and_16_bit(tmp_path):
    from PIL import Image

    for h in (3, 5):  # 3 rows: scikit-image took such a (3, W, 2) array for channel-first
        g = (np.arange(h * 6).reshape(h, 6) * 7 % 256).astype(np.uint8)
        Image.fromarray(np.dstack([g, np.full_like(g, 99)])).save(tmp_path / "la8.png")
        assert np.array_equal(read_png(tmp_path / "la8.png"), np.repeat(g[None] / 255.0, 3, axis=0))
    g16 = np.array([[0, 1000, 40001], [65535, 12345, 257]], dtype=np.uint16)
    la16 = np.dstack([g16, np.full_like(g16, 500)])
    for filt in range(5):
        write_png(tmp_path / "la16.png", la16, 4, filters=(filt,))
        assert np.array_equal(read_png(tmp_path / "la16.png"), np.repeat(g16[None] / 65535.0, 3, axis=0))


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("ctype", [2, 6])
def test_read_png_16bit_colour_full_precision(tmp_path, ctype, interlace):
    a = np.random.default_rng(ctype).integers(0, 65536, size=(11, 13, 4 if ctype == 6 else 3)).astype(np.uint16)
    a[0, 0, :3] = (1000, 40001, 7)  # not multiples of 257: 8-bit decoding cannot give these
    write_png(tmp_path / "c16.png", a, ctype, filters=(0, 1, 2, 3, 4), interlace=interlace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = read_png(tmp_path / "c16.png")
    expect = a[..., :3].transpose(2, 0, 1) / 65535.0
    assert out.shape == (3, 11, 13) and out.dtype == np.float64
    assert np.array_equal(out, expect)
    assert np.array_equal(out.astype(np.float32), (a[..., :3] / np.float32(65535)).transpose(2, 0, 1))
    assert out[0, 0, 0] == 1000 / 65535 and out[1, 0, 0] == 40001 / 65535
    np.testing.assert_allclose(read_linear_image(tmp_path / "c16.png"), srgb_to_linear(expect))
    png = (tmp_path / "c16.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    with pytest.raises(ValueError, match=r"cannot decode image file .*cut\.png"):
        read_png(tmp_path / "cut.png")


def test_read_png_16bit_colour_from_a_real_encoder():
    from PIL import Image

    f = Path(skio.__file__).parents[1] / "data" / "chessboard_RGB.png"
    if not f.is_file() or f.read_bytes()[24:26] != bytes([16, 2]):
        pytest.skip("scikit-image's 16-bit RGB sample image is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = read_png(f)
    v = np.round(out * 65535).astype(np.uint16)
    assert np.array_equal(v / 65535.0, out) and np.any(v % 257)  # 16-bit values, not 8-bit ones scaled
    with Image.open(f) as im:  # Pillow keeps the high byte of each 16-bit sample
        assert np.array_equal(v >> 8, np.asarray(im.convert("RGB")).transpose(2, 0, 1))


def test_read_png_grey16_palette_and_bilevel(tmp_path):
    from PIL import Image

    g16 = np.array([[0, 1000, 40001, 65535]], dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "i16.png")  # mode "I;16"
    assert np.array_equal(read_png(tmp_path / "i16.png"), np.repeat(g16[None] / 65535.0, 3, axis=0))
    pal = Image.fromarray(np.array([[0, 1, 2, 3]], dtype=np.uint8))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    pal.save(tmp_path / "p.png")
    lut = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]])
    assert np.array_equal(read_png(tmp_path / "p.png"), lut[None].transpose(2, 0, 1) / 255.0)
    Image.fromarray(np.array([[True, False, True]])).save(tmp_path / "b.png")  # 1-bit
    assert np.array_equal(read_png(tmp_path / "b.png")[:, 0], np.array([[1.0, 0.0, 1.0]] * 3))


def test_read_linear_image(tmp_path):
    rgb = (np.arange(6 * 7 * 3).reshape(6, 7, 3) * 5 % 256).astype(np.uint8)
    skio.imsave(str(tmp_path / "a.png"), rgb, check_contrast=False)
    np.testing.assert_allclose(read_linear_image(tmp_path / "a.png"), srgb_to_linear(rgb.transpose(2, 0, 1) / 255.0))
    f = np.random.default_rng(1).uniform(0, 3, size=(4, 5, 3)).astype(np.float32)
    skio.imsave(str(tmp_path / "f.tif"), f, check_contrast=False)
    np.testing.assert_array_equal(read_linear_image(tmp_path / "f.tif"), f.transpose(2, 0, 1).astype(np.float64))
    (tmp_path / "x.exr").write_bytes(b"\x76\x2f\x31\x01rest")
    with pytest.raises(ValueError, match=r"x\.exr.*EXR"):
        read_linear_image(tmp_path / "x.exr")


# ---------------------------------------------------------------- Radiance .hdr


def test_read_hdr_flat_exact_values(tmp_path):
    img = np.zeros((3, 4, 3))
    img[0, 0] = (1.0, 0.5, 0.25)
    img[1, 2] = (1000.0, 500.0, 0.0)
    img[2, 3] = (0.75, 3.0, 1.5)
    img[2, 0] = (2.0**-10, 2.0**-11, 0.0)
    rgbe = rgbe_encode(img)
    assert tuple(rgbe[0, 0]) == (128, 64, 32, 129)
    write_hdr(tmp_path / "a.hdr", rgbe.tobytes(), 3, 4)
    out = read_hdr(tmp_path / "a.hdr")
    assert out.shape == (3, 3, 4) and out.dtype == np.float64
    np.testing.assert_array_equal(out, img.transpose(2, 0, 1))


def test_read_hdr_random_roundtrip_precision(tmp_path):
    img = np.random.default_rng(2).uniform(0.01, 800, size=(5, 9, 3))
    write_hdr(tmp_path / "r.hdr", rgbe_encode(img).tobytes(), 5, 9)
    out = read_hdr(tmp_path / "r.hdr").transpose(1, 2, 0)
    # RGBE keeps 8 mantissa bits relative to the brightest channel of each pixel
    assert np.all(np.abs(out - img) <= img.max(axis=-1, keepdims=True) / 128)
    assert np.all(out <= img)


def test_read_hdr_new_style_rle(tmp_path):
    w = 10
    rgbe = np.zeros((2, w, 4), dtype=np.uint8)
    rgbe[0, :, 0] = [5, 5, 5, 5, 9, 8, 7, 7, 7, 7]
    rgbe[0, :, 1] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    rgbe[0, :, 2] = 200
    rgbe[0, :, 3] = [130] * 5 + [120] * 5
    rgbe[1] = rgbe[0, ::-1]
    plans = {
        (0, 0): [("run", 4), ("lit", 2), ("run", 4)],
        (0, 1): [("lit", 10)],
        (0, 2): [("run", 10)],
        (0, 3): [("run", 5), ("run", 5)],
        (1, 0): [("run", 4), ("lit", 2), ("run", 4)],
        (1, 1): [("lit", 3), ("lit", 7)],
        (1, 2): [("run", 3), ("run", 7)],
        (1, 3): [("run", 5), ("run", 5)],
    }
    data = b""
    for y in range(2):
        data += bytes([2, 2, w >> 8, w & 0xFF])
        for c in range(4):
            data += rle_component(rgbe[y, :, c].tolist(), plans[(y, c)])
    write_hdr(tmp_path / "rle.hdr", data, 2, w)
    write_hdr(tmp_path / "flat.hdr", rgbe.tobytes(), 2, w)
    rle, flat = read_hdr(tmp_path / "rle.hdr"), read_hdr(tmp_path / "flat.hdr")
    assert rle.shape == (3, 2, w)
    np.testing.assert_array_equal(rle, flat)
    assert rle[0, 0, 0] == 5 * 2.0 ** (130 - 136) and rle[0, 0, 9] == 7 * 2.0 ** (120 - 136)
    # mixing: one RLE scanline followed by a flat one
    first_len = 4 + sum(len(rle_component(rgbe[0, :, c].tolist(), plans[(0, c)])) for c in range(4))
    write_hdr(tmp_path / "mix.hdr", data[:first_len] + rgbe[1].tobytes(), 2, w)
    np.testing.assert_array_equal(read_hdr(tmp_path / "mix.hdr"), flat)
    # corrupt: run overruns the scanline / truncated data
    bad = bytes([2, 2, 0, w, 128 + 11, 1]) + b"\x00" * 40
    write_hdr(tmp_path / "bad.hdr", bad, 1, w)
    with pytest.raises(ValueError, match=r"bad\.hdr.*overruns"):
        read_hdr(tmp_path / "bad.hdr")
    write_hdr(tmp_path / "trunc.hdr", data[:-3], 2, w)
    with pytest.raises(ValueError, match=r"trunc\.hdr.*truncated"):
        read_hdr(tmp_path / "trunc.hdr")


def test_read_hdr_old_style_rle(tmp_path):
    px = bytes([64, 128, 32, 130])
    # one pixel, then "repeat previous 4 times", then a different pixel: width 6
    data = px + bytes([1, 1, 1, 4]) + bytes([10, 20, 30, 129])
    write_hdr(tmp_path / "old.hdr", data, 1, 6)
    out = read_hdr(tmp_path / "old.hdr")
    f = 2.0 ** (130 - 136)
    np.testing.assert_array_equal(out[:, 0, :5], np.repeat(np.array([[64 * f], [128 * f], [32 * f]]), 5, axis=1))
    np.testing.assert_array_equal(out[:, 0, 5], np.array([10, 20, 30]) * 2.0 ** (129 - 136))


def test_read_hdr_orientations(tmp_path):
    img = np.stack([np.full(3, 2.0**k) for k in range(6)]).reshape(2, 3, 3)  # powers of two are exact
    std = rgbe_encode(img)
    write_hdr(tmp_path / "s.hdr", std.tobytes(), 2, 3)
    ref = read_hdr(tmp_path / "s.hdr")
    np.testing.assert_array_equal(ref, img.transpose(2, 0, 1))
    write_hdr(tmp_path / "py.hdr", std[::-1].tobytes(), 2, 3, res="+Y 2 +X 3")
    np.testing.assert_array_equal(read_hdr(tmp_path / "py.hdr"), ref)
    write_hdr(tmp_path / "mx.hdr", std[:, ::-1].copy().tobytes(), 2, 3, res="-Y 2 -X 3")
    np.testing.assert_array_equal(read_hdr(tmp_path / "mx.hdr"), ref)
    write_hdr(tmp_path / "xy.hdr", std.transpose(1, 0, 2).copy().tobytes(), 2, 3, res="+X 3 -Y 2")
    np.testing.assert_array_equal(read_hdr(tmp_path / "xy.hdr"), ref)


def test_read_hdr_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_hdr(tmp_path / "none.hdr")
    (tmp_path / "magic.hdr").write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    with pytest.raises(ValueError, match=r"magic\.hdr.*Radiance"):
        read_hdr(tmp_path / "magic.hdr")
    write_hdr(tmp_path / "xyz.hdr", bytes(4), 1, 1, fmt="32-bit_rle_xyze")
    with pytest.raises(ValueError, match="xyze"):
        read_hdr(tmp_path / "xyz.hdr")
    write_hdr(tmp_path / "res.hdr", bytes(4), 1, 1, res="-Y 1 +Y 1")
    with pytest.raises(ValueError, match=r"res\.hdr.*resolution"):
        read_hdr(tmp_path / "res.hdr")
    (tmp_path / "nohead.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n")
    with pytest.raises(ValueError, match="blank line"):
        read_hdr(tmp_path / "nohead.hdr")
    write_hdr(tmp_path / "short.hdr", bytes(4 * 5), 2, 3)
    with pytest.raises(ValueError, match=r"short\.hdr.*truncated"):
        read_hdr(tmp_path / "short.hdr")


# ---------------------------------------------------------------- .mat


def test_read_mat_arrays(tmp_path):
    disp = np.random.default_rng(3).integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "m.mat", {"val_display": disp, "val_gt": disp[::-1]})
    assert sorted(mat_keys(tmp_path / "m.mat")) == ["val_display", "val_gt"]
    got = read_mat_arrays(tmp_path / "m.mat", ["val_display", "val_gt"])
    assert got["val_display"].dtype == np.uint8
    np.testing.assert_array_equal(got["val_display"], disp)
    np.testing.assert_array_equal(got["val_gt"], disp[::-1])
    with pytest.raises(ValueError, match=r"test_gt.*val_display"):
        read_mat_arrays(tmp_path / "m.mat", ["test_gt"])
    assert not mat_is_hdf5(tmp_path / "m.mat")


def test_read_mat_hdf5_corrupt_missing(tmp_path):
    head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    blob = head.ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64)
    (tmp_path / "v73.mat").write_bytes(blob)
    assert mat_is_hdf5(tmp_path / "v73.mat")
    with pytest.raises(ValueError, match=r"v73\.mat.*h5py"):
        read_mat_arrays(tmp_path / "v73.mat", ["val_display"])
    (tmp_path / "bad.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match=r"bad\.mat"):
        read_mat_arrays(tmp_path / "bad.mat", ["x"])
    with pytest.raises(FileNotFoundError):
        read_mat_arrays(tmp_path / "none.mat", ["x"])
