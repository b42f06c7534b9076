"""Content hashes of files, folders and arrays, for provenance and the lineage audit."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tree_sha256(path: str | Path) -> str:
    """SHA-256 over a file, or over a folder's sorted (relative path, file digest) pairs.

    Hidden temporary siblings are not inside the folder, so they never enter the digest.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"cannot hash missing artifact: {path}")
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode())
        h.update(b"\0")
        h.update(file_sha256(f).encode())
        h.update(b"\n")
    return h.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-ordered bytes."""
    a = np.asarray(array)
    return blocks_sha256(a.dtype, a.shape, [a])


def blocks_sha256(dtype: np.dtype, shape: tuple[int, ...], blocks: Iterable[np.ndarray]) -> str:
    """:func:`array_sha256` of the array of ``shape`` and ``dtype`` whose consecutive first-axis blocks
    are ``blocks`` (e.g. a stored array read a few images at a time, so memory stays bounded)."""
    h = hashlib.sha256(f"{np.dtype(dtype).str}|{tuple(shape)}|".encode())
    for block in blocks:
        h.update(np.ascontiguousarray(block, dtype=dtype).tobytes())
    return h.hexdigest()
