"""Shards of the image-parallel stages (``attack``, ``purify``) and the cache that makes them resumable.

A shard is a contiguous block of test images ``[start, stop)`` of one output set (e.g.
``resunet/base/pgd/8``); ``shard_size`` comes from the stage's params. Each finished shard is written
as a small zarr store into the shard cache (a folder or an fsspec URL, outside DVC's outputs), under a
key that hashes everything the shard's content depends on:

- the stage, the global seed and the set name;
- the params that shape the result (for ``attack``: objective, reference, batch and shard size and the
  attack's spec; for ``purify``: the whole section);
- the digest of every input artifact: the model checkpoint's files, and the content of the input arrays
  (recomputed from the stored data by :func:`udcshield.store.zarr_io.verified_digest`, which refuses an
  array whose content no longer matches the digest recorded when it was written), and the image ids;
- the shard's index and image range;
- the code: a digest of the ``udcshield`` package sources, and the torch version and device type.

So a shard is reused only when recomputing it would give the same bytes; a stale one can never be
picked up. Before reuse, a shard is verified against its own recorded digest (every chunk decoded and
hashed); one that fails (a truncated or altered chunk, a missing ``zarr.json``, no ``complete`` mark) is
deleted and recomputed, with one warning naming it on the ``udcshield`` logger.

Per-image seeds (``derive_seed(seed, '<stage>/<set>', image_id)``) make a shard's content independent
of which worker ran it and in which order, so a resumed or distributed run is bit-identical to an
uninterrupted local one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import udcshield
from udcshield.pipeline.stage import Stage, Unit
from udcshield.store.zarr_io import (StoreError, is_url, path_exists, read_images, remove_store, store_attrs,
                                     write_store)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """Images ``[start, stop)`` of output set ``set_name``; ``index`` counts shards within the set."""

    set_name: str
    index: int
    start: int
    stop: int
    key: str

    @property
    def size(self) -> int:
        """Number of images in the shard (>= 1)."""
        return self.stop - self.start

    @property
    def rows(self) -> slice:
        """The shard's images as a slice of the set's first axis."""
        return slice(self.start, self.stop)

    def label(self) -> str:
        """``<set>[start:stop]``, for log lines."""
        return f"{self.set_name}[{self.start}:{self.stop}]"


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges covering ``range(n)``, each of ``shard_size`` images but the last."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be an int >= 1, got {shard_size!r}")
    if n < 0:
        raise ValueError(f"number of images must be >= 0, got {n}")
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def make_shards(set_name: str, n: int, shard_size: int, material: dict[str, Any]) -> list[Shard]:
    """The shards of one set; each key hashes ``material`` (what the set depends on) plus its range."""
    return [Shard(set_name, i, start, stop, shard_key({**material, "set": set_name, "shard": [i, start, stop]}))
            for i, (start, stop) in enumerate(shard_ranges(n, shard_size))]


def shard_key(material: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``material`` as canonical JSON (sorted keys); raises TypeError if not JSON data."""
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over the ``udcshield`` package's Python sources (relative path + bytes), plus the torch version.

    Part of every shard key: a code change invalidates the cached shards even when the git commit does not
    change (uncommitted edits).
    """
    root = Path(udcshield.__file__).resolve().parent
    h = hashlib.sha256(f"torch {torch.__version__}|numpy {np.__version__}\n".encode())
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return h.hexdigest()


def ids_digest(image_ids: Iterable[str]) -> str:
    """SHA-256 of the ordered image ids (they seed each image's noise)."""
    return hashlib.sha256("\n".join(map(str, image_ids)).encode()).hexdigest()


class ShardCache:
    """Finished shards of one stage, as zarr stores ``<root>/<stage>/<key>.zarr`` (root: folder or URL).

    Writing goes through :func:`udcshield.store.zarr_io.write_store`: atomic on a local folder, and marked
    ``complete`` last on an object store, so a shard killed mid-write is never read back as finished.
    """

    def __init__(self, root: str | Path, stage: str, storage_options: dict[str, Any] | None = None) -> None:
        if not stage or "/" in stage:
            raise ValueError(f"shard cache stage must be a plain name, got {stage!r}")
        self.root = str(root).rstrip("/") if is_url(root) else Path(root)
        self.stage = stage
        self.storage_options = storage_options

    def location(self, key: str) -> str | Path:
        """Where shard ``key`` is (or will be) stored."""
        if isinstance(self.root, Path):
            return self.root / self.stage / f"{key}.zarr"
        return f"{self.root}/{self.stage}/{key}.zarr"

    def exists(self, shard: Shard) -> bool:
        """True when anything (finished, partial or corrupt) is stored under the shard's key."""
        return path_exists(self.location(shard.key), self.storage_options)

    def reusable(self, shard: Shard) -> tuple[bool, str | None]:
        """(True, None) when a verified copy of ``shard`` is cached; (False, None) when none is; and
        (False, reason) when an entry existed but :meth:`read` refused it (incomplete, another shard's, a
        chunk that cannot be decoded or does not match its recorded digest): it is then deleted (so it is
        recomputed) and one warning naming it is logged."""
        if not self.exists(shard):
            return False, None
        try:
            self.read(shard)
        except (StoreError, OSError, ValueError, KeyError, RuntimeError) as exc:
            where = self.location(shard.key)
            reason = _short_reason(exc, where)
            self.remove([shard], prune=False)
            log.warning("shard cache entry %s failed verification (%s) and was deleted; recomputing %s",
                        where, reason, shard.label())
            return False, reason
        return True, None

    def write(self, shard: Shard, images: np.ndarray, attrs: dict[str, Any]) -> None:
        """Store ``images`` (shard.size, C, H, W) float32 with ``attrs`` (e.g. cost) under the shard's key."""
        if images.shape[0] != shard.size:
            raise ValueError(f"shard {shard.label()}: got {images.shape[0]} images, expected {shard.size}")
        meta = {"stage": self.stage, "set": shard.set_name, "shard": [shard.index, shard.start, shard.stop],
                "key": shard.key, "attrs": attrs}
        with write_store(self.location(shard.key), meta, self.storage_options) as w:
            w.add_images("images", images)

    def ensure(self, shard: Shard, compute: Callable[[], tuple[np.ndarray, dict[str, Any]]],
               device: torch.device) -> dict[str, Any]:
        """Run ``compute() -> (images, attrs)`` for ``shard`` unless the cache already holds it, and write
        the result as soon as it exists (``attrs`` plus the device). The resume step of both sharded stages.

        A cached entry is reused only after it verifies (:meth:`reusable`); one that does not is deleted
        and recomputed. Returns {"set", "start", "stop", "images", "computed" (False when reused from the
        cache), "device", "healed" (why a cached entry was discarded, else None)}.
        """
        reused, healed = self.reusable(shard)
        if not reused:
            images, attrs = compute()
            self.write(shard, images, {**attrs, "device": str(device)})
        return {"set": shard.set_name, "start": shard.start, "stop": shard.stop, "images": shard.size,
                "computed": not reused, "device": str(device), "healed": healed}

    def read(self, shard: Shard) -> tuple[np.ndarray, dict[str, Any]]:
        """(images (shard.size, C, H, W) float32, attrs) of a finished shard, verified against its recorded
        digest; StoreError naming the entry if it is missing, incomplete, corrupt or holds another shard."""
        where = self.location(shard.key)
        try:
            images = read_images(where, "images", verify=True, storage_options=self.storage_options)
            meta = store_attrs(where, storage_options=self.storage_options)
        except StoreError as exc:
            raise StoreError(f"shard cache entry for {self.stage} {shard.label()}: {exc}") from exc
        if meta.get("key") != shard.key or images.shape[0] != shard.size:
            raise StoreError(f"shard cache entry {where} does not hold shard {shard.label()}")
        return images, dict(meta.get("attrs", {}))

    def remove(self, shards: Iterable[Shard], prune: bool = True) -> None:
        """Delete these shards (and, on a local folder, their interrupted temporary siblings); with
        ``prune``, then remove the stage's cache folder and the cache root if they are left empty."""
        for shard in shards:
            remove_store(self.location(shard.key), self.storage_options)
            if isinstance(self.root, Path):
                folder = self.root / self.stage
                for tmp in folder.glob(f".tmp-{shard.key}.zarr-*") if folder.is_dir() else ():
                    remove_store(tmp)
        if prune and isinstance(self.root, Path):
            for folder in (self.root / self.stage, self.root):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def _short_reason(exc: BaseException, where: str | Path) -> str:
    """The store error behind ``exc`` without the entry's path and the advice to rerun (the cache heals)."""
    text = str(exc.__cause__ or exc)
    label = where.as_posix() if isinstance(where, Path) else where
    text = re.sub(rf"(zarr store )?{re.escape(label)}/?:?\s*", "", text)
    return text.split("; ")[0]


def cache_root(configured: str | None, data_root: str | Path) -> str | Path:
    """The shard cache root: ``runner.shard_cache`` when set, else ``<data root>/.shards``."""
    return configured if configured is not None else Path(data_root) / ".shards"


# ------------------------------------------------------------------------------ sharded stages
def shard_units(shards: dict[str, list[Shard]]) -> list[Unit]:
    """One unit per shard, in set and image order (payload: the :class:`Shard`)."""
    return [Unit(f"{shard.set_name}-{shard.start}-{shard.stop}", shard, images=shard.size)
            for parts in shards.values() for shard in parts]


def units_by_set(units: list[Unit]) -> dict[str, list[Shard]]:
    """Inverse of :func:`shard_units`: set name -> its shards in order."""
    out: dict[str, list[Shard]] = {}
    for unit in units:
        out.setdefault(unit.payload.set_name, []).append(unit.payload)
    return out


class ShardedStage(Stage):
    """A stage whose units are shards of image sets, kept in the shard cache as soon as each is done
    (attack, purify): self-contained units that may run on a Dask cluster."""

    def progress_fields(self, unit: Unit, result: dict[str, Any]) -> dict[str, Any]:
        shard = unit.payload
        fields = {"set": shard.set_name, "shard": f"{shard.start}:{shard.stop}", "computed": result["computed"],
                  "device": result["device"]}
        return {**fields, "healed": result["healed"]} if result.get("healed") else fields
