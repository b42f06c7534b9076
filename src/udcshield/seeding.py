"""Deterministic seed derivation.

Per-image seeds derive from (global seed, stage, image id), so results do not depend on batch size or
order. Every random call in the library takes an explicit generator built from such a seed.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(global_seed: int, stage: str, key: str | int) -> int:
    """Return a 63-bit seed from (global_seed, stage, key), stable across runs and platforms.

    Args:
        global_seed: the run's seed (any int >= 0).
        stage: stage or purpose name, e.g. "attack" or "simulate/train".
        key: image id or any other identifier.
    """
    if not isinstance(global_seed, int) or global_seed < 0:
        raise ValueError(f"global_seed must be a non-negative int, got {global_seed!r}")
    digest = hashlib.sha256(f"{global_seed}|{stage}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def numpy_rng(global_seed: int, stage: str, key: str | int = "") -> np.random.Generator:
    """A numpy Generator seeded by :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(global_seed, stage, key))


def torch_generator(global_seed: int, stage: str, key: str | int = "", device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded by :func:`derive_seed`."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(global_seed, stage, key))
    return gen


class seeded_init:
    """Context manager: seed torch's default generator for parameter initialisation, then restore it.

    ``torch.nn`` layers draw their initial weights from the default generator; this pins those draws to
    ``derive_seed(global_seed, stage, key)`` without leaking state to the caller.
    """

    def __init__(self, global_seed: int, stage: str, key: str | int = "init") -> None:
        self._seed = derive_seed(global_seed, stage, key)
        self._fork = torch.random.fork_rng(devices=[])

    def __enter__(self) -> None:
        self._fork.__enter__()
        torch.manual_seed(self._seed)

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)
