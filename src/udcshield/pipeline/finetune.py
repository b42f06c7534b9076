"""Stage ``finetune``: fine-tune each base restorer for robustness, in the mode ``finetune.mode`` selects.

``purified`` (the default, Song et al., arXiv 2402.13629): the training inputs are purified at several
diffusion depths t* (the study varied 50-100 steps for diversity), optionally alongside the clean inputs,
and the restorer is trained further on (purified input, ground truth) pairs with a smaller learning rate
and cosine decay. ``adversarial`` (Madry et al. 2018), ``trades`` (Zhang et al. 2019) and ``mixed``
(purified + adversarial batches) craft PGD examples against the current weights at every step; see
:mod:`udcshield.training.robust`. ``finetune.trainable`` restricts which layers learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from udcshield.attacks.budget import budget_to_linf
from udcshield.config import Params, to_dict
from udcshield.defenses.dataset import purify_set
from udcshield.defenses.purifier import DiffusionPurifier, load_purifier
from udcshield.models.checkpoint import load_checkpoint, save_checkpoint
from udcshield.pipeline.common import load_pairs, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import Stage, StageContext, Unit
from udcshield.progress import ProgressMeter
from udcshield.seeding import torch_generator
from udcshield.store.provenance import make_provenance
from udcshield.training.gan import GANLoss, PatchDiscriminator
from udcshield.training.perceptual import restoration_loss
from udcshield.training.robust import finetune_restorer

Progress = Callable[[dict], None] | None
Pairs = tuple[torch.Tensor, torch.Tensor]


def needs_purified(params: Params) -> bool:
    """Whether ``finetune.mode`` trains on purified inputs (``purified`` and ``mixed``)."""
    return params.finetune.mode in ("purified", "mixed")


def purified_training_pairs(params: Params, purifier: DiffusionPurifier, inputs: torch.Tensor,
                            targets: torch.Tensor, image_ids: list[str],
                            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs purified at each configured t* (plus the clean inputs if configured), with matching targets.

    Shapes: inputs/targets (N, 3, H, W) -> (M, 3, H, W), M = N * (len(t_stars) + include_clean).
    """
    cfg = params.finetune
    sets, refs = [], []
    for t_star in cfg.t_stars:
        sets.append(purify_set(purifier, inputs, image_ids, t_star=t_star, num_steps=cfg.num_steps,
                               seed=params.seed, stage=f"finetune/purify/t{t_star}",
                               batch_size=cfg.purify_batch_size, device=device))
        refs.append(targets)
    if cfg.include_clean:
        sets.append(inputs)
        refs.append(targets)
    return torch.cat(sets), torch.cat(refs)


def step_meter(label: str, total: int, progress: Progress) -> Progress:
    """Adapt training-history rows (step, loss, lr) to :class:`udcshield.progress.ProgressMeter` rows
    (steps done, steps/s, ETA, loss) handed to ``progress``; None when ``progress`` is None."""
    if progress is None:
        return None
    meter = ProgressMeter(total=total, label=label, emit=progress, unit="step")

    def on_row(row: dict) -> None:
        meter.update(int(row["step"]) - meter.done, loss=row["loss"], lr=row["lr"])

    return on_row


def gan_loss(params: Params, name: str) -> GANLoss | None:
    """The adversarial loss of ``finetune.gan_weight`` for restorer ``name``: a fresh PatchGAN discriminator
    (Isola et al. 2017) seeded from ``seed``; None when the weight is 0."""
    cfg = params.finetune
    if cfg.gan_weight <= 0:
        return None
    disc = PatchDiscriminator(generator=torch_generator(params.seed, f"finetune/{name}/discriminator"))
    return GANLoss(disc, lr=cfg.gan_lr)


def fit_finetuned(params: Params, name: str, model: torch.nn.Module, clean: Pairs, purified: Pairs | None,
                  device: torch.device, progress: Progress = None) -> list[dict]:
    """Fine-tune restorer ``name`` (``model``, in place) in ``finetune.mode``; returns the training history.

    ``clean``: the (inputs, targets) training pairs, (N, 3, H, W) in [0, 1] (adversarial examples are
    crafted from them); ``purified``: the pairs of :func:`purified_training_pairs` (modes purified, mixed).
    """
    cfg = params.finetune
    gen = torch_generator(params.seed, f"finetune/{name}/batches")
    return finetune_restorer(
        model, clean[0], clean[1], mode=cfg.mode,
        purified_inputs=None if purified is None else purified[0],
        purified_targets=None if purified is None else purified[1],
        attack_eps=budget_to_linf(cfg.attack_budget), attack_steps=cfg.attack_steps, trades_beta=cfg.trades_beta,
        adversarial_weight=cfg.adversarial_weight, objective="mse" if cfg.loss == "l2" else "l1",
        trainable=cfg.trainable, iterations=cfg.iterations, batch_size=cfg.batch_size, crop_size=cfg.crop_size,
        lr=cfg.lr, lr_min=cfg.lr_min,
        loss=restoration_loss(cfg.loss, params.train.perceptual_weight, params.train.vgg_weights_path,
                              gan=gan_loss(params, name), gan_weight=cfg.gan_weight),
        flips=cfg.flips, color_jitter=cfg.color_jitter, generator=gen, device=device, log_every=50,
        progress=step_meter(f"finetune {name} [{cfg.mode}]", cfg.iterations, progress))


def training_sets(params: Params, layout: Layout, device: torch.device) -> tuple[Pairs, Pairs | None]:
    """The clean training pairs and, for modes that need them, the purified ones (purifier loaded here)."""
    inputs, targets, ids = load_pairs(layout.train_store)
    purified = None
    if needs_purified(params):
        purified = purified_training_pairs(params, load_purifier(layout.purifier), inputs, targets, ids, device)
    return (inputs, targets), purified


def pair_count(params: Params, clean: Pairs, purified: Pairs | None) -> int:
    """Training pairs the mode draws from: purified ones, clean ones, or both (mixed)."""
    n_clean, n_pur = int(clean[0].shape[0]), 0 if purified is None else int(purified[0].shape[0])
    return {"purified": n_pur, "mixed": n_pur + n_clean}.get(params.finetune.mode, n_clean)


def save_outputs(params: Params, layout: Layout, name: str, model: torch.nn.Module, history: list[dict], pairs: int,
                 device: torch.device) -> dict[str, Any]:
    """Write the fine-tuned checkpoint of ``name`` (provenance in config.json) and its training curve.

    Returns {"pairs", "final_loss", "mode", "trainable_parameters", "frozen_parameters"} (counts of scalars).
    """
    seeds = {"seed": params.seed, "batches": f"finetune/{name}/batches"}
    if needs_purified(params):
        seeds["purify"] = "finetune/purify/t<t_star>/<image_id>"
    if params.finetune.mode != "purified":
        seeds["inner_attack"] = f"per-image random starts drawn from finetune/{name}/batches"
    prov = make_provenance("finetune", to_dict(params.finetune),
                           inputs={"train": layout.train_store, "restorer": layout.restorer(name),
                                   "purifier": layout.purifier},
                           seeds=seeds, device=str(device))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    save_checkpoint(model.cpu(), layout.finetuned(name), extra={"provenance": prov})
    write_rows_csv(history, layout.log("finetune", name))
    return {"pairs": pairs, "final_loss": history[-1]["loss"], "mode": params.finetune.mode,
            "trainable_parameters": trainable, "frozen_parameters": frozen}


class FinetuneStage(Stage):
    """Training sets built once (prepare: clean pairs and, for purified/mixed, the purified ones), then
    one unit per restorer: load its base checkpoint, fine-tune in ``finetune.mode``, save."""

    def plan(self, ctx: StageContext) -> list[Unit]:
        return [Unit(f"fit-finetuned-{spec.label}", spec.label) for spec in ctx.params.train.runs()]

    def prepare(self, ctx: StageContext) -> tuple[Pairs, Pairs | None]:
        return training_sets(ctx.params, ctx.layout, ctx.device)

    def run_unit(self, ctx: StageContext, unit: Unit, resources: Any) -> dict[str, Any]:
        clean, purified = resources if resources is not None else self.prepare(ctx)
        model = load_checkpoint(ctx.layout.restorer(unit.payload))
        history = fit_finetuned(ctx.params, unit.payload, model, clean, purified, ctx.device, ctx.progress)
        return save_outputs(ctx.params, ctx.layout, unit.payload, model, history,
                            pair_count(ctx.params, clean, purified), ctx.device)

    def assemble(self, ctx, units, results, resources) -> dict[str, Any]:
        return {u.payload: r for u, r in zip(units, results)}


STAGE = FinetuneStage(
    name="finetune",
    desc="Fine-tune every restorer in finetune.mode (purified inputs, adversarial, TRADES or mixed)",
    params=("seed", "finetune", "train.models", "train.seeds", "train.perceptual_weight", "train.vgg_weights_path"),
    deps=("data/simulated/train.zarr", "data/restorers", "data/purifier"),
    outs=("data/finetuned",),
    plots=({"data/logs/finetune": {"x": "step", "y": "loss", "cache": False}},),
    sections=("finetune",),
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner: build the training sets once, fine-tune and save every restorer."""
    return run_stage(STAGE, params, layout, device, progress)
