"""Stage ``train``: every restorer of ``train.models`` learns UDC input -> ground truth on the simulated
training pairs (Zhou et al., CVPR 2021, ResUNet-style; the study's restorers, Song et al., arXiv 2402.13629).

One unit per restorer (fit, then save its checkpoint and curve); the training pairs are loaded once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from udcshield.config import Params, to_dict
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.pipeline.common import load_pairs, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import Stage, StageContext, Unit
from udcshield.seeding import torch_generator
from udcshield.store.provenance import make_provenance
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


def save_restorer(params: Params, layout: Layout, name: str, model: torch.nn.Module, history: list[dict],
                  device: torch.device) -> dict[str, Any]:
    """Write the base restorer checkpoint (provenance in config.json) and its training curve."""
    prov = make_provenance("train", to_dict(params.train), inputs={"train": layout.train_store},
                           seeds={"seed": params.seed, "init": f"train/{name}/init",
                                  "batches": f"train/{name}/batches"}, device=str(device))
    save_checkpoint(model, layout.restorer(name), extra={"provenance": prov})
    write_rows_csv(history, layout.log("train", name))
    return {"final_loss": history[-1]["loss"], "parameters": sum(p.numel() for p in model.parameters())}


class TrainStage(Stage):
    """One unit per restorer of ``train.models``: fit, then save its checkpoint and training curve."""

    def plan(self, ctx: StageContext) -> list[Unit]:
        return [Unit(f"fit-restorer-{spec.name}", spec.name) for spec in ctx.params.train.models]

    def prepare(self, ctx: StageContext) -> tuple[torch.Tensor, torch.Tensor]:
        return load_pairs(ctx.layout.train_store)[:2]

    def run_unit(self, ctx: StageContext, unit: Unit, resources: Any) -> dict[str, Any]:
        inputs, targets = resources if resources is not None else self.prepare(ctx)
        progress = None if ctx.progress is None else (lambda row: ctx.report({"model": unit.payload, **row}))
        model, history = fit_restorer(ctx.params, unit.payload, inputs, targets, ctx.device, progress)
        return save_restorer(ctx.params, ctx.layout, unit.payload, model, history, ctx.device)

    def assemble(self, ctx, units, results, resources) -> dict[str, Any]:
        return {u.payload: r for u, r in zip(units, results)}


STAGE = TrainStage(
    name="train",
    desc="Train every restorer of train.models on the simulated training pairs",
    params=("seed", "train"),
    deps=("data/simulated/train.zarr",),
    outs=("data/restorers",),
    plots=({"data/logs/train": {"x": "step", "y": "loss", "cache": False}},),
    sections=("train",),
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner: train and save every configured restorer and its training curve."""
    return run_stage(STAGE, params, layout, device, progress)
