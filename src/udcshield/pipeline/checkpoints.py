"""Loading the pipeline's restorer checkpoints by variant name (shared by the stages that restore)."""

from __future__ import annotations

from pathlib import Path

import torch

from udcshield.models.checkpoint import load_checkpoint, read_checkpoint_folder
from udcshield.store.hashing import tree_sha256
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import split_source


def load_restorer(layout: Layout, source: str) -> torch.nn.Module:
    """Load restorer variant ``<model>/<variant>`` (``base`` or ``finetuned``) from its checkpoint folder."""
    return load_checkpoint(layout.checkpoint(*split_source(source)))


def verified_checkpoint_digest(directory: Path, kind: str) -> str:
    """SHA-256 over the files of checkpoint folder ``directory`` (``kind``: ``restorer`` or ``purifier``),
    after its weights were read and verified against the digest its ``config.json`` records: what a shard
    key hashes, so a missing, corrupt or altered checkpoint is refused when a stage plans, before any work."""
    read_checkpoint_folder(directory, kind=kind)
    return tree_sha256(directory)
