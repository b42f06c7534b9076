"""zarr stores addressed by fsspec URLs (``memory://`` here; ``s3://`` etc. behave the same way)."""

import uuid

import numpy as np
import pytest
import zarr

from udcshield.store.zarr_io import (StoreError, is_url, open_store, read_images, recorded_digest, remove_store,
                                     store_attrs, store_exists, verify_array, write_store)


def _url() -> str:
    return f"memory://udcshield-test-{uuid.uuid4().hex}/s.zarr"


def _images(n=4, seed=0):
    return np.random.default_rng(seed).random((n, 3, 8, 8), dtype=np.float32)


def test_is_url():
    assert is_url("memory://a/b.zarr") and is_url("s3://bucket/x.zarr")
    assert not is_url("data/x.zarr") and not is_url("file:///tmp/x.zarr")


def test_memory_url_round_trip_rows_and_digest():
    url, images = _url(), _images()
    with write_store(url, {"stage": "test"}) as w:
        w.add_images("a/b", images, attrs={"budget": 8})
    assert store_exists(url)
    np.testing.assert_array_equal(read_images(url, "a/b", verify=True), images)
    np.testing.assert_array_equal(read_images(url, "a/b", rows=slice(1, 3)), images[1:3])
    attrs = store_attrs(url)
    assert attrs["complete"] is True and attrs["stage"] == "test"
    assert store_attrs(url, "a/b")["budget"] == 8
    assert recorded_digest(url, "a/b") == attrs["array_sha256"]["a/b"]
    assert open_store(url)["a/b"].chunks == (1, 3, 8, 8)
    remove_store(url)
    assert not store_exists(url)
    with pytest.raises(StoreError, match="not found"):
        open_store(url)


def test_error_inside_write_removes_the_partial_store():
    url = _url()
    with pytest.raises(RuntimeError, match="crash"):
        with write_store(url, {}) as w:
            w.add_images("x", _images())
            raise RuntimeError("crash")
    assert not store_exists(url)


def test_store_killed_before_complete_is_refused():
    url = _url()  # what a SIGKILL between the arrays and the final attribute leaves on an object store
    group = zarr.open_group(url, mode="w", zarr_format=3)
    group.create_array("x", shape=(1, 3, 8, 8), dtype="float32")[...] = _images(1)
    with pytest.raises(StoreError, match="incomplete"):
        read_images(url, "x")


def test_rewrite_replaces_old_arrays_and_verify_catches_tampering():
    url = _url()
    with write_store(url, {}) as w:
        w.add_images("old", _images())
    with write_store(url, {}) as w:
        w.add_images("new", _images(seed=1))
    assert "old" not in open_store(url) and "new" in open_store(url)
    zarr.open_group(url, mode="r+", zarr_format=3)["new"][0, 0, 0, 0] = 0.5
    with pytest.raises(StoreError, match="digest"):
        verify_array(url, "new")


def test_rows_cannot_be_verified_and_bad_array_is_named():
    url = _url()
    with write_store(url, {}) as w:
        w.add_images("x", _images())
    with pytest.raises(ValueError, match="verify"):
        read_images(url, "x", verify=True, rows=slice(0, 1))
    with pytest.raises(StoreError, match="no array named 'y'"):
        read_images(url, "y")


def test_file_url_is_a_local_atomic_store(tmp_path):
    url = f"file://{tmp_path / 's.zarr'}"
    with write_store(url, {}) as w:
        w.add_images("x", _images())
    assert (tmp_path / "s.zarr" / "zarr.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]
    np.testing.assert_array_equal(read_images(url, "x"), _images())
