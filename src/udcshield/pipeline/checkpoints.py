"""Loading the pipeline's restorer checkpoints by variant name (shared by the stages that restore)."""

from __future__ import annotations

import torch

from udcshield.models.checkpoint import load_checkpoint
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import split_source


def load_restorer(layout: Layout, source: str) -> torch.nn.Module:
    """Load restorer variant ``<model>/<variant>`` (``base`` or ``finetuned``) from its checkpoint folder."""
    return load_checkpoint(layout.checkpoint(*split_source(source)))
