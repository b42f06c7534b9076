"""zarr (format 3) stores for image arrays, written atomically with provenance attributes.

Image arrays are N x C x H x W float32, chunked one image per chunk, zstd-compressed. A store is
addressed by a local path or by any fsspec URL (``memory://``, ``s3://bucket/prefix/x.zarr``,
``gs://...``, ``abfs://...``; the matching fsspec backend, e.g. s3fs, must be installed). Credentials
never travel through params or store attributes: fsspec reads them from its usual sources (environment,
``~/.aws``, instance roles) or from ``storage_options`` passed by the caller.

8-bit levels: images whose every value is ``np.float32(k) / np.float32(255)`` (integer k in 0..255, e.g.
quantised adversarial inputs) may be stored as their uint8 levels k instead (``encoding="uint8"`` of
:meth:`StoreWriter.add_images`; array attribute ``encoding: "uint8/255"``), a quarter of the raw bytes.
Every reader decodes them to the same float32 values (``k.astype(float32) / float32(255)``), and the
recorded digest is that of the decoded float32 content, so what readers return and every digest are the
same whatever the encoding.

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
    """A store is missing, incomplete, or holds an array of the wrong shape, with non-finite values, or in an
    encoding that cannot be decoded; or images cannot be stored in the encoding asked for."""


ENCODINGS = ("float32", "uint8")
"""Values of ``encoding`` accepted by :meth:`StoreWriter.add_images`."""
UINT8_LEVELS = "uint8/255"
"""The ``encoding`` array attribute of images stored as uint8 levels k (decoded value k / 255)."""
_LEVELS = np.float32(255)
_ENCODE_BLOCK = 64  # images encoded at a time, so temporaries stay bounded whatever N


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

    def add_images(self, name: str, images: np.ndarray, attrs: dict[str, Any] | None = None,
                   encoding: str = "float32") -> None:
        """Store ``images`` (N, C, H, W) float32, finite, one chunk per image, under ``name`` (may contain '/').

        ``encoding``: ``"float32"`` stores the values as they are; ``"uint8"`` requires every value to be an
        8-bit level ``np.float32(k) / np.float32(255)`` (integer k in 0..255) and stores the levels k as
        uint8 (array attribute ``encoding: "uint8/255"``), decoded back to the same float32 values by every
        reader (-0.0 is level 0 and reads back as 0.0). Either way the recorded digest is that of the
        float32 content readers return. StoreError naming the array for anything else.
        """
        where = f"{self._path}/{name}"
        images = np.asarray(images)
        if images.ndim != 4:
            raise StoreError(f"{where}: images must be N x C x H x W, got shape {images.shape}")
        if images.dtype != np.float32:
            raise StoreError(f"{where}: images must be float32, got {images.dtype}")
        if encoding not in ENCODINGS:
            raise StoreError(f"{where}: unknown encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
        if not np.isfinite(images).all():
            raise StoreError(f"{where}: images contain NaN or Inf")
        attrs = self._user_attrs(name, attrs)
        chunks = (1, *images.shape[1:])
        if encoding == "float32":
            self._add(name, images, chunks, attrs)
            return
        levels, digest = encode_uint8_levels(images, where)
        self._add(name, levels, chunks, {**attrs, "encoding": UINT8_LEVELS}, digest)

    def add_array(self, name: str, array: np.ndarray, attrs: dict[str, Any] | None = None) -> None:
        """Store a small non-image array (e.g. PSFs, indices) in one chunk."""
        array = np.asarray(array)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise StoreError(f"{self._path}/{name}: array contains NaN or Inf")
        self._add(name, array, array.shape if array.ndim else (), self._user_attrs(name, attrs))

    def _user_attrs(self, name: str, attrs: dict[str, Any] | None) -> dict[str, Any]:
        """``attrs`` (None: none); StoreError naming the array if they set ``encoding``, which readers act on."""
        if attrs and "encoding" in attrs:
            raise StoreError(f"{self._path}/{name}: the 'encoding' attribute is written by the store itself "
                             "(pass encoding= to add_images); store yours under another name")
        return dict(attrs or {})

    def _add(self, name: str, array: np.ndarray, chunks: tuple[int, ...], attrs: dict[str, Any],
             digest: str | None = None) -> None:
        """Write ``array`` with ``attrs`` and ``sha256``: ``digest``, by default the digest of ``array``."""
        arr = self._group.create_array(name, shape=array.shape, dtype=array.dtype, chunks=chunks or None)
        arr[...] = array
        digest = array_sha256(array) if digest is None else digest
        self.digests[name] = digest
        arr.attrs.update(_jsonable({**attrs, "sha256": digest}))

    def set_group_attrs(self, name: str, attrs: dict[str, Any]) -> None:
        """Attach attributes to a (possibly new) sub-group."""
        self._group.require_group(name).attrs.update(_jsonable(attrs))


def encode_uint8_levels(images: np.ndarray, where: str = "images") -> tuple[np.ndarray, str]:
    """(levels, digest) of ``images`` (N, C, H, W) float32 made only of 8-bit levels k / 255.

    ``levels``: (N, C, H, W) uint8, k = rint(images * 255); ``digest``: :func:`array_sha256` of the decoded
    float32 array (:func:`decode_uint8_levels` of ``levels``), which equals ``images`` everywhere.
    StoreError naming ``where`` (and the first offending value) if a value is not exactly
    ``np.float32(k) / np.float32(255)`` for an integer k in 0..255. Works ``_ENCODE_BLOCK`` images at a
    time, so the temporaries stay small whatever N.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.float32:
        raise StoreError(f"{where}: 8-bit levels are encoded from N x C x H x W float32 images, got shape "
                         f"{images.shape} {images.dtype}")
    levels = np.empty(images.shape, dtype=np.uint8)
    digest = blocks_sha256(np.float32, images.shape, _encoded_blocks(images, levels, where))
    return levels, digest


def _encoded_blocks(images: np.ndarray, levels: np.ndarray, where: str) -> Iterator[np.ndarray]:
    """Fill ``levels`` with the uint8 levels of ``images`` block by block, yielding each block decoded."""
    for start in range(0, images.shape[0], _ENCODE_BLOCK):
        block = images[start:start + _ENCODE_BLOCK]
        with np.errstate(over="ignore", invalid="ignore"):
            k = np.rint(block * _LEVELS)
            ok = (k >= 0) & (k <= 255)
        k = np.where(ok, k, 0).astype(np.uint8)
        decoded = decode_uint8_levels(k)
        ok &= decoded == block
        if not ok.all():
            bad = np.argwhere(~ok)
            first = (start + int(bad[0][0]), *(int(i) for i in bad[0][1:]))
            raise StoreError(f"{where}: values are not 8-bit levels (k / 255 for an integer k in 0..255), so "
                             f"they cannot be stored with encoding 'uint8': {len(bad)} value(s) in images "
                             f"[{start}:{start + len(block)}], the first {float(images[first])!r} at index "
                             f"{first}; quantise them first (np.rint(x * 255) / 255 in float32) or store them "
                             "as float32")
        levels[start:start + len(block)] = k
        yield decoded


def decode_uint8_levels(levels: np.ndarray) -> np.ndarray:
    """uint8 levels k (any shape) -> float32 k / 255 in [0, 1], the exact values they were encoded from."""
    return np.asarray(levels).astype(np.float32) / _LEVELS


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
    """Array ``name`` of ``group``, checked to be N x C x H x W float32, or uint8 with a known encoding."""
    label = _label(path)
    if name not in group:
        raise StoreError(f"{label}: no array named {name!r}")
    node = group[name]
    if not isinstance(node, zarr.Array) or len(node.shape) != 4 or node.dtype not in (np.float32, np.uint8):
        shape, dtype = (node.shape, node.dtype) if isinstance(node, zarr.Array) else ("a group", "")
        raise StoreError(f"{label}/{name}: expected N x C x H x W float32 (or uint8 8-bit levels), got {shape} "
                         f"{dtype}")
    _encoding(node, f"{label}/{name}", image=True)
    return node


def _encoding(node: zarr.Array, where: str, image: bool = False) -> str | None:
    """The encoding of ``node``: ``"uint8/255"`` for uint8 levels, None for values stored as they are.

    StoreError naming ``where`` for an unknown ``encoding`` attribute, one on an array that is not uint8,
    or (``image``: an image array) a uint8 array without one.
    """
    encoding = node.attrs.get("encoding")
    if encoding is None:
        if image and node.dtype == np.uint8:
            raise StoreError(f"{where}: uint8 image array without an 'encoding' attribute (expected "
                             f"{UINT8_LEVELS!r}); it cannot be decoded: rerun the stage that writes it")
        return None
    if encoding != UINT8_LEVELS:
        raise StoreError(f"{where}: unknown encoding {encoding!r} (known: {UINT8_LEVELS!r}); it cannot be "
                         "decoded: rerun the stage that writes it, with this version of udcshield")
    if node.dtype != np.uint8:
        raise StoreError(f"{where}: encoding {encoding!r} on a {node.dtype} array (expected uint8); the store "
                         "is corrupt: rerun the stage that writes it")
    return encoding


def _read_rows(node: zarr.Array, rows: slice, where: str) -> np.ndarray:
    """``node[rows]`` as float32 (uint8 levels decoded), finite; a chunk that cannot be decoded is a
    StoreError naming the array."""
    encoding = _encoding(node, where, image=True)
    try:
        array = np.asarray(node[rows])
    except Exception as exc:  # codec errors (truncated or altered chunks) come as many types
        raise StoreError(f"{where}: cannot decode its stored data ({type(exc).__name__}: {exc}); the store is "
                         "corrupt: rerun the stage that writes it") from exc
    if encoding == UINT8_LEVELS:
        return decode_uint8_levels(array)
    if not np.isfinite(array).all():
        raise StoreError(f"{where}: contains NaN or Inf")
    return array


def _read_node(node: zarr.Array, where: str) -> np.ndarray:
    """The whole of any array ``node``, uint8 levels decoded to float32; StoreError naming ``where`` if a
    chunk cannot be decoded or ``node`` is a group."""
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{where}: a group, not an array")
    encoding = _encoding(node, where)
    try:
        array = np.asarray(node[...])
    except Exception as exc:  # codec errors (truncated or altered chunks) come as many types
        raise StoreError(f"{where}: cannot decode its stored data ({type(exc).__name__}: {exc}); the store is "
                         "corrupt: rerun the stage that writes it") from exc
    return decode_uint8_levels(array) if encoding == UINT8_LEVELS else array


def read_images(path: StorePath, name: str, verify: bool | None = None, rows: slice | None = None,
                storage_options: StorageOptions = None) -> np.ndarray:
    """Read image array ``name`` (N, C, H, W) float32 from the store at ``path``, checking finiteness.

    An array stored as uint8 levels (``encoding: "uint8/255"``) is decoded to the float32 values k / 255
    it was written from; a uint8 array without that attribute, or with another, is a StoreError.

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
    value is NaN/Inf. Reads ``block`` images at a time, so memory stays bounded whatever N. The digest is
    that of the float32 content (uint8 levels decoded), whatever the encoding.

    This is what shard keys hash (:mod:`udcshield.pipeline.shards`): the content actually stored, so an
    array altered in place never reuses shards made from its earlier content.
    """
    group = open_store(path, storage_options)
    node = _image_node(group, path, name)
    where = f"{_label(path)}/{name}"
    expected = recorded_digest(path, name, storage_options)
    n = node.shape[0]
    actual = blocks_sha256(np.float32, node.shape,
                           (_read_rows(node, slice(i, min(i + block, n)), where) for i in range(0, n, block)))
    _check_digest(where, actual, expected)
    return expected


def read_array(path: StorePath, name: str, storage_options: StorageOptions = None) -> np.ndarray:
    """Read any array ``name`` from the store at ``path`` (image arrays stored as uint8 levels decoded to
    float32)."""
    group = open_store(path, storage_options)
    if name not in group:
        raise StoreError(f"{_label(path)}: no array named {name!r}")
    return _read_node(group[name], f"{_label(path)}/{name}")


def verify_array(path: StorePath, name: str, array: np.ndarray | None = None,
                 storage_options: StorageOptions = None) -> None:
    """Raise StoreError if the array's content digest differs from the one recorded when it was written.

    ``array``: the content already read (as readers return it: uint8 levels decoded), else it is read here.
    """
    expected = recorded_digest(path, name, storage_options)
    if array is None:
        group = open_store(path, storage_options)
        if name not in group:
            raise StoreError(f"{_label(path)}: no array named {name!r}")
        array = _read_node(group[name], f"{_label(path)}/{name}")
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
