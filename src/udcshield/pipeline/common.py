"""Small helpers shared by stage entry points: CSV logs, batching with out-of-memory retry, loading stores
as tensors, pinning a task to one accelerator."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from udcshield.store.atomic import write_text_atomic
from udcshield.store.zarr_io import read_images, store_attrs

T = TypeVar("T")


def write_rows_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Write dict rows (same keys) to CSV atomically."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (sorted keys, indented)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def batches(n: int, size: int) -> Iterator[slice]:
    """Slices covering range(n) in chunks of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def check_rgb_pairs(store: str | Path, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    """ValueError naming ``store`` unless inputs and targets are RGB batches (N, 3, H, W) of one shape."""
    if inputs.ndim != 4 or inputs.shape[1] != 3:
        raise ValueError(f"{store}/inputs: expected RGB images N x 3 x H x W, got shape {tuple(inputs.shape)}")
    if inputs.shape != targets.shape:
        raise ValueError(f"{store}: inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} differ in shape")


def load_pairs(store: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(inputs, targets, image_ids) of a simulated split: two (N, 3, H, W) float32 tensors in [0, 1]."""
    inputs = torch.from_numpy(read_images(store, "inputs"))
    targets = torch.from_numpy(read_images(store, "targets"))
    check_rgb_pairs(store, inputs, targets)
    attrs = store_attrs(store)
    if not isinstance(attrs.get("image_ids"), list):
        raise ValueError(f"{store}: no 'image_ids' list in the store's attributes; rerun the simulate stage")
    ids = list(attrs["image_ids"])
    if len(ids) != inputs.shape[0] or inputs.shape != targets.shape:
        raise ValueError(f"{store}: inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)} and "
                         f"{len(ids)} image ids disagree")
    return inputs, targets, ids


@torch.no_grad()
def apply_batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int,
                  device: torch.device, stage: str = "apply") -> torch.Tensor:
    """Apply ``fn`` to (N, C, H, W) ``x`` in batches on ``device``; result on CPU, float32.

    An out-of-memory batch is retried at half the batch size (:func:`run_batched`).
    """
    outs = run_batched(lambda s: fn(x[s].to(device)).float().cpu(), x.shape[0], batch_size, stage)
    return torch.cat(outs)


def to_numpy_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) tensor -> contiguous float32 numpy array."""
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32))


# ------------------------------------------------------------------------------ out-of-memory retry
OOM_MESSAGES = ("out of memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch.OutOfMemoryError (CUDA) and the CPU allocator's "not enough memory" RuntimeError."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in OOM_MESSAGES))


class BatchOutOfMemoryError(RuntimeError):
    """Even a batch of one image ran out of memory; names the stage and the batch sizes tried."""


def run_batched(fn: Callable[[slice], T], n: int, batch_size: int, stage: str,
                on_retry: Callable[[int, int], None] | None = None) -> list[T]:
    """Call ``fn(slice)`` over ``range(n)`` in batches, halving the batch size on out-of-memory errors.

    A batch that runs out of memory (:func:`is_out_of_memory`) is retried with half the batch size, down
    to 1; the smaller size is kept for the remaining batches. A batch of 1 that still runs out of memory
    raises :class:`BatchOutOfMemoryError` naming ``stage`` and the batch size. Other errors propagate
    unchanged. Results are returned in order, one per batch actually run. Per-image seeds make the
    results independent of the batch size (up to floating-point reduction order).

    Args:
        fn: computes one batch, given the slice of ``range(n)`` it covers.
        n: number of items (>= 0); batch_size: first batch size to try (>= 1).
        stage: label used in the error message, e.g. ``attack/resunet/base/pgd/8``.
        on_retry: called with (old size, new size) before each retry (e.g. to log it).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{stage}: batch_size must be an int >= 1, got {batch_size!r}")
    out: list[T] = []
    start, size = 0, batch_size
    while start < n:
        s = slice(start, min(start + size, n))
        try:
            out.append(fn(s))
        except Exception as exc:  # noqa: BLE001 - filtered just below
            if not is_out_of_memory(exc):
                raise
            _release_cached_memory()
            if size == 1:
                raise BatchOutOfMemoryError(f"{stage}: out of memory at batch size 1 (started at {batch_size}); "
                                            f"use a smaller model or image, or a device with more memory") from exc
            new = max(1, size // 2)
            if on_retry is not None:
                on_retry(size, new)
            size = new
            continue
        start = s.stop
    return out


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------ device pinning
def pin_device(device: torch.device, worker_index: int | None, device_count: int) -> torch.device:
    """The one accelerator a task runs on: ``cuda:<worker_index mod device_count>``.

    ``device`` is the device chosen at the edge (params ``device``). CPU, or a CUDA device with an
    explicit index, is returned unchanged. For a bare ``cuda`` the index comes from the worker's index
    round-robin over the visible devices (``CUDA_VISIBLE_DEVICES``); a worker that sees a single device
    (dask-cuda's LocalCUDACluster gives each worker its own) always gets ``cuda:0``. No worker index
    (the local runner) means index 0.
    """
    if device.type != "cuda" or device.index is not None:
        return device
    if device_count < 1:
        raise RuntimeError("device 'cuda' requested but no CUDA device is visible to this worker")
    if worker_index is not None and (isinstance(worker_index, bool) or not isinstance(worker_index, int)
                                     or worker_index < 0):
        raise ValueError(f"worker_index must be a non-negative int or None, got {worker_index!r}")
    return torch.device("cuda", (worker_index or 0) % device_count)
