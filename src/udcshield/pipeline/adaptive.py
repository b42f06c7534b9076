"""Stage ``adaptive``: attacks that see the purifier, and the stochastic defense evaluated over draws.

The study (Song et al., arXiv 2402.13629) measured its defense with attacks crafted on the bare restorer.
Here PGD is run through the defended system (purify -> restore as one module): BPDA (Athalye et al.,
ICML 2018: purification treated as identity in the backward pass) with EOT over the purifier's noise,
and full gradients through the reverse chain with gradient checkpointing. Then every input set is
passed through the defended system ``draws`` times with fresh seeds: per image we record each draw,
the mean over draws, the worst draw and the PSNR of the averaged output.

Outputs (``data/adaptive``): ``adversarial.zarr`` (``<model>/<variant>/<attack>/<budget>``, (N, 3, H, W)
float32 in [0, 1], N = max_images), ``records.csv`` (``draw``/``seed`` columns for per-draw rows) and
``metrics.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udcshield.attacks.base import project_linf
from udcshield.attacks.budget import budget_to_linf
from udcshield.config import AdaptiveSpec, Params, to_dict
from udcshield.defenses.adaptive import AdaptivePGD
from udcshield.defenses.defended import DefendedRestorer, NoiseDraw
from udcshield.defenses.purifier import DiffusionPurifier, load_purifier
from udcshield.evaluation.metrics import psnr
from udcshield.evaluation.records import write_records_csv
from udcshield.pipeline.checkpoints import load_restorer
from udcshield.pipeline.common import apply_batched, batches, load_pairs, to_numpy_images, write_json
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import SingleUnitStage, StageContext
from udcshield.pipeline.names import CLEAN, array_name, model_label, restorers
from udcshield.pipeline.summary import means
from udcshield.progress import ProgressMeter
from udcshield.seeding import derive_seed
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import read_images, write_store

Progress = Callable[[dict], None] | None
AGGREGATES = ("psnr_mean_draws", "psnr_worst_draw", "psnr_avg_output")


def root(layout: Layout) -> Path:
    """Folder of the stage's outputs."""
    return layout.root / "adaptive"


def defended_system(params: Params, purifier: DiffusionPurifier, restorer: torch.nn.Module, gradient: str,
                    checkpoint: bool = False) -> DefendedRestorer:
    """The defended system purify -> restore with the purify stage's settings (t*, steps, sampler, guidance)."""
    cfg = params.purify
    return DefendedRestorer(purifier, restorer, t_star=cfg.t_star, num_steps=cfg.num_steps, sampler=cfg.sampler,
                            eta=cfg.eta, guidance_scale=cfg.guidance_scale, gradient=gradient,
                            checkpoint=checkpoint).eval()


def conditions(params: Params) -> Iterator[tuple[str, AdaptiveSpec, int]]:
    """Every (restorer, adaptive attack, budget) the stage crafts."""
    for source in restorers(params):
        for spec in params.adaptive.attacks:
            for budget in params.adaptive.budgets:
                yield source, spec, budget


def craft(params: Params, purifier: DiffusionPurifier, restorer: torch.nn.Module, spec: AdaptiveSpec, budget: int,
          inputs: torch.Tensor, targets: torch.Tensor, image_ids: list[str], source: str,
          device: torch.device, meter: ProgressMeter | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Adaptive PGD through the defended system. Returns (adv (N, 3, H, W) in [0, 1], cost attributes).

    ``meter``, when given, counts the crafted images batch by batch.
    """
    defended = defended_system(params, purifier, restorer, spec.gradient, spec.checkpoint).to(device)
    atk = AdaptivePGD(defended, eps=budget_to_linf(budget), steps=spec.steps, eot_samples=spec.eot_samples,
                      objective=params.attack.objective, reference=params.attack.reference)
    stage = f"adaptive/{array_name(source, spec.name, budget)}"
    advs, cost = [], {"iterations": 0, "forward_backward": 0, "purifier_evals": 0}
    start = time.perf_counter()
    for s in batches(inputs.shape[0], params.adaptive.batch_size):
        seeds = [derive_seed(params.seed, stage, i) for i in image_ids[s]]
        adv = atk(inputs[s].to(device), targets[s].to(device), seeds=seeds).detach().float().cpu()
        advs.append(project_linf(adv, inputs[s], budget_to_linf(budget)))
        for key in cost:
            cost[key] += int(atk.last_cost.get(key, 0))
        if meter is not None:
            meter.update(s.stop - s.start, phase="craft", set=stage)
    cost["seconds"] = round(time.perf_counter() - start, 3)
    adv = torch.cat(advs)
    linf = float((adv - inputs).abs().max())
    return to_numpy_images(adv), {"restorer": source, "attack": spec.name, "gradient": spec.gradient,
                                  "eot_samples": spec.eot_samples, "steps": spec.steps, "budget": budget,
                                  "eps": budget_to_linf(budget), "linf_max": linf, "cost": cost, "seed_stage": stage}


@torch.no_grad()
def draw_records(params: Params, defended: DefendedRestorer, inputs: torch.Tensor, targets: torch.Tensor,
                 image_ids: list[str], source: str, attack: str, budget: int,
                 device: torch.device, meter: ProgressMeter | None = None) -> list[dict[str, Any]]:
    """Run the defended system ``draws`` times; per-draw PSNR rows plus the three aggregates per image.

    ``meter``, when given, counts image passes (``draws`` per image) batch by batch.
    """
    draws = params.adaptive.draws
    outputs = torch.zeros((draws, *inputs.shape))
    per_draw = []
    records = []
    base = {"model": model_label(source), "defense": "purified", "attack": attack, "budget": budget}
    for k in range(draws):
        seeds = [derive_seed(params.seed, f"adaptive/eval/draw{k}", i) for i in image_ids]
        for s in batches(inputs.shape[0], params.adaptive.batch_size):
            outputs[k, s] = defended(inputs[s].to(device), NoiseDraw(seeds[s], 0)).float().cpu()
            if meter is not None:
                meter.update(s.stop - s.start, phase="draws", set=f"{source}/{attack}/{budget}", draw=k)
        per_draw.append(torch.as_tensor(psnr(outputs[k], targets)))
        records += [{**base, "image_id": i, "metric": "psnr", "value": float(v), "draw": k, "seed": seed}
                    for i, v, seed in zip(image_ids, per_draw[-1].tolist(), seeds)]
    per_draw = torch.stack(per_draw)
    aggregates = {"psnr_mean_draws": per_draw.mean(0), "psnr_worst_draw": per_draw.min(0).values,
                  "psnr_avg_output": torch.as_tensor(psnr(outputs.mean(0), targets))}
    for metric, values in aggregates.items():
        records += [{**base, "image_id": i, "metric": metric, "value": float(v)}
                    for i, v in zip(image_ids, values.tolist())]
    return records


def undefended_records(params: Params, restorer: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                       image_ids: list[str], source: str, attack: str, budget: int,
                       device: torch.device) -> list[dict[str, Any]]:
    """PSNR of the bare restorer on ``inputs`` (the undefended row of the grid, same images)."""
    out = apply_batched(restorer.to(device).eval(), inputs, params.adaptive.batch_size, device)
    return [{"image_id": i, "model": model_label(source), "defense": "none", "attack": attack, "budget": budget,
             "metric": "psnr", "value": float(v)} for i, v in zip(image_ids, psnr(out, targets).tolist())]


def evaluation_sets(params: Params, layout: Layout, source: str, n: int,
                    adversarial: dict[str, np.ndarray]) -> Iterator[tuple[str, int, torch.Tensor]]:
    """(attack label, budget, inputs) evaluated for ``source``: clean, non-adaptive PGD, each adaptive set."""
    yield CLEAN, 0, load_pairs(layout.test_store)[0][:n]
    has_pgd = {b for s in params.attack.attacks if s.name == "pgd" for b in s.budgets}
    for budget in params.adaptive.budgets:
        if budget in has_pgd:
            yield "pgd", budget, torch.from_numpy(read_images(layout.adversarial, array_name(source, "pgd", budget))[:n])
        for spec in params.adaptive.attacks:
            yield spec.name, budget, torch.from_numpy(adversarial[array_name(source, spec.name, budget)])


def count_evaluation_sets(params: Params) -> int:
    """Number of input sets :func:`evaluation_sets` yields per restorer (clean, non-adaptive PGD, adaptive)."""
    has_pgd = {b for s in params.attack.attacks if s.name == "pgd" for b in s.budgets}
    return 1 + sum((budget in has_pgd) + len(params.adaptive.attacks) for budget in params.adaptive.budgets)


def craft_and_evaluate(params: Params, layout: Layout, device: torch.device,
                       progress: Progress = None) -> dict[str, Any]:
    """Whole stage: craft adaptive sets, evaluate every set over draws, write store, records and metrics.

    ``progress`` gets :class:`udcshield.progress.ProgressMeter` rows batch by batch: first the crafting
    (``phase=craft``, images crafted), then the evaluation (``phase=draws``, image passes over all draws).
    """
    n = params.adaptive.max_images
    inputs, targets, ids = load_pairs(layout.test_store)
    inputs, targets, ids = inputs[:n], targets[:n], ids[:n]
    purifier = load_purifier(layout.purifier)
    adversarial, attrs, records = {}, {}, []
    if params.adaptive.enabled:
        crafting = list(conditions(params))
        meter = ProgressMeter(len(crafting) * len(ids), "adaptive craft", progress)
        for source, spec, budget in crafting:
            name = array_name(source, spec.name, budget)
            adversarial[name], attrs[name] = craft(params, purifier, load_restorer(layout, source), spec, budget,
                                                   inputs, targets, ids, source, device, meter)
        sources = list(restorers(params))
        meter = ProgressMeter(len(sources) * count_evaluation_sets(params) * len(ids) * params.adaptive.draws,
                              "adaptive draws", progress)
        for source in sources:
            restorer = load_restorer(layout, source)
            defended = defended_system(params, purifier, restorer, "none").to(device)
            for attack, budget, x in evaluation_sets(params, layout, source, n, adversarial):
                records += undefended_records(params, restorer, x, targets, ids, source, attack, budget, device)
                records += draw_records(params, defended, x, targets, ids, source, attack, budget, device, meter)
    return write_outputs(params, layout, adversarial, attrs, records, device)


def write_outputs(params: Params, layout: Layout, adversarial: dict[str, np.ndarray], attrs: dict[str, dict],
                  records: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """Write adversarial.zarr, records.csv and metrics.json under ``data/adaptive``."""
    prov = make_provenance("adaptive", {"adaptive": to_dict(params.adaptive), "purify": to_dict(params.purify)},
                           inputs={"test": layout.test_store, "purifier": layout.purifier,
                                   "adversarial (non-adaptive)": layout.adversarial},
                           seeds={"seed": params.seed, "attack": "derive_seed(seed, 'adaptive/<set>', image_id)",
                                  "draws": "derive_seed(seed, 'adaptive/eval/draw<k>', image_id)"},
                           device=str(device), extra={"sets": sorted(adversarial)})
    with write_store(root(layout) / "adversarial.zarr", prov) as w:
        for name, adv in adversarial.items():
            w.add_images(name, adv, attrs=attrs[name])
    write_records_csv(records, root(layout) / "records.csv")
    summary = means(records)
    write_json(summary, root(layout) / "metrics.json")
    return summary


class AdaptiveStage(SingleUnitStage):
    """One unit: :func:`craft_and_evaluate`."""

    def work(self, ctx: StageContext) -> dict[str, Any]:
        return craft_and_evaluate(ctx.params, ctx.layout, ctx.device, ctx.progress)


STAGE = AdaptiveStage(
    name="adaptive",
    desc="Adaptive attacks through the purifier (BPDA + EOT, full gradients) and the stochastic defense "
         "scored over draws",
    params=("seed", "attack", "adaptive", "purify", "train.models"),
    deps=("data/simulated/test.zarr", "data/attack", "data/restorers", "data/finetuned", "data/purifier"),
    outs=("data/adaptive/adversarial.zarr", "data/adaptive/records.csv"),
    metrics=({"data/adaptive/metrics.json": {"cache": False}},),
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner (:func:`craft_and_evaluate`)."""
    return run_stage(STAGE, params, layout, device, progress)
