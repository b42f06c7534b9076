import json

import numpy as np
import pytest

from udcshield.store.atomic import atomic_dir
from udcshield.store.hashing import tree_sha256
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import (StoreError, open_store, read_array, read_images, store_attrs, verify_array,
                                     write_store)


def _images(n=3, seed=0):
    return np.random.default_rng(seed).random((n, 3, 8, 8), dtype=np.float32)


def test_round_trip_with_provenance(tmp_path):
    path = tmp_path / "s.zarr"
    images = _images()
    prov = make_provenance("test", {"a": 1}, seeds={"seed": 0})
    with write_store(path, prov) as w:
        w.add_images("x/y", images, attrs={"budget": 8})
        w.add_array("idx", np.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(read_images(path, "x/y", verify=True), images)
    np.testing.assert_array_equal(read_array(path, "idx"), np.arange(3))
    attrs = store_attrs(path)
    assert attrs["complete"] is True and attrs["stage"] == "test" and attrs["params"] == {"a": 1}
    assert attrs["libraries"]["zarr"].startswith("3")
    assert store_attrs(path, "x/y")["budget"] == 8
    # one chunk per image
    assert open_store(path)["x/y"].chunks == (1, 3, 8, 8)


def test_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError):
        with write_store(path, {}) as w:
            w.add_images("x", _images())
            raise RuntimeError("crash")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_rewrite_keeps_old_store(tmp_path):
    path = tmp_path / "s.zarr"
    old = _images(seed=1)
    with write_store(path, {}) as w:
        w.add_images("x", old)
    with pytest.raises(RuntimeError):
        with write_store(path, {}) as w:
            w.add_images("x", _images(seed=2))
            raise RuntimeError("crash")
    np.testing.assert_array_equal(read_images(path, "x"), old)


def test_incomplete_store_is_rejected(tmp_path):
    path = tmp_path / "s.zarr"
    with write_store(path, {}) as w:
        w.add_images("x", _images())
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"].pop("complete")
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="incomplete"):
        read_images(path, "x")


def test_bad_arrays_are_refused(tmp_path):
    bad = _images()
    bad[0, 0, 0, 0] = np.nan
    for arr, msg in [(bad, "NaN"), (_images()[0], "N x C x H x W"), (_images().astype(np.float64), "float32")]:
        with pytest.raises(StoreError, match=msg):
            with write_store(tmp_path / "s.zarr", {}) as w:
                w.add_images("x", arr)
        assert not (tmp_path / "s.zarr").exists()
    with pytest.raises(StoreError, match="not found"):
        read_images(tmp_path / "missing.zarr", "x")


def test_tampering_is_detected(tmp_path):
    path = tmp_path / "s.zarr"
    with write_store(path, {}) as w:
        w.add_images("x", np.zeros((2, 3, 4, 4), np.float32))
    before = tree_sha256(path)
    import zarr

    arr = zarr.open_array(path / "x", mode="r+")
    arr[0, 0, 0, 0] = 1.0
    assert tree_sha256(path) != before
    with pytest.raises(StoreError, match="digest"):
        verify_array(path, "x")


def test_atomic_dir_replaces(tmp_path):
    final = tmp_path / "d"
    with atomic_dir(final) as tmp:
        (tmp / "a").write_text("1")
    with atomic_dir(final) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
