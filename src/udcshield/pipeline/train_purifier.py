"""Stage ``train_purifier``: the diffusion purifier, a DDPM (Ho et al., 2020) trained on the *degraded*
training inputs, the distribution it must project attacked inputs back onto (Song et al.,
arXiv 2402.13629; Nie et al., 2022).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from udcshield.config import Params, to_dict
from udcshield.defenses.purifier import DiffusionPurifier, save_purifier
from udcshield.pipeline.common import load_pairs, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import Stage, StageContext, Unit
from udcshield.seeding import torch_generator
from udcshield.store.provenance import make_provenance
from udcshield.training.diffusion import train_purifier

Progress = Callable[[dict], None] | None


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


def save_purifier_outputs(params: Params, layout: Layout, purifier: DiffusionPurifier, history: list[dict],
                          device: torch.device) -> dict[str, Any]:
    """Write the purifier checkpoint (provenance in config.json) and its training curve."""
    prov = make_provenance("train_purifier", to_dict(params.purifier), inputs={"train": layout.train_store},
                           seeds={"seed": params.seed, "batches": "train_purifier/batches"}, device=str(device))
    save_purifier(purifier, layout.purifier, extra={"provenance": prov})
    write_rows_csv(history, layout.log("train_purifier"))
    return {"final_loss": history[-1]["loss"], "parameters": sum(p.numel() for p in purifier.parameters())}


class TrainPurifierStage(Stage):
    """One unit: build the configured purifier, train it on the degraded training inputs, save it."""

    def plan(self, ctx: StageContext) -> list[Unit]:
        return [Unit("fit-purifier")]

    def run_unit(self, ctx: StageContext, unit: Unit, resources: Any) -> dict[str, Any]:
        inputs = load_pairs(ctx.layout.train_store)[0]
        purifier, history = fit_purifier(ctx.params, inputs, ctx.device, ctx.progress)
        return save_purifier_outputs(ctx.params, ctx.layout, purifier, history, ctx.device)

    def assemble(self, ctx, units, results, resources) -> dict[str, Any]:
        return results[0]


STAGE = TrainPurifierStage(
    name="train_purifier",
    desc="Train the DDPM purifier on the degraded (UDC) training inputs",
    params=("seed", "purifier"),
    deps=("data/simulated/train.zarr",),
    outs=("data/purifier",),
    plots=({"data/logs/train_purifier.csv": {"x": "step", "y": "loss", "cache": False}},),
    sections=("purifier",),
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner: train and save the purifier and its training curve."""
    return run_stage(STAGE, params, layout, device, progress)
