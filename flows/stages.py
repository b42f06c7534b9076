"""One Prefect flow per pipeline stage, all built the same way from the stage list
(:data:`udcshield.pipeline.runner.STAGE_NAMES`). ``dvc.yaml`` runs each through ``python -m flows <stage>``.

A stage flow validates the params (schema, then the stage's registry-aware preflight) before any work,
chooses the device at the edge (``auto`` -> CUDA when present) and runs the stage protocol as tasks
(:func:`tasks.runner.run_stage_tasks`): the same plan, units and assemble as ``udcshield run <stage>``.
The report flow also publishes the report and the robustness table as Prefect artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import Flow, flow

from tasks.runner import run_stage_tasks
from udcshield.config import Params, load_params
from udcshield.pipeline.layout import Layout, configure_torch, resolve_device
from udcshield.pipeline.runner import STAGE_NAMES, get_stage
from udcshield.pipeline.stage import StageContext
from udcshield.preflight import preflight


def stage_context(stage: str, params_path: str, data_root: str) -> StageContext:
    """Load and check the params for ``stage`` (ConfigError naming the key) and build its context."""
    configure_torch()
    params: Params = load_params(params_path)
    preflight(params, get_stage(stage).sections)
    return StageContext(params, Layout(Path(data_root)), resolve_device(params.device))


def publish_report(summary: dict[str, Any], layout: Layout) -> None:
    """The report and its robustness table as Prefect artifacts (shown in the UI)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(key="robustness-report", markdown=layout.report.read_text(),
                             description="udcshield robustness report")
    create_table_artifact(key="robustness-table", table=summary["table"],
                          description=f"Mean PSNR (dB) / SSIM per restorer x defense x condition; "
                                      f"figures and image grids in {summary['html']}")


def stage_flow(stage: str) -> Flow:
    """The Prefect flow of ``stage``: ``flow(params_path="params.yaml", data_root="data") -> summary``."""

    def run(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
        ctx = stage_context(stage, params_path, data_root)
        summary = run_stage_tasks(stage, ctx)
        if stage == "report":
            publish_report(summary, ctx.layout)
            summary = {k: v for k, v in summary.items() if k != "table"}
        return summary

    run.__name__ = f"{stage}_flow"
    run.__doc__ = f"Stage ``{stage}`` (see ``udcshield.pipeline.{stage}``) as a Prefect flow."
    return flow(name=stage, log_prints=True)(run)


STAGE_FLOWS: dict[str, Flow] = {name: stage_flow(name) for name in STAGE_NAMES}
globals().update({f"{name}_flow": f for name, f in STAGE_FLOWS.items()})  # entrypoints flows/stages.py:<stage>_flow
