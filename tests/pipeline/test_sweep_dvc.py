"""``dvc repro sweep`` on tiny params in a throw-away workspace, with fine-tuning in ``mixed`` mode on a subset
of the layers: the sweep's csv, metrics and plot reach DVC, and the frozen layers of the fine-tuned restorer
are bit-identical to the base restorer's."""

import csv
import json

import pytest
from safetensors.torch import load_file

from tests.pipeline_fixtures import deep_update, make_workspace, run, tiny_params

pytestmark = pytest.mark.slow

TRAINABLE = ["decoders", "tail"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    params = deep_update(tiny_params(), {"finetune": {"mode": "mixed", "trainable": TRAINABLE, "attack_steps": 2,
                                                      "iterations": 4}})
    ws = make_workspace(tmp_path_factory.mktemp("sweep_ws"), params)
    proc = run(["dvc", "repro", "sweep"], ws)
    return ws, proc


def test_sweep_stage_outputs(workspace):
    ws, proc = workspace
    assert "Running stage 'sweep'" in proc.stdout
    assert "Running stage 'purify'" not in proc.stdout  # the sweep needs only the attack stage's arrays
    sweep = tiny_params()["sweep"]
    with (ws / "data/sweep/sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(sweep["t_stars"]) * len(sweep["samplers"])
    full = {r["t_star"]: float(r["nfe"]) for r in rows if r["setting"] == "ddpm-all"}
    assert full == {"4": 4.0, "8": 8.0}
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], ws).stdout)
    assert "t8" in json.dumps(metrics) and "reference_nfe" in json.dumps(metrics)
    assert "full DDPM chain" in (ws / "data/sweep/summary.md").read_text()
    run(["dvc", "plots", "show", "-o", "plots_html"], ws)
    assert "sweep" in (ws / "plots_html" / "index.html").read_text()


def test_mixed_finetune_trains_only_the_selected_layers(workspace):
    ws, _ = workspace
    base = load_file(str(ws / "data/restorers/resunet_tiny/model.safetensors"))
    tuned = load_file(str(ws / "data/finetuned/resunet_tiny/model.safetensors"))
    assert base.keys() == tuned.keys()
    for name in base:
        trained = any(name.startswith(p + ".") for p in TRAINABLE)
        if not trained:
            assert (base[name] == tuned[name]).all(), name
    assert any(not (base[n] == tuned[n]).all() for n in base if n.startswith("tail."))
    config = json.loads((ws / "data/finetuned/resunet_tiny/config.json").read_text())
    assert config["extra"]["provenance"]["params"]["mode"] == "mixed"
    assert config["extra"]["provenance"]["seeds"]["inner_attack"].startswith("per-image random starts")
