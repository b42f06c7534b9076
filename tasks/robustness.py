"""Tasks of the ``attack``, ``purify``, ``evaluate`` and ``report`` stages."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from prefect import task

from tasks.common import GPU_TAGS, TASK_OPTIONS, progress_logger
from udcshield.config import AttackSpec, Params
from udcshield.defenses.purifier import load_purifier
from udcshield.pipeline import adaptive, attack, evaluate, purify, report
from udcshield.pipeline.layout import Layout


@task(name="load-restorers", **TASK_OPTIONS)
def load_restorers(params: Params, layout: Layout) -> dict[str, torch.nn.Module]:
    """Every attacked restorer ``<model>/<variant>``, loaded once for the whole flow."""
    return {source: attack.load_restorer(layout, source) for source in attack.restorers(params)}


@task(name="load-purifier", **TASK_OPTIONS)
def load_purifier_checkpoint(layout: Layout) -> torch.nn.Module:
    """The trained purifier, loaded once for the whole flow."""
    return load_purifier(layout.purifier)


@task(name="craft-adversarial", tags=GPU_TAGS, task_run_name="craft-{source}-{spec.name}-{budget}", **TASK_OPTIONS)
def craft(params: Params, model: torch.nn.Module, source: str, spec: AttackSpec, budget: int, inputs: torch.Tensor,
          targets: torch.Tensor, ids: list[str], device: torch.device,
          train: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Craft one adversarial set on the bare restorer ``model`` (``source`` = ``<model>/<variant>``)."""
    return attack.craft(model, spec, budget, inputs, targets, ids, params, source, device, train)


@task(name="write-adversarial", **TASK_OPTIONS)
def write_adversarial(params: Params, layout: Layout, results: dict, device: torch.device) -> dict[str, Any]:
    """Write every adversarial set into adversarial.zarr."""
    return attack.write_outputs(params, layout, results, device)


@task(name="purify-set", tags=GPU_TAGS, task_run_name="purify-{name}", **TASK_OPTIONS)
def purify_set(params: Params, purifier: torch.nn.Module, name: str, images: torch.Tensor, ids: list[str],
               device: torch.device) -> torch.Tensor:
    """Purify one input set (clean or adversarial)."""
    return purify.purify_one(params, purifier, name, images, ids, device)


@task(name="write-purified", **TASK_OPTIONS)
def write_purified(params: Params, layout: Layout, purified: dict, device: torch.device) -> dict[str, Any]:
    """Write every purified set into purified.zarr."""
    return purify.write_outputs(params, layout, purified, device)


@task(name="score-cell", tags=GPU_TAGS, task_run_name="score-{cell[0]}-{cell[1]}-{cell[2]}-{cell[3]}", **TASK_OPTIONS)
def score_cell(params: Params, layout: Layout, model: torch.nn.Module, cell: tuple[str, str, str, int],
               targets: torch.Tensor, ids: list[str], device: torch.device) -> list[dict[str, Any]]:
    """Restore with ``model`` (the restorer named in ``cell``) and score one (restorer, defense, attack, budget) cell."""
    return evaluate.cell_records(params, layout, model, cell, targets, ids, device)


@task(name="write-evaluation", **TASK_OPTIONS)
def write_evaluation(params: Params, layout: Layout, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write records, metrics and curves."""
    return evaluate.write_outputs(params, layout, records)


@task(name="render-report", **TASK_OPTIONS)
def render_report(params: Params, layout: Layout) -> dict[str, Any]:
    """Write the markdown report."""
    return report.run(params, layout)


@task(name="adaptive-attacks-and-draws", tags=GPU_TAGS, **TASK_OPTIONS)
def adaptive_stage(params: Params, layout: Layout, device: torch.device) -> dict[str, Any]:
    """Craft the adaptive attacks through the purifier and evaluate the stochastic defense over draws."""
    return adaptive.run(params, layout, device, progress_logger("adaptive"))
