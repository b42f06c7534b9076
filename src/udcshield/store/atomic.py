"""Atomic writes: build an artifact under a temporary sibling name, rename it into place when complete.

A crash (or SIGKILL) part-way leaves only a ``.tmp-*`` sibling, never something at the final path that
looks finished. Replacing an existing artifact swaps it out first, so the final path is either the old
complete artifact or the new complete one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _tmp_sibling(path: Path, tag: str) -> Path:
    return path.parent / f".{tag}-{path.name}-{uuid.uuid4().hex[:8]}"


def replace_path(tmp: Path, final: Path) -> None:
    """Move ``tmp`` (file or folder) to ``final``, replacing what is there."""
    final = Path(final)
    if final.exists():
        trash = _tmp_sibling(final, "old")
        os.replace(final, trash)
        os.replace(tmp, final)
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink(missing_ok=True)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes ``final``; on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final, "tmp")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_path(tmp, final)


@contextlib.contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it becomes ``final``; on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final, "tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replace_path(tmp, final)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
