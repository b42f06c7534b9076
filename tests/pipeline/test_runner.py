"""The stage list and the local runner of the stage protocol."""

from dataclasses import dataclass

import pytest
import torch

from udcshield.config import params_from_dict
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import STAGE_NAMES, get_stage, run_stage, stage_module
from udcshield.pipeline.stage import SingleUnitStage, Stage, StageContext, Unit


@dataclass(frozen=True)
class CountingStage(Stage):
    """Plans three units of 2 images; records the call order."""

    calls: list = None

    def plan(self, ctx):
        self.calls.append("plan")
        return [Unit(f"u{i}", i, images=2) for i in range(3)]

    def prepare(self, ctx):
        self.calls.append("prepare")
        return 10

    def run_unit(self, ctx, unit, resources):
        self.calls.append(f"run {unit.label}")
        return unit.payload + resources

    def assemble(self, ctx, units, results, resources):
        self.calls.append("assemble")
        return {"sum": sum(results), "units": [u.label for u in units]}


def test_run_stage_plans_prepares_runs_every_unit_then_assembles(tmp_path):
    stage = CountingStage(name="counting", desc="test", params=(), calls=[])
    rows = []
    out = run_stage(stage, params_from_dict({}), Layout(tmp_path), torch.device("cpu"), rows.append)
    assert out == {"sum": 33, "units": ["u0", "u1", "u2"]}
    assert stage.calls == ["plan", "prepare", "run u0", "run u1", "run u2", "assemble"]
    assert [r["done"] for r in rows] == [2, 4, 6] and rows[-1]["unit"] == "u2"


def test_single_unit_stage_returns_its_work(tmp_path):
    class Echo(SingleUnitStage):
        def work(self, ctx: StageContext) -> dict:
            return {"root": str(ctx.layout.root)}

    assert run_stage(Echo(name="echo", desc="", params=()), params_from_dict({}), Layout(tmp_path),
                     torch.device("cpu")) == {"root": str(tmp_path)}


def test_every_listed_stage_has_a_stage_object_with_its_name():
    assert len(set(STAGE_NAMES)) == len(STAGE_NAMES)
    for name in STAGE_NAMES:
        stage = get_stage(name)
        assert stage.name == name and stage.desc and stage.params
        assert all(isinstance(p, str) for p in stage.params)


def test_unknown_stage_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown stage 'nope'; stages: simulate, train"):
        stage_module("nope")
