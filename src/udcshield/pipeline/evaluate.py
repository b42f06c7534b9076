"""Stage ``evaluate``: one record per image x restorer variant x defense x condition x metric.

Grid: {base, fine-tuned} x {no defense, purified} x {clean, each attack x budget}, plus transfer cells
(sets crafted on the other variant, no defense), the metrics of ``evaluate.metrics`` (PSNR and SSIM; LPIPS
from local weights, ``evaluate.lpips_weights_path``, when listed)
under the SYNTH convention (clamp to [0, 1], 8-bit quantisation, RGB; BasicSR-style SSIM). The
attacked inputs are those crafted on the same bare variant (white-box without defense; non-adaptive with
purification, the setting of Song et al., arXiv 2402.13629).

The identity "restorer" joins them as model ``input`` (:data:`~udcshield.pipeline.names.INPUT_MODEL`): the
raw UDC test inputs scored against the ground truth with the same metrics, clean and undefended only, the
baseline each restorer's clean numbers are compared with (``metrics.json``: ``input.none.clean``).

Each restorer x defense x budget also gets the per-image worst case over the attack suite (attack
``worst_case``, :mod:`udcshield.pipeline.worst_case`), the report's headline, and the undefended cells of
iterative attacks their convergence flag (``converged``, ``convergence_drop_db``).

Outputs: ``records.csv`` (long format), ``metrics.json`` (means, for ``dvc metrics show``),
``curves/<attack>/<model>_<variant>_<defense>.csv`` (PSNR and SSIM vs budget, for ``dvc plots``) and
``grid.zarr``: the report's image grid (inputs and restorations of the first ``report.grid_images`` test
images), restored here so that the report only renders (:mod:`udcshield.pipeline.grid`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from udcshield.attacks.budget import UNBOUNDED
from udcshield.attacks.lpips import LPIPS
from udcshield.attacks.registry import budget_mode
from udcshield.config import EvaluateConfig, Params
from udcshield.evaluation.metrics import lpips_distance, psnr, ssim
from udcshield.evaluation.records import write_records_csv
from udcshield.pipeline.checkpoints import load_restorer
from udcshield.pipeline.common import apply_batched, load_pairs, run_batched, write_json, write_rows_csv
from udcshield.pipeline.grid import write_grid
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import Stage, StageContext, Unit
from udcshield.pipeline.names import (CLEAN, DEFENSES, INPUT_MODEL, TRANSFER, array_name, draw_name, model_label,
                                      restorers)
from udcshield.pipeline.summary import means
from udcshield.pipeline.worst_case import attach_convergence, worst_case_records
from udcshield.store.zarr_io import read_images, store_attrs

Progress = Callable[[dict], None] | None
#: Metrics computed from the images alone; ``lpips`` also needs its network (:func:`lpips_network`).
METRICS = {"psnr": psnr, "ssim": ssim}
LPIPS_METRIC = "lpips"


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


def cell_inputs(layout: Layout, restorer: str, defense: str, attack: str, budget: int,
                draw: int = 0) -> torch.Tensor:
    """The restorer's input for one cell, (N, 3, H, W) float32 in [0, 1] (``draw``: purifier draw, purified
    cells only)."""
    source = restorer
    if TRANSFER in attack:
        attack, source = attack.split(TRANSFER)
    if defense == "purified":
        name = CLEAN if attack == CLEAN else array_name(source, attack, budget)
        return torch.from_numpy(read_images(layout.purified, draw_name(name, draw)))
    if attack == CLEAN:
        return load_pairs(layout.test_store)[0]
    return torch.from_numpy(read_images(layout.adversarial, array_name(source, attack, budget)))


def lpips_network(cfg: EvaluateConfig, device: torch.device) -> LPIPS | None:
    """The LPIPS-AlexNet network of the ``lpips`` metric, loaded from ``cfg.lpips_weights_path`` (a local
    safetensors file, :meth:`udcshield.attacks.lpips.LPIPS.from_file`) onto ``device``; None when ``lpips`` is
    not among ``cfg.metrics`` or no path is set (scoring ``lpips`` then refuses)."""
    if LPIPS_METRIC not in cfg.metrics or cfg.lpips_weights_path is None:
        return None
    return LPIPS.from_file(cfg.lpips_weights_path).to(device)


def score_outputs(outputs: torch.Tensor, targets: torch.Tensor, metrics: tuple[str, ...], batch_size: int,
                  lpips: LPIPS | None = None) -> dict[str, torch.Tensor]:
    """Score images against ``targets``: metric name -> float64 (N,) values on the CPU.

    ``outputs``, ``targets``: (N, 3, H, W) in [0, 1] (clamped and quantized to 8 bit by the metrics). ``lpips``:
    the network of metric ``lpips`` (:func:`lpips_network`), run in batches of ``batch_size`` on its device;
    ValueError when ``lpips`` is listed without it, or for a metric name that is not known.
    """
    out: dict[str, torch.Tensor] = {}
    for m in metrics:
        if m == LPIPS_METRIC:
            if lpips is None:
                raise ValueError("metric 'lpips' needs an LPIPS network: set evaluate.lpips_weights_path to a local "
                                 "LPIPS-AlexNet safetensors file")
            parts = run_batched(lambda s: lpips_distance(outputs[s], targets[s], lpips), outputs.shape[0],
                                batch_size, "evaluate/lpips")
            out[m] = torch.cat(parts)
        elif m in METRICS:
            out[m] = METRICS[m](outputs, targets)
        else:
            raise ValueError(f"unknown metric {m!r} (known: {', '.join([*METRICS, LPIPS_METRIC])})")
    return out


def score(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, metrics: tuple[str, ...],
          batch_size: int, device: torch.device, lpips: LPIPS | None = None) -> dict[str, torch.Tensor]:
    """Restore ``inputs`` and score against ``targets``: metric name -> (N,) values (:func:`score_outputs`)."""
    outputs = apply_batched(model.to(device).eval(), inputs, batch_size, device)
    return score_outputs(outputs, targets, metrics, batch_size, lpips)


def _rows(model: str, defense: str, attack: str, budget: int, values: dict[str, torch.Tensor],
          image_ids: list[str]) -> list[dict[str, Any]]:
    """One record per image x metric of one cell (``values``: metric -> (N,) values in image order)."""
    return [{"image_id": i, "model": model, "defense": defense, "attack": attack, "budget": budget,
             "metric": metric, "value": float(v)}
            for metric, per_image in values.items() for i, v in zip(image_ids, per_image.tolist())]


def input_records(params: Params, inputs: torch.Tensor, targets: torch.Tensor, image_ids: list[str],
                  lpips: LPIPS | None = None) -> list[dict[str, Any]]:
    """The identity "restorer" on the clean test set: each raw UDC input scored against its ground truth.

    ``inputs``, ``targets``: the test pairs, (N, 3, H, W) float32 in [0, 1]; scored with ``evaluate.metrics``
    by :func:`score_outputs` (the restorers' metric functions and convention). One record per image x metric:
    model :data:`~udcshield.pipeline.names.INPUT_MODEL`, defense ``none``, attack ``clean``, budget 0.
    """
    values = score_outputs(inputs, targets, params.evaluate.metrics, params.evaluate.batch_size, lpips)
    return _rows(INPUT_MODEL, "none", CLEAN, 0, values, image_ids)


def cell_records(params: Params, layout: Layout, model: torch.nn.Module, cell: tuple[str, str, str, int],
                 targets: torch.Tensor, image_ids: list[str], device: torch.device,
                 lpips: LPIPS | None = None) -> list[dict[str, Any]]:
    """Score one (restorer, defense, attack, budget) cell: one record per image x metric; a purified cell's
    value is the mean over the ``purify.draws`` purifier draws of that image. ``lpips``: the network of the
    ``lpips`` metric (:func:`lpips_network`), needed when ``evaluate.metrics`` lists it."""
    source, defense, attack, budget = cell
    draws = params.purify.draws if defense == "purified" else 1
    runs = [score(model, cell_inputs(layout, source, defense, attack, budget, k), targets, params.evaluate.metrics,
                  params.evaluate.batch_size, device, lpips) for k in range(draws)]
    values = {m: torch.stack([torch.as_tensor(r[m], dtype=torch.float64) for r in runs]).mean(0)
              for m in params.evaluate.metrics}
    return _rows(model_label(source), defense, attack, budget, values, image_ids)


def write_outputs(params: Params, layout: Layout, records: list[dict[str, Any]],
                  baseline: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write records.csv, metrics.json and the per-attack curve CSVs; return the nested means.

    The per-image worst case over the attack suite joins the records first (attack ``worst_case``,
    :mod:`udcshield.pipeline.worst_case`); undefended cells of iterative attacks get their convergence flag.
    ``baseline``: the identity restorer's records (:func:`input_records`), appended last, so the rows before
    them and every restorer's means and intervals are those of a run without them.
    """
    records = records + worst_case_records(params, records) + list(baseline or [])
    write_records_csv(records, layout.records)
    summary = attach_convergence(params, layout.adversarial, means(records, params.seed), records)
    write_json(summary, layout.metrics)
    for (attack, series), rows in curves(params, summary).items():
        write_rows_csv(rows, layout.curves_dir / attack / f"{series}.csv")
    return summary


def curves(params: Params, summary: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (attack, ``<model>_<variant>_<defense>``): rows {budget, psnr, ssim}; budget 0 = clean. An unbounded
    attack (``cw_l2``, one budget) has no curve."""
    out = {}
    for spec in params.attack.attacks:
        if budget_mode(spec.name) == UNBOUNDED:
            continue
        for source in restorers(params):
            for defense in DEFENSES:
                cond = summary[model_label(source)][defense]
                rows = []
                for budget in (0, *sorted(spec.budgets)):
                    values = cond[CLEAN if budget == 0 else f"{spec.name}_{budget}"]
                    rows.append({"budget": budget, **{m: values[m] for m in params.evaluate.metrics}})
                out[(spec.name, f"{source.replace('/', '_')}_{defense}")] = rows
    return out


class EvaluateStage(Stage):
    """Test targets and restorers loaded once (prepare); one unit per (restorer, defense, attack, budget)
    cell, scored per image; assemble: records, means and curves."""

    def plan(self, ctx: StageContext) -> list[Unit]:
        n = len(store_attrs(ctx.layout.test_store)["image_ids"])
        return [Unit("-".join(map(str, cell)), cell, images=n) for cell in cells(ctx.params)]

    def prepare(self, ctx: StageContext) -> tuple[torch.Tensor, list[str], dict[str, torch.nn.Module], LPIPS | None]:
        _, targets, ids = load_pairs(ctx.layout.test_store)
        models = {source: load_restorer(ctx.layout, source) for source in restorers(ctx.params)}
        return targets, ids, models, lpips_network(ctx.params.evaluate, ctx.device)

    def run_unit(self, ctx: StageContext, unit: Unit, resources: Any) -> list[dict[str, Any]]:
        targets, ids, models, lpips = resources if resources is not None else self.prepare(ctx)
        return cell_records(ctx.params, ctx.layout, models[unit.payload[0]], unit.payload, targets, ids, ctx.device,
                            lpips)

    def progress_fields(self, unit: Unit, result: list[dict[str, Any]]) -> dict[str, Any]:
        psnrs = [r["value"] for r in result if r["metric"] == "psnr"]
        return {"cell": "/".join(map(str, unit.payload)),
                **({"psnr": round(sum(psnrs) / len(psnrs), 3)} if psnrs else {})}

    def assemble(self, ctx, units, results, resources) -> dict[str, Any]:
        resources = resources if resources is not None else self.prepare(ctx)
        inputs, targets, ids = load_pairs(ctx.layout.test_store)
        baseline = input_records(ctx.params, inputs, targets, ids, resources[3])
        summary = write_outputs(ctx.params, ctx.layout, [r for rows in results for r in rows], baseline)
        models = resources[2]
        write_grid(ctx.params, ctx.layout, models, ctx.device)  # the report's image grid, restored here
        return summary


STAGE = EvaluateStage(
    name="evaluate",
    desc="PSNR and SSIM per image for every restorer variant x defense x condition, plus transfer cells",
    params=("attack", "evaluate", "train.models", "train.seeds", "purify.draws", "report.grid_images", "report.grid_attack"),
    deps=("data/simulated/test.zarr", "data/attack", "data/purify", "data/restorers", "data/finetuned"),
    outs=("data/evaluate/records.csv", "data/evaluate/grid.zarr"),
    metrics=({"data/evaluate/metrics.json": {"cache": False}},),
    plots=({"data/evaluate/curves": {"cache": False}},),
    sections=("evaluate",),
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner: score every cell and write records, metrics and curves.

    ``progress`` gets a :class:`udcshield.progress.ProgressMeter` row per cell (images scored, rate, ETA,
    the cell and its mean PSNR).
    """
    return run_stage(STAGE, params, layout, device, progress)
