"""Stages ``train`` (the restorer) and ``train_purifier`` (the diffusion purifier).

The restorer learns UDC input -> ground truth on the simulated training pairs (Zhou et al., CVPR 2021,
ResUNet-style). The purifier is a DDPM (Ho et al., 2020) trained on the *degraded* training inputs, the
distribution it must project attacked inputs back onto (Song et al., arXiv 2402.13629; Nie et al., 2022).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from udcshield.config import Params, to_dict
from udcshield.defenses.purifier import DiffusionPurifier, save_purifier
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.pipeline.common import load_pairs, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.seeding import torch_generator
from udcshield.store.provenance import make_provenance
from udcshield.training.diffusion import train_purifier
from udcshield.training.perceptual import restoration_loss
from udcshield.training.restorer import train_restorer

Progress = Callable[[dict], None] | None


def fit_restorer(params: Params, name: str, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device,
                 progress: Progress = None) -> tuple[torch.nn.Module, list[dict]]:
    """Build restorer ``name`` as configured and train it; inputs/targets (N, 3, H, W) float32 in [0, 1]."""
    cfg = params.train
    model = create_restorer(name, generator=torch_generator(params.seed, f"train/{name}/init"),
                            **cfg.spec(name).kwargs)
    gen = torch_generator(params.seed, f"train/{name}/batches")
    history = train_restorer(model, inputs, targets, iterations=cfg.iterations, batch_size=cfg.batch_size,
                             crop_size=cfg.crop_size, lr=cfg.lr, lr_min=cfg.lr_min,
                             loss=restoration_loss(cfg.loss, cfg.perceptual_weight, cfg.vgg_weights_path),
                             flips=cfg.flips, color_jitter=cfg.color_jitter, generator=gen, device=device,
                             log_every=50, progress=progress)
    return model.cpu(), history


def fit_purifier(params: Params, images: torch.Tensor, device: torch.device,
                 progress: Progress = None) -> tuple[DiffusionPurifier, list[dict]]:
    """Build the configured purifier and train it on ``images`` (N, 3, H, W) in [0, 1]."""
    cfg = params.purifier
    purifier = DiffusionPurifier(sample_size=cfg.sample_size, block_out_channels=tuple(cfg.block_out_channels),
                                 layers_per_block=cfg.layers_per_block, attention=cfg.attention,
                                 num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                                 generator=torch_generator(params.seed, "train_purifier/init"))
    gen = torch_generator(params.seed, "train_purifier/batches")
    history = train_purifier(purifier, images, iterations=cfg.iterations, batch_size=cfg.batch_size,
                             crop_size=cfg.crop_size, lr=cfg.lr, lr_min=cfg.lr_min, flips=cfg.flips,
                             generator=gen, device=device, log_every=50, progress=progress)
    return purifier.cpu(), history


def run_restorer(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Stage ``train``: train and save every configured restorer and its training curve."""
    inputs, targets, _ = load_pairs(layout.train_store)
    out = {}
    for spec in params.train.models:
        model, history = fit_restorer(params, spec.name, inputs, targets, device, progress)
        out[spec.name] = save_restorer(params, layout, spec.name, model, history, device)
    return out


def save_restorer(params: Params, layout: Layout, name: str, model: torch.nn.Module, history: list[dict],
                  device: torch.device) -> dict[str, Any]:
    """Write the base restorer checkpoint (provenance in config.json) and its training curve."""
    prov = make_provenance("train", to_dict(params.train), inputs={"train": layout.train_store},
                           seeds={"seed": params.seed, "init": f"train/{name}/init",
                                  "batches": f"train/{name}/batches"}, device=str(device))
    save_checkpoint(model, layout.restorer(name), extra={"provenance": prov})
    write_rows_csv(history, layout.log("train", name))
    return {"final_loss": history[-1]["loss"], "parameters": sum(p.numel() for p in model.parameters())}


def run_purifier(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Stage ``train_purifier``: train and save the diffusion purifier on the degraded training inputs."""
    inputs, _, _ = load_pairs(layout.train_store)
    purifier, history = fit_purifier(params, inputs, device, progress)
    return save_purifier_outputs(params, layout, purifier, history, device)


def save_purifier_outputs(params: Params, layout: Layout, purifier: DiffusionPurifier, history: list[dict],
                          device: torch.device) -> dict[str, Any]:
    """Write the purifier checkpoint (provenance in config.json) and its training curve."""
    prov = make_provenance("train_purifier", to_dict(params.purifier), inputs={"train": layout.train_store},
                           seeds={"seed": params.seed, "batches": "train_purifier/batches"}, device=str(device))
    save_purifier(purifier, layout.purifier, extra={"provenance": prov})
    write_rows_csv(history, layout.log("train_purifier"))
    return {"final_loss": history[-1]["loss"], "parameters": sum(p.numel() for p in purifier.parameters())}
