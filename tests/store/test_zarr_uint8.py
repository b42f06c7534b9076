"""Images of 8-bit levels stored as uint8 (``encoding="uint8"``): exact round trip, same digests as float32,
refusal of other values, tampering caught, and the size on disk."""

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr

from udcshield.store.hashing import array_sha256
from udcshield.store.zarr_io import (UINT8_LEVELS, StoreError, decode_uint8_levels, encode_uint8_levels, open_store,
                                     read_array, read_images, recorded_digest, store_attrs, verified_digest,
                                     verify_array, write_store)

LEVELS = np.float32(255)


def _levels(n: int = 4, size: int = 8, seed: int = 0) -> np.ndarray:
    """(n, 3, size, size) float32 8-bit levels k / 255, k random in 0..255."""
    k = np.random.default_rng(seed).integers(0, 256, (n, 3, size, size))
    return k.astype(np.float32) / LEVELS


def _every_level() -> np.ndarray:
    """(2, 1, 16, 16) float32: all 256 levels, in order and reversed."""
    levels = np.arange(256, dtype=np.float32) / LEVELS
    return np.stack([levels, levels[::-1]]).reshape(2, 1, 16, 16)


def _write_both(tmp_path: Path, images: np.ndarray) -> tuple[Path, Path]:
    """The same images written once as float32 and once as uint8 levels, each under ``x``."""
    paths = tmp_path / "f32.zarr", tmp_path / "u8.zarr"
    for path, encoding in zip(paths, ("float32", "uint8")):
        with write_store(path, {"stage": "test"}) as w:
            w.add_images("x", images, attrs={"budget": 8}, encoding=encoding)
    return paths


def _chunk_bytes(path: Path, name: str = "x") -> int:
    """Bytes of the chunk files of array ``name`` of the local store at ``path``."""
    return sum(p.stat().st_size for p in (path / name / "c").rglob("*") if p.is_file())


def test_round_trip_is_bit_identical_with_the_float32_digest(tmp_path):
    images = np.concatenate([_every_level(), _levels(2, 16)[:, :1]])
    f32, u8 = _write_both(tmp_path, images)
    node = open_store(u8)["x"]
    assert node.dtype == np.uint8 and node.chunks == (1, 1, 16, 16)
    assert store_attrs(u8, "x")["encoding"] == UINT8_LEVELS and store_attrs(u8, "x")["budget"] == 8
    assert "encoding" not in store_attrs(f32, "x") and open_store(f32)["x"].dtype == np.float32
    back = read_images(u8, "x", verify=True)
    assert back.dtype == np.float32 and np.array_equal(back, images)
    assert back.tobytes() == images.tobytes()                                   # bit for bit
    assert recorded_digest(u8, "x") == recorded_digest(f32, "x") == array_sha256(images) == array_sha256(back)
    assert store_attrs(u8)["array_sha256"] == store_attrs(f32)["array_sha256"]
    np.testing.assert_array_equal(read_array(u8, "x"), images)                  # the generic reader decodes too
    verify_array(u8, "x")                                                       # reads and decodes itself


def test_rows_and_verified_digest_match_the_float32_store(tmp_path):
    images = _levels(5)
    f32, u8 = _write_both(tmp_path, images)
    for rows in (slice(1, 3), slice(4, 5), slice(0, 5)):
        part = read_images(u8, "x", rows=rows)
        assert part.dtype == np.float32 and part.tobytes() == images[rows].tobytes()
    for block in (1, 2, 32):                                                    # blocks that do and do not divide N
        assert verified_digest(u8, "x", block=block) == verified_digest(f32, "x") == array_sha256(images)


def test_memory_url_round_trip(tmp_path):
    url, images = f"memory://udcshield-test-{uuid.uuid4().hex}/s.zarr", _levels(3)
    with write_store(url, {}) as w:
        w.add_images("a/b", images, encoding="uint8")
    assert open_store(url)["a/b"].dtype == np.uint8
    assert read_images(url, "a/b").tobytes() == images.tobytes()
    assert verified_digest(url, "a/b") == array_sha256(images)


def test_encode_and_decode_levels():
    images = _every_level()
    levels, digest = encode_uint8_levels(images)
    assert levels.dtype == np.uint8 and levels.reshape(-1).tolist() == list(range(256)) + list(range(255, -1, -1))
    assert decode_uint8_levels(levels).tobytes() == images.tobytes() and digest == array_sha256(images)
    negative_zero = np.full((1, 1, 2, 2), -0.0, np.float32)                      # level 0; reads back as +0.0
    levels, digest = encode_uint8_levels(negative_zero)
    assert not levels.any() and digest == array_sha256(np.zeros_like(negative_zero))


@pytest.mark.parametrize("value", [0.5, np.nextafter(np.float32(3) / LEVELS, np.float32(1)), 256 / 255, -1 / 255, 2.0],
                         ids=["half", "one-ulp-off", "level-256", "level-minus-1", "two"])
def test_values_that_are_not_levels_are_refused_naming_the_array(tmp_path, value):
    images = _levels(3)
    images[2, 1, 4, 5] = np.float32(value)
    path = tmp_path / "s.zarr"
    with pytest.raises(StoreError, match=r"s\.zarr/adv/pgd: values are not 8-bit levels .* at index \(2, 1, 4, 5\)"):
        with write_store(path, {}) as w:
            w.add_images("adv/pgd", images, encoding="uint8")
    assert not path.exists()                                                    # the failed write left nothing
    with write_store(path, {}) as w:                                            # float32 still stores anything finite
        w.add_images("adv/pgd", images)
    assert read_images(path, "adv/pgd").tobytes() == images.tobytes()


def test_bad_encodings_and_inputs_are_refused(tmp_path):
    path = tmp_path / "s.zarr"
    cases = [({"images": _levels(), "encoding": "uint16"},
              r"s\.zarr/x: unknown encoding 'uint16'; known: float32, uint8"),
             ({"images": _levels().astype(np.float64), "encoding": "uint8"}, "must be float32"),
             ({"images": np.full((1, 3, 2, 2), np.nan, np.float32), "encoding": "uint8"}, "NaN or Inf"),
             ({"images": _levels(), "attrs": {"encoding": "mine"}}, "'encoding' attribute is written by the store")]
    for kwargs, message in cases:
        with pytest.raises(StoreError, match=message):
            with write_store(path, {}) as w:
                w.add_images("x", **kwargs)
        assert not path.exists()


def test_tampered_uint8_chunk_is_caught(tmp_path):
    images = _levels(3)
    _, path = _write_both(tmp_path, images)
    arr = zarr.open_array(path / "x", mode="r+")
    arr[1, 0, 0, 0] = (int(arr[1, 0, 0, 0]) + 1) % 256                         # one level changed in place
    for read in (lambda: verify_array(path, "x"), lambda: read_images(path, "x"), lambda: verified_digest(path, "x")):
        with pytest.raises(StoreError, match=r"u8\.zarr/x: content digest .* differs from recorded"):
            read()
    read_images(path, "x", rows=slice(0, 1))                                    # rows are not verified (as for float32)


def test_truncated_uint8_chunk_cannot_be_decoded(tmp_path):
    _, path = _write_both(tmp_path, _levels(2))
    chunk = next(p for p in sorted((path / "x" / "c").rglob("*")) if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:20])
    for read in (lambda: read_images(path, "x"), lambda: verified_digest(path, "x"), lambda: verify_array(path, "x")):
        with pytest.raises(StoreError, match=r"u8\.zarr/x: cannot decode its stored data"):
            read()


def _edit_array_attrs(path: Path, name: str, edit) -> None:
    meta_file = path / name / "zarr.json"
    meta = json.loads(meta_file.read_text())
    edit(meta["attributes"])
    meta_file.write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.pop("encoding"), r"u8\.zarr/x: uint8 image array without an 'encoding' attribute"),
    (lambda a: a.update(encoding="uint8/127"), r"u8\.zarr/x: unknown encoding 'uint8/127'"),
], ids=["no-encoding", "unknown-encoding"])
def test_uint8_node_without_a_known_encoding_is_refused(tmp_path, edit, message):
    _, path = _write_both(tmp_path, _levels(2))
    _edit_array_attrs(path, "x", edit)
    for read in (lambda: read_images(path, "x"), lambda: read_images(path, "x", rows=slice(0, 1)),
                 lambda: verified_digest(path, "x")):
        with pytest.raises(StoreError, match=message):
            read()


def test_encoding_attribute_on_a_float32_array_is_refused(tmp_path):
    path, _ = _write_both(tmp_path, _levels(2))
    _edit_array_attrs(path, "x", lambda a: a.update(encoding=UINT8_LEVELS))
    with pytest.raises(StoreError, match=r"f32\.zarr/x: encoding 'uint8/255' on a float32 array"):
        read_images(path, "x")


def test_plain_uint8_arrays_stay_raw(tmp_path):
    path = tmp_path / "s.zarr"
    mask = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    with write_store(path, {}) as w:
        w.add_array("mask", mask)                                               # not an image array: no encoding
    assert read_array(path, "mask").dtype == np.uint8 and np.array_equal(read_array(path, "mask"), mask)
    verify_array(path, "mask")
    with pytest.raises(StoreError, match=r"s\.zarr/mask: uint8 image array without an 'encoding' attribute"):
        read_images(path, "mask")


def _adversarial_photos(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 3, size, size) float32 levels: crops of skimage's astronaut plus a random ±8/255 perturbation,
    clipped to [0, 1] and quantised to 8-bit levels, as a quantised L-inf attack leaves them."""
    import skimage.data

    photo = skimage.data.astronaut().transpose(2, 0, 1).astype(np.float32) / LEVELS
    rng = np.random.default_rng(seed)
    tops, lefts = rng.integers(0, photo.shape[1] - size, n), rng.integers(0, photo.shape[2] - size, n)
    crops = np.stack([photo[:, t:t + size, left:left + size] for t, left in zip(tops, lefts)])
    delta = rng.uniform(-8 / 255, 8 / 255, crops.shape).astype(np.float32)
    return np.rint(np.clip(crops + delta, 0, 1) * LEVELS) / LEVELS


@pytest.mark.parametrize("size", [64, 256])
def test_uint8_store_is_smaller(tmp_path, size):
    images = _adversarial_photos(2, size)
    f32, u8 = _write_both(tmp_path, images)
    assert read_images(u8, "x").tobytes() == images.tobytes()
    on_disk = {"float32": _chunk_bytes(f32), "uint8": _chunk_bytes(u8)}
    # At least 3x smaller than the float32 values themselves (4 bytes each): in fact about 4x ...
    assert 3 * on_disk["uint8"] <= images.nbytes, on_disk
    # ... but against float32 + zstd, which already squeezes the 8-bit levels' float32 patterns to about 10
    # bits a value, the gain is what the noise's entropy leaves (about 1.4x here), not 3x.
    assert 1.25 * on_disk["uint8"] <= on_disk["float32"], on_disk
