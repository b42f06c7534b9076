"""The whole pipeline as one Prefect flow: every stage flow in the order of the stage list, as subflows.

For lineage-tracked runs prefer ``dvc repro``, which calls the same stage flows and skips the stages whose
inputs did not change.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.stages import STAGE_FLOWS
from udcshield.config import load_params
from udcshield.pipeline.runner import STAGE_NAMES
from udcshield.preflight import preflight


@flow(name="udcshield-pipeline", log_prints=True)
def pipeline_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Run all stages in order; returns each stage's summary."""
    preflight(load_params(params_path))  # fail before any work on bad params
    return {stage: STAGE_FLOWS[stage](params_path=params_path, data_root=data_root) for stage in STAGE_NAMES}
