"""The stage protocol: plan the units of work, run one unit, assemble the outputs.

Every pipeline stage is one :class:`Stage` object (``STAGE`` in ``udcshield.pipeline.<name>``). Two
runners execute the same protocol:

* :func:`udcshield.pipeline.runner.run_stage`, the local runner (``udcshield run <stage>``, notebooks);
* ``tasks.runner`` (Prefect), used by ``python -m flows <stage>``, the whole-pipeline flow and therefore
  ``dvc repro``: plan, prepare and assemble are tasks, each unit a ``gpu``-tagged task, and units of a
  :attr:`Stage.distributed` stage may run on a Dask cluster (``runner.kind: dask``).

So the CLI, the flows and DVC run the same code. A stage also declares what DVC needs to know of it
(description, params keys, data dependencies, outputs, metrics, plots): ``dvc.yaml`` is generated from
these declarations and the import closure of the stage's code (:mod:`udcshield.pipeline.dvc_yaml`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from udcshield.config import Params
    from udcshield.pipeline.layout import Layout

Progress = Callable[[dict], None] | None


@dataclass(frozen=True)
class Unit:
    """One unit of a stage's work.

    ``label`` names it (Prefect task run name, progress rows); ``payload`` is what :meth:`Stage.run_unit`
    needs (a shard, a model name, an evaluation cell; picklable, so it can travel to a Dask worker);
    ``images`` is the number of images it covers (0: progress is reported by the unit itself, e.g.
    training steps); ``gpu`` marks units that use the accelerator (``gpu``-tagged Prefect tasks).
    """

    label: str
    payload: Any = None
    images: int = 0
    gpu: bool = True


@dataclass(frozen=True)
class StageContext:
    """What every step of a stage sees: validated params, the data layout, the device chosen at the edge
    (``params.device``, ``auto`` -> CUDA when present), a progress callback (rows of
    :class:`udcshield.progress.ProgressMeter` or training-step rows) and the runner executing the units
    (``local``, or ``dask`` when a Prefect flow sends them to a cluster; recorded in provenance)."""

    params: Params
    layout: Layout
    device: torch.device
    progress: Progress = None
    runner: str = "local"

    def report(self, row: dict) -> None:
        """Send one progress row to the callback, if any."""
        if self.progress is not None:
            self.progress(row)


@dataclass(frozen=True)
class Stage:
    """Base of every stage: subclasses implement :meth:`plan`, :meth:`run_unit` and :meth:`assemble`.

    DVC declarations (paths relative to the repository, data under ``data/``):

    * ``desc``: one line shown by ``dvc stage list``;
    * ``params``: params.yaml keys the stage reads (sections or dotted keys);
    * ``deps``: data artifacts it reads (code dependencies are derived, not declared);
    * ``outs`` / ``metrics`` / ``plots``: dvc.yaml entries, each a path or a {path: options} mapping;
    * ``sections``: params sections whose registry-aware checks (:mod:`udcshield.preflight`) must pass
      before any work;
    * ``distributed``: units are self-contained (they read their inputs from the data root) and may run
      on a Dask cluster.
    """

    name: str
    desc: str
    params: tuple[str, ...]
    deps: tuple[str, ...] = ()
    outs: tuple[Any, ...] = ()
    metrics: tuple[Any, ...] = ()
    plots: tuple[Any, ...] = ()
    sections: tuple[str, ...] = ()
    distributed: bool = False

    def plan(self, ctx: StageContext) -> list[Unit]:
        """The stage's units of work, in order."""
        raise NotImplementedError

    def prepare(self, ctx: StageContext) -> Any:
        """Resources shared by the units of an in-process run (loaded models, training sets); default None.

        Units that run elsewhere (a Dask worker) get None and load what they need themselves.
        """
        return None

    def run_unit(self, ctx: StageContext, unit: Unit, resources: Any) -> Any:
        """Run one unit; returns what :meth:`assemble` needs (small, or already written to a cache)."""
        raise NotImplementedError

    def assemble(self, ctx: StageContext, units: Sequence[Unit], results: Sequence[Any], resources: Any) -> dict:
        """Write the stage's outputs from the units' results; returns the stage summary (JSON-able)."""
        raise NotImplementedError

    def progress_fields(self, unit: Unit, result: Any) -> dict[str, Any]:
        """Extra fields of the progress row logged when ``unit`` finishes (default: its label)."""
        return {"unit": unit.label}


@dataclass(frozen=True)
class SingleUnitStage(Stage):
    """A stage that is one unit of work, reporting its own progress; subclasses implement :meth:`work`."""

    gpu: bool = True

    def plan(self, ctx: StageContext) -> list[Unit]:
        return [Unit(self.name, gpu=self.gpu)]

    def run_unit(self, ctx: StageContext, unit: Unit, resources: Any) -> dict:
        return self.work(ctx)

    def assemble(self, ctx: StageContext, units: Sequence[Unit], results: Sequence[Any], resources: Any) -> dict:
        return results[0]

    def work(self, ctx: StageContext) -> dict:
        """The stage's whole work; returns its summary."""
        raise NotImplementedError
