"""A tiny data root for the sharded stages: simulated pairs, untrained-but-perturbed restorers, a tiny purifier.

No training: the restorer weights are nudged so gradients matter; everything is seeded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from tests.pipeline_fixtures import deep_update, tiny_params
from udcshield.config import Params, params_from_dict
from udcshield.defenses.purifier import DiffusionPurifier, save_purifier
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.pipeline import simulate
from udcshield.pipeline.layout import Layout

SHARDED: dict = {
    "attack": {"models": ["base"], "shard_size": 2, "batch_size": 2,
               "attacks": [{"name": "pgd", "budgets": [4, 8], "kwargs": {"steps": 3, "random_start": True}},
                           {"name": "fgsm", "budgets": [8]}]},
    "purify": {"t_star": 5, "num_steps": None, "shard_size": 3, "batch_size": 2},
}


def sharded_params(**override: dict) -> dict:
    """Tiny params (dict) with small shards; ``override`` sections are merged in."""
    return deep_update(deep_update(tiny_params(), SHARDED), override)


def build_data(root: Path, raw: dict) -> tuple[Params, Layout]:
    """Simulate the tiny test/train sets and save a restorer and a purifier under ``root/data``."""
    params = params_from_dict(raw)
    layout = Layout(root / "data")
    simulate.run(params, layout)
    for spec in params.train.models:
        model = create_restorer(spec.name, generator=torch.Generator().manual_seed(0), **spec.kwargs)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        save_checkpoint(model, layout.restorer(spec.name))
        save_checkpoint(model, layout.finetuned(spec.name))
    cfg = params.purifier
    purifier = DiffusionPurifier(sample_size=cfg.sample_size, block_out_channels=tuple(cfg.block_out_channels),
                                 layers_per_block=cfg.layers_per_block, num_train_timesteps=100,
                                 generator=torch.Generator().manual_seed(0))
    save_purifier(purifier, layout.purifier)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return params, layout
