"""Stage ``train``: every restorer of ``train.models`` learns UDC input -> ground truth on the simulated
training pairs (Zhou et al., CVPR 2021, ResUNet-style; the study's restorers, Song et al., arXiv 2402.13629).

One unit per training run (``train.models`` x ``train.seeds``: fit, then save its checkpoint and curve); the
training pairs are loaded once. A unit is named by the run's label (``train.models[i].label``, by default its
name; ``<label>-seed<s>`` for a seed s > 0): ``fit-restorer-<label>``, checkpoint ``data/restorers/<label>``,
curve ``data/logs/train/<label>.csv``. The run's random streams (initial weights, batches) are named by its
label, so seed 0 keeps the streams of a run without replicates and every replicate draws its own.

Given weights (``train.models[i].weights``) are loaded strictly before training, which then fine-tunes them;
with ``train: false`` nothing is optimised: the given weights are saved as the checkpoint and the curve has
one row at step 0 (lr 0) holding their loss on one training batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import time

import torch

from udcshield.config import Params, to_dict
from udcshield.models.checkpoint import load_weights_file, save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.pipeline.common import load_pairs, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import Stage, StageContext, Unit
from udcshield.seeding import torch_generator
from udcshield.store.provenance import make_provenance
from udcshield.training.perceptual import restoration_loss
from udcshield.training.restorer import draw_batch, resolve_loss, train_restorer

Progress = Callable[[dict], None] | None


def fit_restorer(params: Params, name: str, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device,
                 progress: Progress = None) -> tuple[torch.nn.Module, list[dict]]:
    """Build restorer ``name`` (a label of ``train.models``) as configured, load its given weights if any, and
    train it unless its spec says ``train: false``; inputs/targets (N, 3, H, W) float32 in [0, 1].

    Returns the model (CPU) and its curve: rows ``{"step", "loss", "lr", "elapsed_s"}`` (one row at step 0 with
    lr 0 for a model that is not trained, see :func:`untrained_curve`).
    """
    cfg, spec = params.train, params.train.run(name)
    if not spec.train and spec.weights is None:
        raise ValueError(f"restorer {name!r}: train is false but no weights are given")
    model = create_restorer(spec.name, generator=torch_generator(params.seed, f"train/{name}/init"), **spec.kwargs)
    if spec.weights is not None:
        load_weights_file(model, spec.weights)
    gen = torch_generator(params.seed, f"train/{name}/batches")
    if not spec.train:
        return model.cpu(), untrained_curve(params, model, inputs, targets, gen, device)
    history = train_restorer(model, inputs, targets, iterations=cfg.iterations, batch_size=cfg.batch_size,
                             crop_size=cfg.crop_size, lr=cfg.lr, lr_min=cfg.lr_min,
                             loss=restoration_loss(cfg.loss, cfg.perceptual_weight, cfg.vgg_weights_path),
                             flips=cfg.flips, color_jitter=cfg.color_jitter, generator=gen, device=device,
                             log_every=50, progress=progress)
    return model.cpu(), history


@torch.no_grad()
def untrained_curve(params: Params, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                    generator: torch.Generator, device: torch.device) -> list[dict]:
    """The curve of a model that is not trained: one row ``{"step": 0, "loss", "lr": 0.0, "elapsed_s"}``, the
    training loss of ``model`` (as given) on one batch drawn as training would (``train.batch_size`` crops of
    ``train.crop_size``, same augmentation); inputs/targets (N, 3, H, W) in [0, 1]. The model ends in eval mode."""
    cfg, start = params.train, time.perf_counter()
    loss_fn = resolve_loss(restoration_loss(cfg.loss, cfg.perceptual_weight, cfg.vgg_weights_path))
    batch_in, batch_tgt = draw_batch(inputs, targets, batch_size=cfg.batch_size, crop_size=cfg.crop_size,
                                     flips=cfg.flips, color_jitter=cfg.color_jitter, generator=generator)
    model.to(device).eval()
    loss = float(loss_fn(model(batch_in.to(device)), batch_tgt.to(device)))
    return [{"step": 0, "loss": loss, "lr": 0.0, "elapsed_s": time.perf_counter() - start}]


def save_restorer(params: Params, layout: Layout, name: str, model: torch.nn.Module, history: list[dict],
                  device: torch.device) -> dict[str, Any]:
    """Write the base restorer checkpoint of label ``name`` (provenance in config.json: the given weights file
    and its digest, whether it was trained) and its training curve. Returns the stage's summary of the model."""
    spec = params.train.run(name)
    inputs = {"train": layout.train_store, **({"weights": spec.weights} if spec.weights is not None else {})}
    prov = make_provenance("train", to_dict(params.train), inputs=inputs,
                           seeds={"seed": params.seed, "init": f"train/{name}/init",
                                  "batches": f"train/{name}/batches"}, device=str(device),
                           extra={"trained": spec.train})
    save_checkpoint(model, layout.restorer(name), extra={"provenance": prov})
    write_rows_csv(history, layout.log("train", name))
    return {"final_loss": history[-1]["loss"], "parameters": sum(p.numel() for p in model.parameters()),
            "trained": spec.train, "weights": spec.weights}


class TrainStage(Stage):
    """One unit per restorer of ``train.models`` (named by its label): fit (or load its given weights), then
    save its checkpoint and training curve."""

    def plan(self, ctx: StageContext) -> list[Unit]:
        return [Unit(f"fit-restorer-{spec.label}", spec.label) for spec in ctx.params.train.runs()]

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
