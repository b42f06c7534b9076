"""Tasks of the ``attack``, ``purify``, ``evaluate`` and ``report`` stages.

``attack`` and ``purify`` run shard by shard (:mod:`udcshield.pipeline.shards`): one ``gpu``-tagged task
per shard, on the runner from params (``runner.kind``: ``local`` in this process, or ``dask`` through
prefect-dask's DaskTaskRunner), each pinned to one accelerator.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
from prefect import Task, get_run_logger, task
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tasks.common import GPU_TAGS, TASK_OPTIONS, progress_logger
from udcshield.config import Params, RunnerConfig
from udcshield.defenses.purifier import load_purifier
from udcshield.pipeline import adaptive, attack, evaluate, purify, report
from udcshield.pipeline.common import pin_device
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.shards import Shard
from udcshield.progress import ProgressMeter

#: Environment variable naming a dask scheduler (``tcp://host:8786``) when ``runner.address`` is null.
DASK_ADDRESS_ENV = "UDCSHIELD_DASK_ADDRESS"


@task(name="load-restorers", **TASK_OPTIONS)
def load_restorers(params: Params, layout: Layout) -> dict[str, torch.nn.Module]:
    """Every attacked restorer ``<model>/<variant>``, loaded once for the whole flow."""
    return {source: attack.load_restorer(layout, source) for source in attack.restorers(params)}


@task(name="load-purifier", **TASK_OPTIONS)
def load_purifier_checkpoint(layout: Layout) -> torch.nn.Module:
    """The trained purifier, loaded once for the whole flow."""
    return load_purifier(layout.purifier)


def worker_index() -> int | None:
    """Index of the dask.distributed worker running this code (from its name, e.g. 0, 1, or ``...-3``);
    None outside a Dask worker (the local runner)."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    match = re.search(r"(\d+)$", str(name))
    return int(match.group(1)) if match else None


def task_device(device: torch.device) -> torch.device:
    """The device this task runs on: a bare ``cuda`` becomes ``cuda:<worker index mod visible GPUs>``."""
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    return pin_device(device, worker_index(), count)


def shard_runner(runner: RunnerConfig) -> TaskRunner:
    """The Prefect task runner for shards: a DaskTaskRunner on the configured scheduler (``runner.address``,
    else the environment variable UDCSHIELD_DASK_ADDRESS) or on a fresh LocalCluster; a one-worker thread
    pool for ``kind: local``."""
    if runner.kind == "local":
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    address = runner.address or os.environ.get(DASK_ADDRESS_ENV) or None
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": runner.n_workers, "threads_per_worker": runner.threads_per_worker,
                                          "processes": runner.processes, "dashboard_address": None})


def run_shards(task: Task, stage: str, params: Params, layout: Layout, shards: dict[str, list[Shard]],
               device: torch.device, preloaded: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``task`` (:func:`attack_shard` or :func:`purify_shard`) on every shard with the configured runner.

    ``local``: one after another in this process, each given its already loaded model from ``preloaded``
    (set name -> model). ``dask``: submitted to the cluster; each worker loads its model from the
    checkpoint. Progress (images done, rate, ETA) is logged per finished shard, in completion order;
    the returned rows follow shard order.
    """
    every = [shard for parts in shards.values() for shard in parts]
    meter = ProgressMeter(sum(s.size for s in every), stage, progress_logger(stage))

    def done(row: dict[str, Any]) -> None:
        meter.update(row["images"], set=row["set"], shard=f"{row['start']}:{row['stop']}",
                     computed=row["computed"], device=row["device"])

    if params.runner.kind == "local":
        rows = []
        for shard in every:
            model = (preloaded or {}).get(shard.set_name)
            rows.append(task(params, layout, shard, device, model))
            done(rows[-1])
        return rows
    with shard_runner(params.runner) as runner:
        futures = [runner.submit(task, {"params": params, "layout": layout, "shard": shard, "device": device})
                   for shard in every]
        for future in as_completed(futures):
            done(future.result())
        rows = [future.result() for future in futures]
    return rows


def log_shard_counts(stage: str, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Log and return how many shards were computed and how many reused from the shard cache."""
    counts = {"computed": sum(r["computed"] for r in rows), "reused": sum(not r["computed"] for r in rows)}
    get_run_logger().info("%s shards: computed=%d reused=%d", stage, counts["computed"], counts["reused"])
    return counts


@task(name="plan-attack-shards", **TASK_OPTIONS)
def plan_attack(params: Params, layout: Layout, device: torch.device) -> dict[str, list[Shard]]:
    """Every adversarial set's shards, keyed by everything they depend on."""
    return attack.plan(params, layout, device)


@task(name="attack-shard", tags=GPU_TAGS, task_run_name="attack-{shard.set_name}-{shard.start}-{shard.stop}",
      **TASK_OPTIONS)
def attack_shard(params: Params, layout: Layout, shard: Shard, device: torch.device,
                 model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Craft one shard on the bare restorer (or reuse it from the shard cache) and store it in the cache."""
    row = attack.run_shard(params, layout, shard, task_device(device), model)
    get_run_logger().info("attack shard %s %s on %s (worker %s)", shard.label(),
                          "computed" if row["computed"] else "reused", row["device"], worker_index())
    return row


@task(name="write-adversarial", **TASK_OPTIONS)
def write_adversarial(params: Params, layout: Layout, shards: dict[str, list[Shard]], device: torch.device,
                      runner: str = "local") -> dict[str, Any]:
    """Assemble the shards into adversarial.zarr (budgets checked) and clear them from the cache."""
    return attack.assemble(params, layout, shards, device, runner)


@task(name="plan-purify-shards", **TASK_OPTIONS)
def plan_purify(params: Params, layout: Layout, device: torch.device) -> dict[str, list[Shard]]:
    """Every set's purification shards, keyed by everything they depend on."""
    return purify.plan(params, layout, device)


@task(name="purify-shard", tags=GPU_TAGS, task_run_name="purify-{shard.set_name}-{shard.start}-{shard.stop}",
      **TASK_OPTIONS)
def purify_shard(params: Params, layout: Layout, shard: Shard, device: torch.device,
                 model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Purify one shard (or reuse it from the shard cache) and store it in the cache; ``model``: the purifier."""
    row = purify.run_shard(params, layout, shard, task_device(device), model)
    get_run_logger().info("purify shard %s %s on %s (worker %s)", shard.label(),
                          "computed" if row["computed"] else "reused", row["device"], worker_index())
    return row


@task(name="write-purified", **TASK_OPTIONS)
def write_purified(params: Params, layout: Layout, shards: dict[str, list[Shard]], device: torch.device,
                   runner: str = "local") -> dict[str, Any]:
    """Assemble the shards into purified.zarr and clear them from the cache."""
    return purify.assemble(params, layout, shards, device, runner)


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
    """Write report.md and the self-contained report.html; returns paths, sizes and the robustness table rows."""
    return report.run(params, layout)


@task(name="adaptive-attacks-and-draws", tags=GPU_TAGS, **TASK_OPTIONS)
def adaptive_stage(params: Params, layout: Layout, device: torch.device) -> dict[str, Any]:
    """Craft the adaptive attacks through the purifier and evaluate the stochastic defense over draws."""
    return adaptive.run(params, layout, device, progress_logger("adaptive"))
