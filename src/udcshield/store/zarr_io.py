"""zarr (format 3) stores for image arrays, written atomically with provenance attributes.

Image arrays are N x C x H x W float32, chunked one image per chunk, zstd-compressed. A store is built
in a temporary sibling folder; its root attribute ``complete`` is set last and the folder is renamed
into place, so an interrupted stage never leaves a store that looks finished (DESIGN.md section 6).
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


class StoreError(ValueError):
    """A store is missing, incomplete, or holds an array of the wrong shape or with non-finite values."""


class StoreWriter:
    """Adds arrays to a zarr group being built; see :func:`write_store`."""

    def __init__(self, group: zarr.Group, path: Path) -> None:
        self._group = group
        self._path = path
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
def write_store(path: str | Path, attrs: dict[str, Any]) -> Iterator[StoreWriter]:
    """Build a zarr v3 store at ``path`` atomically.

    ``attrs`` (provenance: stage, params, inputs, seeds, versions, device) go on the root group together
    with ``array_sha256`` (digest per array) and, last, ``complete: true``.
    """
    path = Path(path)
    with atomic_dir(path) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        writer = StoreWriter(group, path)
        yield writer
        group.attrs.update(_jsonable({**attrs, "array_sha256": writer.digests}))
        group.attrs["complete"] = True


def open_store(path: str | Path) -> zarr.Group:
    """Open a finished store read-only. Raises StoreError if it is missing or incomplete."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"zarr store not found: {path}")
    group = zarr.open_group(path, mode="r", zarr_format=3)
    if group.attrs.get("complete") is not True:
        raise StoreError(f"zarr store {path} is incomplete (no 'complete' attribute); rerun its stage")
    return group


def read_images(path: str | Path, name: str, verify: bool = False) -> np.ndarray:
    """Read image array ``name`` (N, C, H, W) float32 from the store at ``path``, checking finiteness.

    With ``verify``, the array's digest is compared with the one recorded at write time.
    """
    group = open_store(path)
    if name not in group:
        raise StoreError(f"{path}: no array named {name!r}")
    array = np.asarray(group[name][...])
    if array.ndim != 4 or array.dtype != np.float32:
        raise StoreError(f"{path}/{name}: expected N x C x H x W float32, got {array.shape} {array.dtype}")
    if not np.isfinite(array).all():
        raise StoreError(f"{path}/{name}: contains NaN or Inf")
    if verify:
        verify_array(path, name, array)
    return array


def read_array(path: str | Path, name: str) -> np.ndarray:
    """Read any array ``name`` from the store at ``path``."""
    group = open_store(path)
    if name not in group:
        raise StoreError(f"{path}: no array named {name!r}")
    return np.asarray(group[name][...])


def verify_array(path: str | Path, name: str, array: np.ndarray | None = None) -> None:
    """Raise StoreError if the array's content digest differs from the one recorded when it was written."""
    group = open_store(path)
    expected = group.attrs.get("array_sha256", {}).get(name)
    if expected is None:
        raise StoreError(f"{path}/{name}: no recorded digest")
    actual = array_sha256(np.asarray(group[name][...]) if array is None else array)
    if actual != expected:
        raise StoreError(f"{path}/{name}: content digest {actual[:12]} differs from recorded {expected[:12]}")


def store_attrs(path: str | Path, name: str = "") -> dict[str, Any]:
    """Attributes of the root group (or of ``name``) of a finished store."""
    group = open_store(path)
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
