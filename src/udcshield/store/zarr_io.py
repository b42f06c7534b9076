"""zarr (format 3) stores for image arrays, written atomically with provenance attributes.

Image arrays are N x C x H x W float32, chunked one image per chunk, zstd-compressed. A store is
addressed by a local path or by any fsspec URL (``memory://``, ``s3://bucket/prefix/x.zarr``,
``gs://...``, ``abfs://...``; the matching fsspec backend, e.g. s3fs, must be installed). Credentials
never travel through params or store attributes: fsspec reads them from its usual sources (environment,
``~/.aws``, instance roles) or from ``storage_options`` passed by the caller.

Atomicity (a crash never leaves a store that looks finished):

- Local path: the store is built in a temporary sibling folder; its root attribute ``complete`` is set
  last and the folder is renamed into place, so an interrupted stage never leaves a store that looks
  finished, and replacing a store keeps the old one until the new one is whole.
- URL (object store): object stores have no atomic rename of a prefix. The prefix is cleared, the arrays
  are written, and ``complete`` is written last; a crash leaves a store without ``complete``, which
  every reader here refuses (:class:`StoreError`), and an error inside the ``with`` block removes the
  partial prefix. A replaced store is therefore absent, not old, while it is being rewritten.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from udcshield.store.atomic import atomic_dir
from udcshield.store.hashing import array_sha256, blocks_sha256

StorePath = str | Path
StorageOptions = dict[str, Any] | None


class StoreError(ValueError):
    """A store is missing, incomplete, or holds an array of the wrong shape or with non-finite values."""


def is_url(path: StorePath) -> bool:
    """True when ``path`` is an fsspec URL other than ``file://`` (e.g. ``memory://a.zarr``, ``s3://b/x.zarr``)."""
    text = str(path)
    return isinstance(path, str) and "://" in text and not text.startswith("file://")


def _local(path: StorePath) -> Path:
    text = str(path)
    return Path(text[len("file://"):]) if text.startswith("file://") else Path(path)


def _label(path: StorePath) -> str:
    return str(path) if is_url(path) else _local(path).as_posix()


def _fs(url: str, storage_options: StorageOptions) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url, **(storage_options or {}))


def path_exists(path: StorePath, storage_options: StorageOptions = None) -> bool:
    """True when anything is at ``path`` (local file or folder, or URL prefix), a zarr store or not."""
    if is_url(path):
        fs, root = _fs(str(path), storage_options)
        return bool(fs.exists(root))
    return _local(path).exists()


def store_exists(path: StorePath, storage_options: StorageOptions = None) -> bool:
    """True when a zarr store (complete or not: its ``zarr.json`` exists) is at ``path``."""
    if is_url(path):
        fs, root = _fs(str(path), storage_options)
        return bool(fs.exists(f"{root.rstrip('/')}/zarr.json"))
    return (_local(path) / "zarr.json").is_file()


def remove_store(path: StorePath, storage_options: StorageOptions = None) -> None:
    """Delete the store at ``path`` (local folder or URL prefix); nothing there is not an error."""
    if is_url(path):
        fs, root = _fs(str(path), storage_options)
        if fs.exists(root):
            fs.rm(root, recursive=True)
        return
    import shutil

    shutil.rmtree(_local(path), ignore_errors=True)


class StoreWriter:
    """Adds arrays to a zarr group being built; see :func:`write_store`."""

    def __init__(self, group: zarr.Group, path: StorePath) -> None:
        self._group = group
        self._path = _label(path)
        self.digests: dict[str, str] = {}

    def add_images(self, name: str, images: np.ndarray, attrs: dict[str, Any] | None = None) -> None:
        """Store ``images`` (N, C, H, W) float32, finite, one chunk per image, under ``name`` (may contain '/')."""
        images = np.asarray(images)
        if images.ndim != 4:
            raise StoreError(f"{self._path}/{name}: images must be N x C x H x W, got shape {images.shape}")
        if images.dtype != np.float32:
            raise StoreError(f"{self._path}/{name}: images must be float32, got {images.dtype}")
        if not np.isfinite(images).all():
            raise StoreError(f"{self._path}/{name}: images contain NaN or Inf")
        self._add(name, images, (1, *images.shape[1:]), attrs)

    def add_array(self, name: str, array: np.ndarray, attrs: dict[str, Any] | None = None) -> None:
        """Store a small non-image array (e.g. PSFs, indices) in one chunk."""
        array = np.asarray(array)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise StoreError(f"{self._path}/{name}: array contains NaN or Inf")
        self._add(name, array, array.shape if array.ndim else (), attrs)

    def _add(self, name: str, array: np.ndarray, chunks: tuple[int, ...], attrs: dict[str, Any] | None) -> None:
        arr = self._group.create_array(name, shape=array.shape, dtype=array.dtype, chunks=chunks or None)
        arr[...] = array
        digest = array_sha256(array)
        self.digests[name] = digest
        arr.attrs.update(_jsonable({**(attrs or {}), "sha256": digest}))

    def set_group_attrs(self, name: str, attrs: dict[str, Any]) -> None:
        """Attach attributes to a (possibly new) sub-group."""
        self._group.require_group(name).attrs.update(_jsonable(attrs))


@contextlib.contextmanager
def write_store(path: StorePath, attrs: dict[str, Any], storage_options: StorageOptions = None) -> Iterator[StoreWriter]:
    """Build a zarr v3 store at ``path`` (local path or fsspec URL), atomically where the storage allows.

    ``attrs`` (provenance: stage, params, inputs, seeds, versions, device) go on the root group together
    with ``array_sha256`` (digest per array) and, last, ``complete: true``. See the module docstring for
    what "atomic" means on an object store.
    """
    if is_url(path):
        url = str(path)
        remove_store(url, storage_options)
        group = zarr.open_group(url, mode="w", zarr_format=3, storage_options=storage_options)
        try:
            writer = StoreWriter(group, url)
            yield writer
            group.attrs.update(_jsonable({**attrs, "array_sha256": writer.digests}))
            group.attrs["complete"] = True
        except BaseException:
            with contextlib.suppress(Exception):
                remove_store(url, storage_options)
            raise
        return
    final = _local(path)
    with atomic_dir(final) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        writer = StoreWriter(group, final)
        yield writer
        group.attrs.update(_jsonable({**attrs, "array_sha256": writer.digests}))
        group.attrs["complete"] = True


def open_store(path: StorePath, storage_options: StorageOptions = None) -> zarr.Group:
    """Open a finished store (local path or URL) read-only. Raises StoreError if it is missing or incomplete."""
    label = _label(path)
    if not store_exists(path, storage_options):
        if not is_url(path) and _local(path).is_dir():
            raise StoreError(f"{label} is not a zarr store: the folder has no zarr.json (an interrupted or "
                             "partial copy?); rerun the stage that writes it")
        raise StoreError(f"zarr store not found: {label}")
    if is_url(path):
        group = zarr.open_group(str(path), mode="r", zarr_format=3, storage_options=storage_options)
    else:
        group = zarr.open_group(_local(path), mode="r", zarr_format=3)
    if "complete" not in group.attrs:
        raise StoreError(f"zarr store {label} is incomplete (no 'complete' attribute); rerun its stage")
    if group.attrs["complete"] is not True:
        raise StoreError(f"zarr store {label} is incomplete ('complete' is {group.attrs['complete']!r}, not true); "
                         "rerun its stage")
    return group


def _image_node(group: zarr.Group, path: StorePath, name: str) -> zarr.Array:
    """Array ``name`` of ``group``, checked to be N x C x H x W float32."""
    label = _label(path)
    if name not in group:
        raise StoreError(f"{label}: no array named {name!r}")
    node = group[name]
    if not isinstance(node, zarr.Array) or len(node.shape) != 4 or node.dtype != np.float32:
        shape, dtype = (node.shape, node.dtype) if isinstance(node, zarr.Array) else ("a group", "")
        raise StoreError(f"{label}/{name}: expected N x C x H x W float32, got {shape} {dtype}")
    return node


def _read_rows(node: zarr.Array, rows: slice, where: str) -> np.ndarray:
    """``node[rows]``, finite; a chunk that cannot be decoded is a StoreError naming the array."""
    try:
        array = np.asarray(node[rows])
    except Exception as exc:  # codec errors (truncated or altered chunks) come as many types
        raise StoreError(f"{where}: cannot decode its stored data ({type(exc).__name__}: {exc}); the store is "
                         "corrupt: rerun the stage that writes it") from exc
    if not np.isfinite(array).all():
        raise StoreError(f"{where}: contains NaN or Inf")
    return array


def read_images(path: StorePath, name: str, verify: bool | None = None, rows: slice | None = None,
                storage_options: StorageOptions = None) -> np.ndarray:
    """Read image array ``name`` (N, C, H, W) float32 from the store at ``path``, checking finiteness.

    ``rows`` reads only those images (a slice of the first axis, e.g. one shard). ``verify`` compares the
    whole array's content digest with the one recorded at write time; the default (None) verifies every
    whole-array read, so an array altered after it was written is refused (StoreError naming it). A row
    read cannot be verified (``verify=True`` with ``rows`` is a ValueError); stages that read rows verify
    the whole array once first (:func:`verified_digest`).
    """
    if verify and rows is not None:
        raise ValueError("verify checks the whole array's digest; it cannot be combined with rows")
    group = open_store(path, storage_options)
    node = _image_node(group, path, name)
    array = _read_rows(node, slice(None) if rows is None else rows, f"{_label(path)}/{name}")
    if verify or (verify is None and rows is None):
        verify_array(path, name, array, storage_options)
    return array


def verified_digest(path: StorePath, name: str, storage_options: StorageOptions = None, block: int = 32) -> str:
    """The content digest of image array ``name``, recomputed from its data and checked against the one
    recorded at write time; StoreError naming the array if they differ, a chunk cannot be decoded or a
    value is NaN/Inf. Reads ``block`` images at a time, so memory stays bounded whatever N.

    This is what shard keys hash (:mod:`udcshield.pipeline.shards`): the content actually stored, so an
    array altered in place never reuses shards made from its earlier content.
    """
    group = open_store(path, storage_options)
    node = _image_node(group, path, name)
    where = f"{_label(path)}/{name}"
    expected = recorded_digest(path, name, storage_options)
    n = node.shape[0]
    actual = blocks_sha256(node.dtype, node.shape,
                           (_read_rows(node, slice(i, min(i + block, n)), where) for i in range(0, n, block)))
    _check_digest(where, actual, expected)
    return expected


def read_array(path: StorePath, name: str, storage_options: StorageOptions = None) -> np.ndarray:
    """Read any array ``name`` from the store at ``path``."""
    group = open_store(path, storage_options)
    if name not in group:
        raise StoreError(f"{_label(path)}: no array named {name!r}")
    return np.asarray(group[name][...])


def verify_array(path: StorePath, name: str, array: np.ndarray | None = None,
                 storage_options: StorageOptions = None) -> None:
    """Raise StoreError if the array's content digest differs from the one recorded when it was written."""
    expected = recorded_digest(path, name, storage_options)
    if array is None:
        group = open_store(path, storage_options)
        if name not in group:
            raise StoreError(f"{_label(path)}: no array named {name!r}")
        array = np.asarray(group[name][...])
    _check_digest(f"{_label(path)}/{name}", array_sha256(array), expected)


def _check_digest(where: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise StoreError(f"{where}: content digest {actual[:12]} differs from recorded {expected[:12]}: the array "
                         "was changed after its store was written; rerun the stage that writes it")


def recorded_digest(path: StorePath, name: str, storage_options: StorageOptions = None) -> str:
    """The SHA-256 of array ``name`` recorded when the store was written (cheap: no data is read)."""
    digest = store_attrs(path, storage_options=storage_options).get("array_sha256", {}).get(name)
    if not isinstance(digest, str):
        raise StoreError(f"{_label(path)}/{name}: no recorded digest")
    return digest


def store_attrs(path: StorePath, name: str = "", storage_options: StorageOptions = None) -> dict[str, Any]:
    """Attributes of the root group (or of ``name``) of a finished store."""
    group = open_store(path, storage_options)
    node = group[name] if name else group
    return dict(node.attrs)


def _jsonable(obj: Any) -> Any:
    """Round-trip through JSON so numpy scalars and tuples become plain types (and errors surface early)."""
    return json.loads(json.dumps(obj, default=_default))


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
