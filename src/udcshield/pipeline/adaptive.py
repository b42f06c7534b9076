"""Stage ``adaptive``: attacks that see the purifier, the stochastic defense evaluated over draws, masking checks.

The study (Song et al., arXiv 2402.13629) measured its defense with attacks crafted on the bare restorer.
Here PGD or APGD (Madry et al. 2018; Croce & Hein 2020) is run through the defended system (purify ->
restore as one module), with EOT over the purifier's noise (Athalye et al., ICML 2018): BPDA (purification
treated as identity in the backward pass) and full gradients through the reverse chain (optionally with
gradient checkpointing), as in the adaptive evaluations of DiffPure (Nie et al. 2022; Lee & Kim, ICCV 2023;
DiffAttack, NeurIPS 2023). Then every input set is passed through the defended system ``draws`` times with
fresh seeds: per image we record each draw, the mean over draws, the worst draw (DiffHammer, NeurIPS 2024)
and the PSNR of the averaged output. Last, the gradient-masking checks of
:mod:`udcshield.pipeline.adaptive_checks` (full vs BPDA vs transfer, black-box Square on the defended system,
a 64/256 budget against the random-image floor).

Outputs (``data/adaptive``): ``adversarial.zarr`` (``<model>/<variant>/<attack>/<budget>``, (N, 3, H, W)
float32 in [0, 1], N = max_images; attributes hold the attack settings and its ``cost``), ``records.csv``
(``draw``/``seed`` columns for per-draw rows), ``metrics.json`` (the means of the records, plus per restorer
variant a ``cost`` block: per crafted set ``<attack>_<budget>``, seconds and purifier network evaluations per
image) and ``checks.json`` (:mod:`udcshield.pipeline.adaptive_checks`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udcshield.attacks.objectives import ClampedOutput
from udcshield.attacks.base import ImageAttack, project_linf
from udcshield.attacks.budget import budget_to_linf
from udcshield.config import AdaptiveSpec, Params, to_dict
from udcshield.defenses.adaptive import AdaptiveAPGD, AdaptivePGD, AdaptiveSquare
from udcshield.defenses.defended import DefendedRestorer, NoiseDraw
from udcshield.defenses.purifier import DiffusionPurifier, load_purifier
from udcshield.evaluation.metrics import psnr
from udcshield.evaluation.records import write_records_csv
from udcshield.pipeline import adaptive_checks
from udcshield.pipeline.checkpoints import load_restorer
from udcshield.pipeline.common import apply_batched, batches, load_pairs, to_numpy_images, write_json
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import SingleUnitStage, StageContext
from udcshield.pipeline.names import CLEAN, array_name, condition_label, model_label, restorers
from udcshield.pipeline.summary import means
from udcshield.progress import ProgressMeter
from udcshield.seeding import derive_seed
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import read_images, write_store

Progress = Callable[[dict], None] | None
AGGREGATES = ("psnr_mean_draws", "psnr_worst_draw", "psnr_avg_output")
#: Adaptive attack algorithms (``adaptive.attacks[].algorithm``) and their classes.
ALGORITHMS: dict[str, type[AdaptivePGD | AdaptiveAPGD]] = {"pgd": AdaptivePGD, "apgd": AdaptiveAPGD}
#: Per-image cost keys written to the store attributes and to metrics.json.
COST_KEYS = ("seconds_per_image", "purifier_evals_per_image", "purifier_backward_per_image",
             "forward_backward_per_image")


def root(layout: Layout) -> Path:
    """Folder of the stage's outputs."""
    return layout.root / "adaptive"


def checks_path(layout: Layout) -> Path:
    """``<data root>/adaptive/checks.json``: the gradient-masking checks."""
    return root(layout) / "checks.json"


def defended_system(params: Params, purifier: DiffusionPurifier, restorer: torch.nn.Module, gradient: str,
                    checkpoint: bool = False) -> DefendedRestorer:
    """The defended system purify -> restore with the purify stage's settings (t*, steps, sampler, guidance);
    the restorer's output clamped to [0, 1] when ``attack.output`` is ``clamped`` (what PSNR scores, so the
    adaptive attacks raise the scored distortion like the attack stage's)."""
    cfg = params.purify
    if params.attack.output == "clamped":
        restorer = ClampedOutput(restorer)
    return DefendedRestorer(purifier, restorer, t_star=cfg.t_star, num_steps=cfg.num_steps, sampler=cfg.sampler,
                            eta=cfg.eta, guidance_scale=cfg.guidance_scale, gradient=gradient,
                            checkpoint=checkpoint).eval()


def conditions(params: Params) -> Iterator[tuple[str, AdaptiveSpec, int]]:
    """Every (restorer, adaptive attack, budget) the stage crafts."""
    for source in restorers(params):
        for spec in params.adaptive.attacks:
            for budget in params.adaptive.budgets:
                yield source, spec, budget


def make_attack(params: Params, defended: DefendedRestorer, spec: AdaptiveSpec, budget: int) -> ImageAttack:
    """The adaptive attack ``spec`` at integer ``budget`` (units of 1/256) on ``defended``: AdaptivePGD or
    AdaptiveAPGD with the attack section's objective and reference."""
    if spec.algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, got {spec.algorithm!r}")
    return ALGORITHMS[spec.algorithm](defended, eps=budget_to_linf(budget), steps=spec.steps,
                                      eot_samples=spec.eot_samples, restarts=spec.restarts,
                                      objective=params.attack.objective, reference=params.attack.reference)


def per_image_cost(totals: dict[str, float], n: int, evals_per_forward: int, gradient: str,
                   checkpoint: bool) -> dict[str, float]:
    """Per-image cost of a crafted set from its totals (``seconds``; ``image_passes``: defended forward passes
    summed over images; ``image_backward``: forward-backward passes summed over images).

    ``purifier_evals_per_image``: UNet evaluations per image in forward passes (plus the recomputation of
    gradient checkpointing); ``purifier_backward_per_image``: UNet backward passes per image ("full" only:
    BPDA does not differentiate the purifier)."""
    fb = totals["image_backward"] / n
    full = gradient == "full"
    evals = totals["image_passes"] / n * evals_per_forward + (fb * evals_per_forward if full and checkpoint else 0)
    return {"seconds_per_image": round(totals["seconds"] / n, 4), "purifier_evals_per_image": round(evals, 2),
            "purifier_backward_per_image": round(fb * evals_per_forward if full else 0.0, 2),
            "forward_backward_per_image": round(fb, 2)}


def run_attack(atk: ImageAttack, inputs: torch.Tensor, targets: torch.Tensor, image_ids: list[str], label: str,
               params: Params, device: torch.device, eps: float, meter: ProgressMeter | None = None,
               **fields: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """Run ``atk`` batch by batch, image i seeded by derive_seed(seed, label, image_id_i). Returns (adv (N, 3,
    H, W) float32 in [0, 1] on CPU, projected onto the eps ball; totals of the cost: iterations,
    forward_backward, forward_only, purifier_evals (batched UNet calls), seconds, image_passes (defended
    forward passes x images), image_backward (forward-backward passes x images))."""
    advs = []
    totals = {"iterations": 0, "forward_backward": 0, "forward_only": 0, "purifier_evals": 0, "image_passes": 0,
              "image_backward": 0}
    start = time.perf_counter()
    for s in batches(inputs.shape[0], params.adaptive.batch_size):
        seeds = [derive_seed(params.seed, label, i) for i in image_ids[s]]
        adv = atk(inputs[s].to(device), targets[s].to(device), seeds=seeds).detach().float().cpu()
        advs.append(project_linf(adv, inputs[s], eps))
        cost = atk.last_cost
        for key in ("iterations", "forward_backward", "forward_only", "purifier_evals"):
            totals[key] += int(cost.get(key, 0))
        rows = s.stop - s.start
        totals["image_passes"] += int(cost.get("defended_passes", 0)) * rows
        totals["image_backward"] += int(cost.get("forward_backward", 0)) * rows
        if meter is not None:
            meter.update(rows, set=label, **fields)
    totals["seconds"] = time.perf_counter() - start
    return torch.cat(advs), totals


def craft(params: Params, purifier: DiffusionPurifier, restorer: torch.nn.Module, spec: AdaptiveSpec, budget: int,
          inputs: torch.Tensor, targets: torch.Tensor, image_ids: list[str], source: str,
          device: torch.device, meter: ProgressMeter | None = None,
          label: str | None = None, phase: str = "craft") -> tuple[np.ndarray, dict[str, Any]]:
    """Adaptive PGD / APGD through the defended system. Returns (adv (N, 3, H, W) in [0, 1], attributes).

    ``label`` (default ``adaptive/<model>/<variant>/<attack>/<budget>``) names the per-image seeds; ``meter``,
    when given, counts the crafted images batch by batch (rows tagged ``phase``). The attributes' ``cost``
    holds the totals and the per-image cost (:func:`per_image_cost`).
    """
    defended = defended_system(params, purifier, restorer, spec.gradient, spec.checkpoint).to(device)
    atk = make_attack(params, defended, spec, budget)
    label = label or f"adaptive/{array_name(source, spec.name, budget)}"
    eps = budget_to_linf(budget)
    adv, totals = run_attack(atk, inputs, targets, image_ids, label, params, device, eps, meter, phase=phase)
    per_image = per_image_cost(totals, inputs.shape[0], defended.evaluations_per_forward, spec.gradient,
                               spec.checkpoint)
    cost = {k: int(totals[k]) for k in ("iterations", "forward_backward", "purifier_evals")}
    cost.update(seconds=round(totals["seconds"], 3), images=int(inputs.shape[0]), **per_image)
    linf = float((adv - inputs).abs().max())
    return to_numpy_images(adv), {"restorer": source, "attack": spec.name, "algorithm": spec.algorithm,
                                  "gradient": spec.gradient, "eot_samples": spec.eot_samples, "steps": spec.steps,
                                  "restarts": spec.restarts, "checkpoint": spec.checkpoint, "budget": budget,
                                  "eps": eps, "linf_max": linf, "cost": cost, "seed_stage": label}


def draw_seeds(params: Params, image_ids: list[str], k: int) -> list[int]:
    """Purifier seeds of evaluation draw ``k``: derive_seed(seed, "adaptive/eval/draw<k>", image_id) per image
    (the same for every set, so that sets are compared on the same draws)."""
    return [derive_seed(params.seed, f"adaptive/eval/draw{k}", i) for i in image_ids]


@torch.no_grad()
def draw_outputs(params: Params, defended: DefendedRestorer, inputs: torch.Tensor, image_ids: list[str],
                 device: torch.device, meter: ProgressMeter | None = None,
                 **fields: Any) -> Iterator[tuple[int, list[int], torch.Tensor]]:
    """(k, seeds, defended output (N, 3, H, W) on CPU) for each of the ``adaptive.draws`` evaluation draws."""
    for k in range(params.adaptive.draws):
        seeds = draw_seeds(params, image_ids, k)
        out = torch.zeros(inputs.shape)
        for s in batches(inputs.shape[0], params.adaptive.batch_size):
            out[s] = defended(inputs[s].to(device), NoiseDraw(seeds[s], 0)).float().cpu()
            if meter is not None:
                meter.update(s.stop - s.start, draw=k, **fields)
        yield k, seeds, out


def mean_draw_psnr(params: Params, defended: DefendedRestorer, inputs: torch.Tensor, targets: torch.Tensor,
                   image_ids: list[str], device: torch.device, meter: ProgressMeter | None = None,
                   **fields: Any) -> torch.Tensor:
    """Per-image PSNR (dB, float64 (N,)) of the defended outputs, averaged over the evaluation draws."""
    per_draw = [torch.as_tensor(psnr(out, targets))
                for _, _, out in draw_outputs(params, defended, inputs, image_ids, device, meter, **fields)]
    return torch.stack(per_draw).mean(0)


@torch.no_grad()
def draw_records(params: Params, defended: DefendedRestorer, inputs: torch.Tensor, targets: torch.Tensor,
                 image_ids: list[str], source: str, attack: str, budget: int,
                 device: torch.device, meter: ProgressMeter | None = None) -> list[dict[str, Any]]:
    """Run the defended system ``draws`` times; per-draw PSNR rows plus the three aggregates per image.

    ``meter``, when given, counts image passes (``draws`` per image) batch by batch.
    """
    outputs, per_draw, records = [], [], []
    base = {"model": model_label(source), "defense": "purified", "attack": attack, "budget": budget}
    for k, seeds, out in draw_outputs(params, defended, inputs, image_ids, device, meter, phase="draws",
                                      set=f"{source}/{attack}/{budget}"):
        outputs.append(out)
        per_draw.append(torch.as_tensor(psnr(out, targets)))
        records += [{**base, "image_id": i, "metric": "psnr", "value": float(v), "draw": k, "seed": seed}
                    for i, v, seed in zip(image_ids, per_draw[-1].tolist(), seeds)]
    per_draw = torch.stack(per_draw)
    aggregates = {"psnr_mean_draws": per_draw.mean(0), "psnr_worst_draw": per_draw.min(0).values,
                  "psnr_avg_output": torch.as_tensor(psnr(torch.stack(outputs).mean(0), targets))}
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


def transfer_budgets(params: Params) -> set[int]:
    """Budgets at which the attack stage crafts the non-adaptive ``pgd`` set (the transfer comparison)."""
    return {b for s in params.attack.attacks if s.name == "pgd" for b in s.budgets}


def evaluation_sets(params: Params, layout: Layout, source: str, n: int,
                    adversarial: dict[str, np.ndarray]) -> Iterator[tuple[str, int, torch.Tensor]]:
    """(attack label, budget, inputs) evaluated for ``source``: clean, non-adaptive PGD, each adaptive set."""
    yield CLEAN, 0, load_pairs(layout.test_store)[0][:n]
    has_pgd = transfer_budgets(params)
    for budget in params.adaptive.budgets:
        if budget in has_pgd:
            yield "pgd", budget, torch.from_numpy(read_images(layout.adversarial, array_name(source, "pgd", budget))[:n])
        for spec in params.adaptive.attacks:
            yield spec.name, budget, torch.from_numpy(adversarial[array_name(source, spec.name, budget)])


def count_evaluation_sets(params: Params) -> int:
    """Number of input sets :func:`evaluation_sets` yields per restorer (clean, non-adaptive PGD, adaptive)."""
    has_pgd = transfer_budgets(params)
    return 1 + sum((budget in has_pgd) + len(params.adaptive.attacks) for budget in params.adaptive.budgets)


# ------------------------------------------------------------------------------------------ masking checks
def random_images(params: Params, image_ids: list[str], shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform-random images in [0, 1], (N, *shape) float32, image i drawn from a CPU generator seeded by
    derive_seed(seed, "adaptive/checks/random", image_id_i): the inputs of the random-image floor."""
    gens = [torch.Generator(device="cpu").manual_seed(derive_seed(params.seed, "adaptive/checks/random", i))
            for i in image_ids]
    return torch.stack([torch.rand(shape, generator=g) for g in gens])


def mean_psnr_table(records: list[dict[str, Any]], source: str) -> dict[tuple[str, int], dict[str, float]]:
    """(attack, budget) -> image_id -> defended PSNR mean over draws, from ``source``'s records."""
    table: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    label = model_label(source)
    for r in records:
        if r["model"] == label and r["defense"] == "purified" and r["metric"] == "psnr_mean_draws":
            table[(r["attack"], int(r["budget"]))][str(r["image_id"])] = float(r["value"])
    return table


def square_cost(atk: AdaptiveSquare, totals: dict[str, float], n: int) -> dict[str, float]:
    """Per-image cost of the Square check: seconds, queries and purifier evaluations per image."""
    return {"seconds_per_image": round(totals["seconds"] / n, 4),
            "queries_per_image": atk.max_queries,
            "purifier_evals_per_image": round(totals["image_passes"] / n * atk.defended.evaluations_per_forward, 2)}


def source_checks(params: Params, purifier: DiffusionPurifier, restorer: torch.nn.Module, source: str,
                  inputs: torch.Tensor, targets: torch.Tensor, image_ids: list[str],
                  records: list[dict[str, Any]], device: torch.device,
                  meter: ProgressMeter | None = None) -> list[dict[str, Any]]:
    """Every masking check of one restorer variant (see :mod:`udcshield.pipeline.adaptive_checks`).

    ``inputs``, ``targets``: the adaptive images (N, 3, H, W) in [0, 1]; ``records``: the stage's records so
    far (the ordering checks read their per-image means); Square and the large budget run on the first
    ``checks.max_images`` images (all N when fewer).
    """
    cfg, checks = params.adaptive, params.adaptive.checks
    plain = defended_system(params, purifier, restorer, "none").to(device)
    # every check attack is built (and its settings checked) before any work
    squares = {b: AdaptiveSquare(plain, eps=budget_to_linf(b), max_queries=checks.square_queries,
                                 eot_samples=checks.square_eot_samples, objective=params.attack.objective,
                                 reference=params.attack.reference) for b in dict.fromkeys(cfg.budgets)}
    spec, big = large_budget_spec(params), checks.large_budget
    budget_to_linf(big)
    table = mean_psnr_table(records, source)
    gradients = {a.name: a.gradient for a in cfg.attacks}
    k = checks.max_images
    x, y, ids = inputs[:k], targets[:k], image_ids[:k]
    out = []
    for budget, atk in squares.items():
        psnr_at = {attack: sum(v.values()) / len(v) for (attack, b), v in table.items() if b == budget and v}
        out += adaptive_checks.ordering_checks(source, budget, psnr_at, gradients, checks.tolerance_db,
                                               inputs.shape[0])
        label = f"adaptive/checks/{array_name(source, 'square', budget)}"
        adv, totals = run_attack(atk, x, y, ids, label, params, device, atk.eps, meter, phase="checks")
        square = mean_draw_psnr(params, plain, adv, y, ids, device).tolist()
        whitebox = [min(table[(a.name, budget)][i] for a in cfg.attacks) for i in ids]
        out.append(adaptive_checks.square_check(source, budget, square, whitebox, checks.tolerance_db,
                                                checks.square_queries, checks.square_eot_samples,
                                                square_cost(atk, totals, len(ids))))
    label = f"adaptive/checks/{array_name(source, spec.name, big)}"
    adv, attrs = craft(params, purifier, restorer, spec, big, x, y, ids, source, device, meter, label, "checks")
    attacked = float(mean_draw_psnr(params, plain, torch.from_numpy(adv), y, ids, device).mean())
    floor = float(mean_draw_psnr(params, plain, random_images(params, ids, tuple(x.shape[1:])), y, ids, device).mean())
    cost = {key: attrs["cost"][key] for key in COST_KEYS}
    out.append(adaptive_checks.floor_check(source, big, spec.name, attacked, floor, checks.floor_tolerance_db,
                                           len(ids), cost))
    return out


def large_budget_spec(params: Params) -> AdaptiveSpec:
    """The attack of the large-budget check (:meth:`udcshield.config.AdaptiveConfig.large_budget_spec`)."""
    spec = params.adaptive.large_budget_spec()
    if spec is None:
        raise ValueError(f"checks.large_budget_attack {params.adaptive.checks.large_budget_attack!r} is not one of "
                         f"adaptive.attacks ({', '.join(a.name for a in params.adaptive.attacks) or 'none'})")
    return spec


def check_settings(params: Params) -> dict[str, Any]:
    """The settings recorded in checks.json: the checks section, the draws and the large-budget attack."""
    spec = params.adaptive.large_budget_spec() if params.adaptive.attacks else None
    return {**to_dict(params.adaptive.checks), "draws": params.adaptive.draws,
            "large_budget_attack": None if spec is None else spec.name}


# ------------------------------------------------------------------------------------------ the stage
def craft_and_evaluate(params: Params, layout: Layout, device: torch.device,
                       progress: Progress = None) -> dict[str, Any]:
    """Whole stage: craft adaptive sets, evaluate every set over draws, run the masking checks, write the store,
    records, metrics and checks.

    ``progress`` gets :class:`udcshield.progress.ProgressMeter` rows batch by batch: first the crafting
    (``phase=craft``, images crafted), then the evaluation (``phase=draws``, image passes over all draws), then
    the checks (``phase=checks``, images attacked by the check attacks).
    """
    cfg = params.adaptive
    n = cfg.max_images
    inputs, targets, ids = load_pairs(layout.test_store)
    inputs, targets, ids = inputs[:n], targets[:n], ids[:n]
    purifier = load_purifier(layout.purifier)
    adversarial, attrs, records, checks = {}, {}, [], []
    if cfg.enabled:
        crafting = list(conditions(params))
        meter = ProgressMeter(len(crafting) * len(ids), "adaptive craft", progress)
        for source, spec, budget in crafting:
            name = array_name(source, spec.name, budget)
            adversarial[name], attrs[name] = craft(params, purifier, load_restorer(layout, source), spec, budget,
                                                   inputs, targets, ids, source, device, meter)
        sources = list(restorers(params))
        meter = ProgressMeter(len(sources) * count_evaluation_sets(params) * len(ids) * cfg.draws,
                              "adaptive draws", progress)
        for source in sources:
            restorer = load_restorer(layout, source)
            defended = defended_system(params, purifier, restorer, "none").to(device)
            for attack, budget, x in evaluation_sets(params, layout, source, n, adversarial):
                records += undefended_records(params, restorer, x, targets, ids, source, attack, budget, device)
                records += draw_records(params, defended, x, targets, ids, source, attack, budget, device, meter)
        if cfg.checks.enabled:
            k = min(cfg.checks.max_images, len(ids))
            meter = ProgressMeter(len(sources) * (len(dict.fromkeys(cfg.budgets)) + 1) * k, "adaptive checks",
                                  progress)
            for source in sources:
                checks += source_checks(params, purifier, load_restorer(layout, source), source, inputs, targets,
                                        ids, records, device, meter)
    return write_outputs(params, layout, adversarial, attrs, records, device, checks)


def cost_metrics(attrs: dict[str, dict]) -> dict[str, dict[str, dict[str, float]]]:
    """model label -> ``<attack>_<budget>`` -> per-image cost (:data:`COST_KEYS`) of every crafted set."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a in attrs.values():
        out.setdefault(model_label(a["restorer"]), {})[condition_label(a["attack"], a["budget"])] = \
            {k: a["cost"][k] for k in COST_KEYS}
    return out


def write_outputs(params: Params, layout: Layout, adversarial: dict[str, np.ndarray], attrs: dict[str, dict],
                  records: list[dict[str, Any]], device: torch.device,
                  checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write adversarial.zarr, records.csv, metrics.json and checks.json under ``data/adaptive``."""
    prov = make_provenance("adaptive", {"adaptive": to_dict(params.adaptive), "purify": to_dict(params.purify)},
                           inputs={"test": layout.test_store, "purifier": layout.purifier,
                                   "adversarial (non-adaptive)": layout.adversarial},
                           seeds={"seed": params.seed, "attack": "derive_seed(seed, 'adaptive/<set>', image_id)",
                                  "draws": "derive_seed(seed, 'adaptive/eval/draw<k>', image_id)",
                                  "checks": "derive_seed(seed, 'adaptive/checks/<set>', image_id); random floor: "
                                            "derive_seed(seed, 'adaptive/checks/random', image_id)"},
                           device=str(device), extra={"sets": sorted(adversarial)})
    with write_store(root(layout) / "adversarial.zarr", prov) as w:
        for name, adv in adversarial.items():
            w.add_images(name, adv, attrs=attrs[name])
    write_records_csv(records, root(layout) / "records.csv")
    summary = means(records, params.seed)
    for model, cells in cost_metrics(attrs).items():
        summary.setdefault(model, {})["cost"] = cells
    write_json(summary, root(layout) / "metrics.json")
    enabled = params.adaptive.enabled and params.adaptive.checks.enabled
    write_json(adaptive_checks.checks_document(checks or [], check_settings(params), enabled), checks_path(layout))
    return summary


class AdaptiveStage(SingleUnitStage):
    """One unit: :func:`craft_and_evaluate`."""

    def work(self, ctx: StageContext) -> dict[str, Any]:
        return craft_and_evaluate(ctx.params, ctx.layout, ctx.device, ctx.progress)


STAGE = AdaptiveStage(
    name="adaptive",
    desc="Adaptive attacks through the purifier (PGD/APGD with BPDA or full gradients, EOT), the stochastic "
         "defense scored over draws, gradient-masking checks",
    params=("seed", "attack", "adaptive", "purify", "train.models", "train.seeds"),
    deps=("data/simulated/test.zarr", "data/attack", "data/restorers", "data/finetuned", "data/purifier"),
    outs=("data/adaptive/adversarial.zarr", "data/adaptive/records.csv", {"data/adaptive/checks.json": {"cache": False}}),
    metrics=({"data/adaptive/metrics.json": {"cache": False}},),
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner (:func:`craft_and_evaluate`)."""
    return run_stage(STAGE, params, layout, device, progress)
