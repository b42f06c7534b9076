"""One Prefect flow per pipeline stage. ``dvc.yaml`` runs each through ``python -m flows <stage>``.

Flows take the path of ``params.yaml`` and the data root, validate the params before any work, choose
the device at the edge (``auto`` -> CUDA when present) and compose the stage's tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks import robustness as rt
from tasks import simulate as st
from tasks import sweep as swt
from tasks import train as tt
from tasks.common import progress_logger
from udcshield.config import Params, load_params
from udcshield.pipeline import attack, evaluate, finetune
from udcshield.pipeline.layout import Layout, configure_torch, resolve_device
from udcshield.progress import ProgressMeter


def _setup(params_path: str, data_root: str) -> tuple[Params, Layout]:
    configure_torch()
    return load_params(params_path), Layout(Path(data_root))


@flow(name="simulate", log_prints=True)
def simulate_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Embedded photos -> pseudo-HDR -> PSF bank -> paired train/test zarr stores."""
    params, layout = _setup(params_path, data_root)
    psfs = st.psf_bank(params)
    splits = {split: st.simulate_split(params, psfs, split) for split in ("train", "test")}
    return st.write_simulated(params, layout, psfs, splits)


@flow(name="train", log_prints=True)
def train_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Train every configured restorer on the simulated training pairs."""
    params, layout = _setup(params_path, data_root)
    device = resolve_device(params.device)
    inputs, targets, _ = tt.load_split(str(layout.train_store))
    out = {}
    for spec in params.train.models:
        model, history = tt.fit_restorer(params, spec.name, inputs, targets, device)
        out[spec.name] = tt.save_restorer(params, layout, spec.name, model, history, device)
    return out


@flow(name="train_purifier", log_prints=True)
def train_purifier_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Train the diffusion purifier on the degraded training inputs."""
    params, layout = _setup(params_path, data_root)
    device = resolve_device(params.device)
    inputs, _, _ = tt.load_split(str(layout.train_store))
    purifier, history = tt.fit_purifier(params, inputs, device)
    return tt.save_purifier(params, layout, purifier, history, device)


@flow(name="finetune", log_prints=True)
def finetune_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Fine-tune every restorer in ``finetune.mode`` (purified inputs, adversarial, TRADES or mixed)."""
    params, layout = _setup(params_path, data_root)
    device = resolve_device(params.device)
    clean, purified = tt.finetune_training_sets(params, layout, device)
    pairs = finetune.pair_count(params, clean, purified)
    out = {}
    for spec in params.train.models:
        model, history = tt.fit_finetuned(params, layout, spec.name, clean, purified, device)
        out[spec.name] = tt.save_finetuned(params, layout, spec.name, model, history, pairs, device)
    return out


@flow(name="attack", log_prints=True)
def attack_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Craft every adversarial set (restorer x attack x budget) on the bare restorers, shard by shard.

    Shards run on ``runner.kind`` (local or Dask); finished shards are reused from the shard cache, so
    rerunning after a crash computes only the missing ones.
    """
    params, layout = _setup(params_path, data_root)
    device = resolve_device(params.device)
    shards = rt.plan_attack(params, layout, device)
    preloaded = None
    if params.runner.kind == "local":
        models = rt.load_restorers(params, layout)
        preloaded = {name: models[attack.spec_of(params, name)[0]] for name in shards}
    rows = rt.run_shards(rt.attack_shard, "attack", params, layout, shards, device, preloaded)
    rt.log_shard_counts("attack", rows)
    return rt.write_adversarial(params, layout, shards, device, params.runner.kind)


@flow(name="purify", log_prints=True)
def purify_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Purify the clean test inputs and every adversarial set, shard by shard (local or Dask runner)."""
    params, layout = _setup(params_path, data_root)
    device = resolve_device(params.device)
    shards = rt.plan_purify(params, layout, device)
    preloaded = None
    if params.runner.kind == "local":
        purifier = rt.load_purifier_checkpoint(layout)
        preloaded = {name: purifier for name in shards}
    rows = rt.run_shards(rt.purify_shard, "purify", params, layout, shards, device, preloaded)
    rt.log_shard_counts("purify", rows)
    return rt.write_purified(params, layout, shards, device, params.runner.kind)


@flow(name="sweep", log_prints=True)
def sweep_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Purifier t* x sampler sweep: network evaluations, images/s and defended PSNR vs the full DDPM chain."""
    params, layout = _setup(params_path, data_root)
    result = swt.run_sweep(params, layout, resolve_device(params.device))
    for statement in result["statements"]:
        print(statement)
    return result


@flow(name="adaptive", log_prints=True)
def adaptive_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Adaptive attacks through the purifier (BPDA + EOT, full gradients) and the defense over draws."""
    params, layout = _setup(params_path, data_root)
    return rt.adaptive_stage(params, layout, resolve_device(params.device))


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Score every (restorer, defense, attack, budget) cell per image."""
    params, layout = _setup(params_path, data_root)
    device = resolve_device(params.device)
    _, targets, ids = tt.load_split(str(layout.test_store))
    models = rt.load_restorers(params, layout)
    cells = list(evaluate.cells(params))
    meter = ProgressMeter(len(cells) * len(ids), "evaluate", progress_logger("evaluate"))
    records = []
    for cell in cells:  # one progress line per cell: images scored, rate, ETA
        records += rt.score_cell(params, layout, models[cell[0]], cell, targets, ids, device)
        meter.update(len(ids), cell="/".join(map(str, cell)))
    return rt.write_evaluation(params, layout, records)


@flow(name="report", log_prints=True)
def report_flow(params_path: str = "params.yaml", data_root: str = "data") -> dict[str, Any]:
    """Render the markdown and the self-contained HTML report; publish the report and the robustness table
    (mean PSNR / SSIM per restorer, defense and condition) as Prefect artifacts."""
    params, layout = _setup(params_path, data_root)
    result = rt.render_report(params, layout)
    create_markdown_artifact(key="robustness-report", markdown=layout.report.read_text(),
                             description="udcshield robustness report")
    create_table_artifact(key="robustness-table", table=result["table"],
                          description=f"Mean PSNR (dB) / SSIM per restorer x defense x condition; "
                                      f"figures and image grids in {result['html']}")
    return {k: v for k, v in result.items() if k != "table"}


STAGE_FLOWS = {
    "simulate": simulate_flow,
    "train": train_flow,
    "train_purifier": train_purifier_flow,
    "finetune": finetune_flow,
    "attack": attack_flow,
    "purify": purify_flow,
    "sweep": sweep_flow,
    "adaptive": adaptive_flow,
    "evaluate": evaluate_flow,
    "report": report_flow,
}
