"""The stage list (written once) and the local runner of the stage protocol.

:data:`STAGE_NAMES` is the pipeline's only list of stages, in dependency order; the CLI, the Prefect
flows and the generated ``dvc.yaml`` read it. Stage objects are imported on demand
(``udcshield.pipeline.<name>.STAGE``), so running one stage imports only that stage's code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from udcshield.pipeline.stage import Progress, Stage, StageContext, Unit
from udcshield.progress import ProgressMeter

if TYPE_CHECKING:
    import torch

    from udcshield.config import Params
    from udcshield.pipeline.layout import Layout

#: Every stage, in an order that respects the data dependencies (``dvc repro`` computes its own).
STAGE_NAMES: tuple[str, ...] = ("simulate", "train", "train_purifier", "finetune", "attack", "purify", "sweep",
                                "adaptive", "evaluate", "report")


def stage_module(name: str) -> str:
    """Dotted module path of stage ``name``; ValueError naming the known stages otherwise."""
    if name not in STAGE_NAMES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")
    return f"udcshield.pipeline.{name}"


def get_stage(name: str) -> Stage:
    """The :class:`Stage` object of stage ``name`` (imports its module)."""
    stage = importlib.import_module(stage_module(name)).STAGE
    if not isinstance(stage, Stage) or stage.name != name:
        raise TypeError(f"{stage_module(name)}.STAGE is not the Stage {name!r}")
    return stage


def unit_meter(stage: Stage, units: list[Unit], progress: Progress) -> ProgressMeter | None:
    """A progress meter over the units' images, or None when the units report their own progress."""
    total = sum(u.images for u in units)
    return ProgressMeter(total, stage.name, progress) if total > 0 and progress is not None else None


def run_stage(stage: Stage | str, params: Params, layout: Layout, device: torch.device,
              progress: Progress = None) -> dict[str, Any]:
    """Run a whole stage in this process: plan, prepare, every unit in order, assemble.

    ``params`` must be validated (``load_params``) and preflighted for the stage's sections
    (:func:`udcshield.preflight.preflight`); ``device`` is chosen at the edge. Returns the stage summary.
    """
    stage = get_stage(stage) if isinstance(stage, str) else stage
    ctx = StageContext(params, layout, device, progress)
    units = stage.plan(ctx)
    resources = stage.prepare(ctx)
    meter = unit_meter(stage, units, progress)
    results = []
    for unit in units:
        results.append(stage.run_unit(ctx, unit, resources))
        if meter is not None:
            meter.update(unit.images, **stage.progress_fields(unit, results[-1]))
    return stage.assemble(ctx, units, results, resources)
