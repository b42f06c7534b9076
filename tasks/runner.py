"""The Prefect runner of the stage protocol (:mod:`udcshield.pipeline.stage`): the same plan, prepare,
units and assemble as the library's local runner, as Prefect tasks.

Each unit is a ``gpu``-tagged task run named after the unit (a tag concurrency limit schedules them on
the visible GPUs). Units of a distributed stage (attack, purify) go to prefect-dask's DaskTaskRunner when
``runner.kind`` is ``dask``: each worker loads what it needs from the data root and is pinned to one
accelerator. Otherwise units run one after another in the flow's process and share what ``prepare``
loaded (restorers, purifier, training sets). Progress (images done, rate, ETA) is logged per unit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch
from prefect import get_run_logger, task
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner

from tasks.common import GPU_TAGS, TASK_OPTIONS, progress_logger
from tasks.console import quiet_if_requested
from udcshield.config import RunnerConfig
from udcshield.pipeline.common import pin_device
from udcshield.pipeline.runner import get_stage, unit_meter
from udcshield.pipeline.stage import StageContext, Unit

quiet_if_requested()  # a Dask worker of ``python -m flows``: one console line per bad-input error

#: Environment variable naming a dask scheduler (``tcp://host:8786``) when ``runner.address`` is null.
DASK_ADDRESS_ENV = "UDCSHIELD_DASK_ADDRESS"


def worker_index() -> int | None:
    """Index of the dask.distributed worker running this code (from its name, e.g. 0, 1, or ``...-3``);
    None outside a Dask worker."""
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


def dask_runner(runner: RunnerConfig) -> TaskRunner:
    """A DaskTaskRunner on the configured scheduler (``runner.address``, else the environment variable
    UDCSHIELD_DASK_ADDRESS) or on a fresh LocalCluster of ``runner.n_workers`` workers."""
    from prefect_dask import DaskTaskRunner

    address = runner.address or os.environ.get(DASK_ADDRESS_ENV) or None
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": runner.n_workers, "threads_per_worker": runner.threads_per_worker,
                                          "processes": runner.processes, "dashboard_address": None})


#: Loggers of the Dask cluster, muted while it is torn down after a failed unit.
TEARDOWN_LOGGERS = ("distributed", "tornado")


@contextlib.contextmanager
def muted_teardown() -> Iterator[Callable[[], None]]:
    """Yields ``mute()``: called when a unit has failed, it silences :data:`TEARDOWN_LOGGERS` until the
    block ends, so that closing a LocalCluster with units in flight (closed-stream tracebacks from the
    scheduler's comms) does not bury the one error line. Levels are restored on exit."""
    saved: dict[logging.Logger, int] = {}

    def mute() -> None:
        names = [name for name in logging.root.manager.loggerDict
                 if name.split(".")[0] in TEARDOWN_LOGGERS] + list(TEARDOWN_LOGGERS)
        for logger in map(logging.getLogger, names):  # children with a level of their own too
            saved.setdefault(logger, logger.level)
            logger.setLevel(logging.CRITICAL + 1)

    try:
        yield mute
    finally:
        for logger, level in saved.items():
            logger.setLevel(level)


@task(name="plan", task_run_name="plan-{stage}", **TASK_OPTIONS)
def plan_task(stage: str, ctx: StageContext) -> list[Unit]:
    """The stage's units of work."""
    return get_stage(stage).plan(ctx)


@task(name="prepare", task_run_name="prepare-{stage}", tags=GPU_TAGS, **TASK_OPTIONS)
def prepare_task(stage: str, ctx: StageContext) -> Any:
    """Resources shared by the units of an in-process run (loaded models, training sets)."""
    return get_stage(stage).prepare(dataclasses.replace(ctx, progress=progress_logger(stage)))


@task(name="unit", task_run_name="{stage}-{unit.label}", tags=GPU_TAGS, **TASK_OPTIONS)
def unit_task(stage: str, ctx: StageContext, unit: Unit, resources: Any = None) -> Any:
    """Run one unit on this task's device (pinned to one accelerator on a Dask worker)."""
    local = dataclasses.replace(ctx, device=task_device(ctx.device), progress=progress_logger(stage))
    result = get_stage(stage).run_unit(local, unit, resources)
    if isinstance(result, dict) and "computed" in result:  # a shard: computed, or reused from the shard cache
        get_run_logger().info("%s shard %s %s on %s (worker %s)", stage, unit.label,
                              "computed" if result["computed"] else "reused", result["device"], worker_index())
    return result


@task(name="assemble", task_run_name="assemble-{stage}", **TASK_OPTIONS)
def assemble_task(stage: str, ctx: StageContext, units: list[Unit], results: list[Any], resources: Any) -> dict:
    """Write the stage's outputs from the units' results."""
    return get_stage(stage).assemble(dataclasses.replace(ctx, progress=progress_logger(stage)), units, results,
                                     resources)


def run_stage_tasks(stage_name: str, ctx: StageContext) -> dict[str, Any]:
    """Run stage ``stage_name`` as Prefect tasks inside the current flow run; returns its summary.

    ``ctx`` holds validated params, the layout and the device chosen at the edge (no progress callback:
    each task logs to the Prefect run log).
    """
    stage = get_stage(stage_name)
    use_dask = stage.distributed and ctx.params.runner.kind == "dask"
    ctx = dataclasses.replace(ctx, progress=None, runner="dask" if use_dask else "local")
    units = plan_task(stage_name, ctx)
    meter = unit_meter(stage, units, progress_logger(stage_name))

    def done(unit: Unit, result: Any) -> None:
        if meter is not None:
            meter.update(unit.images, **stage.progress_fields(unit, result))

    cpu_only = not any(unit.gpu for unit in units)

    def tagged(unit: Unit):  # the gpu tag (concurrency limit) only on units that use the accelerator
        return unit_task if unit.gpu else unit_task.with_options(tags=[])

    if use_dask:
        resources = None
        with muted_teardown() as mute, dask_runner(ctx.params.runner) as runner:
            try:
                futures = [runner.submit(tagged(unit), {"stage": stage_name, "ctx": ctx, "unit": unit})
                           for unit in units]
                by_id = {id(f): u for f, u in zip(futures, units)}
                for future in as_completed(futures):
                    done(by_id[id(future)], future.result())
                results = [future.result() for future in futures]
            except BaseException:
                mute()  # the cluster now closes with units still running: its comms' tracebacks are noise
                raise
    else:
        resources = (prepare_task.with_options(tags=[]) if cpu_only else prepare_task)(stage_name, ctx)
        results = []
        for unit in units:
            results.append(tagged(unit)(stage_name, ctx, unit, resources))
            done(unit, results[-1])
    log_shard_counts(stage_name, results)
    return assemble_task(stage_name, ctx, units, results, resources)


def log_shard_counts(stage: str, results: list[Any]) -> dict[str, int] | None:
    """For sharded stages (results carry ``computed``): log how many shards were computed and reused."""
    if not results or not all(isinstance(r, dict) and "computed" in r for r in results):
        return None
    counts = {"computed": sum(bool(r["computed"]) for r in results),
              "reused": sum(not r["computed"] for r in results)}
    get_run_logger().info("%s shards: computed=%d reused=%d", stage, counts["computed"], counts["reused"])
    return counts
