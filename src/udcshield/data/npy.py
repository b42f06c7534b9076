"""Safe ``.npy`` loading for the dataset readers: one array as stored, never unpickled."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def existing_file(path: str | Path) -> Path:
    """``path`` as a Path if it is a file; FileNotFoundError naming it otherwise."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"file not found: {p}")
    return p


def load_npy_array(path: str | Path) -> np.ndarray:
    """Read one ``.npy`` array as stored (any shape and dtype), with ``allow_pickle=False``.

    Raises:
        FileNotFoundError: missing file. ValueError: no ``.npy`` header (e.g. an ``.npz`` archive), pickled
        (object) data, or a corrupt file; the message names the file.
    """
    p = existing_file(path)
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        kind = "a zip/.npz archive" if magic.startswith(b"PK") else "no .npy header"
        raise ValueError(f"{p}: not a readable .npy array ({kind})")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"{p}: holds pickled (object) data, refused for safety (allow_pickle=False)") from exc
        raise ValueError(f"{p}: not a readable .npy array: {exc}") from exc
    except Exception as exc:  # truncated / corrupt headers raise assorted errors
        raise ValueError(f"{p}: not a readable .npy array: {exc}") from exc
    if not isinstance(arr, np.ndarray):  # e.g. an .npz archive renamed to .npy
        raise ValueError(f"{p}: expected a single .npy array, got {type(arr).__name__}")
    return arr
