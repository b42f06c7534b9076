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
from udcshield.store.hashing import array_sha256

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


def store_exists(path: StorePath, storage_options: StorageOptions = None) -> bool:
    """True when something (complete or not) is stored at ``path``."""
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
        raise StoreError(f"zarr store not found: {label}")
    if is_url(path):
        group = zarr.open_group(str(path), mode="r", zarr_format=3, storage_options=storage_options)
    else:
        group = zarr.open_group(_local(path), mode="r", zarr_format=3)
    if group.attrs.get("complete") is not True:
        raise StoreError(f"zarr store {label} is incomplete (no 'complete' attribute); rerun its stage")
    return group


def read_images(path: StorePath, name: str, verify: bool = False, rows: slice | None = None,
                storage_options: StorageOptions = None) -> np.ndarray:
    """Read image array ``name`` (N, C, H, W) float32 from the store at ``path``, checking finiteness.

    ``rows`` reads only those images (a slice of the first axis, e.g. one shard). With ``verify``, the
    whole array's digest is compared with the one recorded at write time (not allowed with ``rows``).
    """
    if verify and rows is not None:
        raise ValueError("verify checks the whole array's digest; it cannot be combined with rows")
    group = open_store(path, storage_options)
    label = _label(path)
    if name not in group:
        raise StoreError(f"{label}: no array named {name!r}")
    node = group[name]
    if len(node.shape) != 4 or node.dtype != np.float32:
        raise StoreError(f"{label}/{name}: expected N x C x H x W float32, got {node.shape} {node.dtype}")
    array = np.asarray(node[...] if rows is None else node[rows])
    if not np.isfinite(array).all():
        raise StoreError(f"{label}/{name}: contains NaN or Inf")
    if verify:
        verify_array(path, name, array, storage_options)
    return array


def read_array(path: StorePath, name: str, storage_options: StorageOptions = None) -> np.ndarray:
    """Read any array ``name`` from the store at ``path``."""
    group = open_store(path, storage_options)
    if name not in group:
        raise StoreError(f"{_label(path)}: no array named {name!r}")
    return np.asarray(group[name][...])


def verify_array(path: StorePath, name: str, array: np.ndarray | None = None,
                 storage_options: StorageOptions = None) -> None:
    """Raise StoreError if the array's content digest differs from the one recorded when it was written."""
    group = open_store(path, storage_options)
    label = _label(path)
    expected = group.attrs.get("array_sha256", {}).get(name)
    if expected is None:
        raise StoreError(f"{label}/{name}: no recorded digest")
    actual = array_sha256(np.asarray(group[name][...]) if array is None else array)
    if actual != expected:
        raise StoreError(f"{label}/{name}: content digest {actual[:12]} differs from recorded {expected[:12]}")


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
