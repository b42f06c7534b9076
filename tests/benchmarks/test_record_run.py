"""benchmarks/record_run.py records a finished run (params, metrics, sizes, stage times); docs/gen.py renders it."""

from __future__ import annotations

import json

import torch
import yaml

from benchmarks.record_run import main, stage_seconds
from tests.docs_module import load_docs_gen
from tests.pipeline_fixtures import tiny_params
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer

LOG = """Running stage 'simulate':
23:59:58.500 | INFO    | Flow run 'red-fox' - Beginning flow run 'red-fox' for flow 'simulate'
23:59:59.000 | INFO    | Task run 'x' - Finished in state Completed()
00:00:02.500 | INFO    | Flow run 'red-fox' - Finished in state Completed()
10:00:00.000 | INFO    | Flow run 'blue-owl' - Beginning flow run 'blue-owl' for flow 'train'
10:01:30.250 | INFO    | Flow run 'blue-owl' - Finished in state Completed()
"""


def _cell(v: float) -> dict:
    return {"psnr": v, "psnr_ci_low": v - 0.5, "psnr_ci_high": v + 0.5}


def _gen():
    return load_docs_gen("udcshield_docs_gen_rr")


def test_stage_seconds_from_the_prefect_log():
    assert stage_seconds(LOG) == {"simulate": 4.0, "train": 90.2}  # across midnight, task lines ignored


def test_record_and_render(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    model = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(0))
    save_checkpoint(model, tmp_path / "data" / "restorers" / "resunet_tiny")
    metrics = {"input": {"none": {"clean": _cell(18.0)}}}
    for variant, shift in (("base", 0.0), ("finetuned", 1.0)):
        metrics[f"resunet_tiny:{variant}"] = {
            d: {"clean": _cell(24.0 - off), **{f"worst_case_{b}": _cell(20.0 - b + shift - off) for b in (2, 8)}}
            for d, off in (("none", 0.0), ("purified", -3.0))}
    (tmp_path / "data" / "evaluate").mkdir(parents=True)
    (tmp_path / "data" / "evaluate" / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "log.txt").write_text(LOG)
    out = tmp_path / "run_x_cpu.json"
    assert main(["--root", str(tmp_path), "--name", "x", "--log", str(tmp_path / "log.txt"), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["profile"] == "tiny" and rec["models"] == ["resunet_tiny"] and rec["wall_seconds"] == 94.2
    assert rec["parameters"]["resunet_tiny"] == sum(p.numel() for p in model.parameters())
    gen = _gen()
    assert gen.benchmark_kind("run_zoo_cpu") == "run"
    text = gen.run_section(rec)
    row = next(line for line in text.splitlines() if line.startswith("| `resunet_tiny`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == ["18.00", "24.00 [23.50, 24.50]", "18.00", "12.00", "15.00 [14.50, 15.50]",
                         "13.00 [12.50, 13.50]", "16.00 [15.50, 16.50]"]
    assert "Wall time 1.6 min (stages: simulate 4 s, train 90 s)." in text
    assert main(["--root", str(tmp_path / "nowhere"), "--name", "x"]) == 1
