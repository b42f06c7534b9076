"""Small helpers shared by stage entry points: CSV logs, batching, loading stores as tensors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udcshield.store.atomic import write_text_atomic
from udcshield.store.zarr_io import read_images, store_attrs


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


def load_pairs(store: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(inputs, targets, image_ids) of a simulated split: two (N, 3, H, W) float32 tensors in [0, 1]."""
    inputs = torch.from_numpy(read_images(store, "inputs"))
    targets = torch.from_numpy(read_images(store, "targets"))
    ids = list(store_attrs(store)["image_ids"])
    if len(ids) != inputs.shape[0] or inputs.shape != targets.shape:
        raise ValueError(f"{store}: inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)} and "
                         f"{len(ids)} image ids disagree")
    return inputs, targets, ids


@torch.no_grad()
def apply_batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int,
                  device: torch.device) -> torch.Tensor:
    """Apply ``fn`` to (N, C, H, W) ``x`` in batches on ``device``; result on CPU, float32."""
    outs = [fn(x[s].to(device)).float().cpu() for s in batches(x.shape[0], batch_size)]
    return torch.cat(outs)


def to_numpy_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) tensor -> contiguous float32 numpy array."""
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32))
