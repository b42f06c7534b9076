"""Stage ``evaluate``: one record per image x restorer variant x defense x condition x metric.

Grid: {base, fine-tuned} x {no defense, purified} x {clean, each attack x budget}, plus transfer cells
(sets crafted on the other variant, no defense), PSNR and SSIM
under the SYNTH convention (clamp to [0, 1], 8-bit quantisation, RGB; DESIGN.md section 4). The
attacked inputs are those crafted on the same bare variant (white-box without defense; non-adaptive with
purification, the setting of Song et al., arXiv 2402.13629).

Outputs: ``records.csv`` (long format), ``metrics.json`` (means, for ``dvc metrics show``) and
``curves/<attack>/<model>_<variant>_<defense>.csv`` (PSNR and SSIM vs budget, for ``dvc plots``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch

from udcshield.config import Params
from udcshield.evaluation.metrics import psnr, ssim
from udcshield.evaluation.records import write_records_csv
from udcshield.pipeline.attack import array_name, load_restorer, restorers
from udcshield.pipeline.common import apply_batched, load_pairs, write_json, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.purify import CLEAN
from udcshield.progress import ProgressMeter
from udcshield.store.zarr_io import read_images

Progress = Callable[[dict], None] | None
DEFENSES = ("none", "purified")
METRICS = {"psnr": psnr, "ssim": ssim}


def model_label(source: str) -> str:
    """Record label of restorer ``<model>/<variant>``, e.g. ``resunet:base``."""
    return source.replace("/", ":")


TRANSFER = "@"


def cells(params: Params) -> Iterator[tuple[str, str, str, int]]:
    """Every (restorer, defense, attack, budget) cell; restorer = ``<model>/<variant>``; ``clean`` has budget 0.

    Transfer cells: attack ``<name>@<surrogate>`` is the set crafted on another restorer, fed to this one
    without defense (the surrogate x target matrix).
    """
    sources = list(restorers(params))
    for source in sources:
        for defense in DEFENSES:
            yield source, defense, CLEAN, 0
            for spec in params.attack.attacks:
                for budget in spec.budgets:
                    yield source, defense, spec.name, budget
        for surrogate in sources:
            if surrogate != source:
                for spec in params.attack.attacks:
                    yield source, "none", f"{spec.name}{TRANSFER}{surrogate}", max(spec.budgets)


def cell_inputs(layout: Layout, restorer: str, defense: str, attack: str, budget: int) -> torch.Tensor:
    """The restorer's input for one cell, (N, 3, H, W) float32 in [0, 1]."""
    source = restorer
    if TRANSFER in attack:
        attack, source = attack.split(TRANSFER)
    if defense == "purified":
        name = CLEAN if attack == CLEAN else array_name(source, attack, budget)
        return torch.from_numpy(read_images(layout.purified, name))
    if attack == CLEAN:
        return load_pairs(layout.test_store)[0]
    return torch.from_numpy(read_images(layout.adversarial, array_name(source, attack, budget)))


def score(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, metrics: tuple[str, ...],
          batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Restore ``inputs`` and score against ``targets``: metric name -> (N,) values."""
    outputs = apply_batched(model.to(device).eval(), inputs, batch_size, device)
    return {m: METRICS[m](outputs, targets) for m in metrics}


def cell_records(params: Params, layout: Layout, model: torch.nn.Module, cell: tuple[str, str, str, int],
                 targets: torch.Tensor, image_ids: list[str], device: torch.device) -> list[dict[str, Any]]:
    """Score one (restorer, defense, attack, budget) cell: one record per image x metric."""
    source, defense, attack, budget = cell
    values = score(model, cell_inputs(layout, source, defense, attack, budget), targets,
                   params.evaluate.metrics, params.evaluate.batch_size, device)
    return [{"image_id": i, "model": model_label(source), "defense": defense, "attack": attack,
             "budget": budget, "metric": metric, "value": float(v)}
            for metric, per_image in values.items() for i, v in zip(image_ids, per_image.tolist())]


def write_outputs(params: Params, layout: Layout, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write records.csv, metrics.json and the per-attack curve CSVs; return the nested means."""
    write_records_csv(records, layout.records)
    summary = means(records)
    write_json(summary, layout.metrics)
    for (attack, series), rows in curves(params, summary).items():
        write_rows_csv(rows, layout.curves_dir / attack / f"{series}.csv")
    return summary


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage: score every cell and write records, metrics and curves.

    ``progress`` gets a :class:`udcshield.progress.ProgressMeter` row per cell (images scored, rate, ETA,
    the cell and its mean PSNR).
    """
    _, targets, ids = load_pairs(layout.test_store)
    models = {source: load_restorer(layout, source) for source in restorers(params)}
    records: list[dict[str, Any]] = []
    grid = list(cells(params))
    meter = ProgressMeter(len(grid) * len(ids), "evaluate", progress)
    for cell in grid:
        rows = cell_records(params, layout, models[cell[0]], cell, targets, ids, device)
        records.extend(rows)
        meter.update(len(ids), cell="/".join(map(str, cell)),
                     psnr=round(sum(r["value"] for r in rows if r["metric"] == "psnr") / len(ids), 3))
    return write_outputs(params, layout, records)


def means(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Nested means: model -> defense -> condition (``clean`` or ``<attack>_<budget>``) -> metric -> value."""
    acc: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        cond = CLEAN if r["attack"] == CLEAN else f"{r['attack']}_{r['budget']}"
        acc[(r["model"], r["defense"], cond, r["metric"])].append(float(r["value"]))
    out: dict[str, Any] = {}
    for (model, defense, cond, metric), vals in sorted(acc.items()):
        out.setdefault(model, {}).setdefault(defense, {}).setdefault(cond, {})[metric] = round(sum(vals) / len(vals), 4)
    return out


def curves(params: Params, summary: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (attack, ``<model>_<variant>_<defense>``): rows {budget, psnr, ssim}; budget 0 = clean."""
    out = {}
    for spec in params.attack.attacks:
        for source in restorers(params):
            for defense in DEFENSES:
                cond = summary[model_label(source)][defense]
                rows = []
                for budget in (0, *sorted(spec.budgets)):
                    values = cond[CLEAN if budget == 0 else f"{spec.name}_{budget}"]
                    rows.append({"budget": budget, **values})
                out[(spec.name, f"{source.replace('/', '_')}_{defense}")] = rows
    return out
