"""Stage ``adaptive`` on a tiny real layout: PGD / APGD sets, per-image cost, and the gradient-masking checks
(checks.json), which trip on a restorer with a zero-gradient quantiser and pass on the plain tiny restorer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.pipeline.report_layout import report_params, write_models, write_simulated
from udcshield.config import ConfigError, params_from_dict, to_dict
from udcshield.config.robustness import STRONG_ATTACKS, STRONG_BUDGETS, STRONG_DRAWS
from udcshield.pipeline import adaptive, adaptive_checks, attack
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import restorers
from udcshield.store.zarr_io import read_images, store_attrs

CPU = torch.device("cpu")
ATTACKS = [{"name": "bpda_eot", "algorithm": "pgd", "gradient": "bpda", "eot_samples": 1, "steps": 4,
            "checkpoint": False},
           {"name": "full", "algorithm": "apgd", "gradient": "full", "eot_samples": 1, "steps": 6, "checkpoint": True}]
OVERRIDES = {
    "attack": {"attacks": [{"name": "pgd", "budgets": [32], "kwargs": {"steps": 2, "random_start": True}}]},
    "adaptive": {"budgets": [32], "max_images": 2, "draws": 2, "batch_size": 2, "attacks": ATTACKS,
                 "checks": {"max_images": 2, "square_queries": 12, "square_eot_samples": 2, "large_budget": 64,
                            "tolerance_db": 0.5, "floor_tolerance_db": 5.0}},  # tiny: 3 dB above plain, 8 masked
}
ENTRY_KEYS = {"restorer", "model", "budget", "check", "status", "compared", "threshold_db", "tolerance_db", "images",
              "explanation"}


def params_for(**overrides):
    return report_params(**{**OVERRIDES, **overrides})


@pytest.fixture(scope="module")
def base_layout(tmp_path_factory) -> Path:
    """Simulated store, tiny restorers and purifier, and the attack stage's (transfer) PGD sets."""
    root = tmp_path_factory.mktemp("adaptive") / "data"
    layout = Layout(root)
    write_simulated(layout)
    write_models(layout)
    attack.run(params_for(), layout, CPU)
    return root


def fresh(base: Path, tmp_path: Path) -> Layout:
    shutil.copytree(base, tmp_path / "data")
    return Layout(tmp_path / "data")


class Quantised(nn.Module):
    """A gradient-masking layer in front of a restorer: 8-bit rounding, whose gradient is zero everywhere (the
    forward pass is nearly the identity, so the defended function barely changes)."""

    def __init__(self, restorer: nn.Module) -> None:
        super().__init__()
        self.restorer = restorer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restorer(torch.round(x * 255) / 255)


def checks_of(layout: Layout) -> dict:
    return json.loads(adaptive.checks_path(layout).read_text())


def statuses(doc: dict, variant: str) -> dict[tuple[str, int], str]:
    return {(e["check"], e["budget"]): e["status"] for e in doc["checks"] if e["restorer"] == variant}


@pytest.fixture(scope="module")
def plain_run(base_layout, tmp_path_factory):
    params = params_for()
    layout = fresh(base_layout, tmp_path_factory.mktemp("plain"))
    rows: list[dict] = []
    summary = adaptive.run(params, layout, CPU, rows.append)
    return params, layout, summary, rows


def test_checks_json_has_the_documented_keys_and_one_entry_per_variant_budget_check(plain_run):
    params, layout, _, _ = plain_run
    doc = checks_of(layout)
    assert set(doc) == {"schema", "enabled", "status", "passed", "failed", "metric", "settings", "checks"}
    assert doc["schema"] == adaptive_checks.SCHEMA and doc["enabled"] is True and doc["metric"] == "psnr_mean_draws"
    assert doc["settings"]["large_budget_attack"] == "full" and doc["settings"]["draws"] == 2
    assert doc["passed"] + doc["failed"] == len(doc["checks"])
    keys = [(e["restorer"], e["budget"], e["check"]) for e in doc["checks"]]
    assert len(keys) == len(set(keys))
    expected = {(s, 32, c) for s in restorers(params) for c in adaptive_checks.CHECKS[:4]}
    expected |= {(s, 64, "large_budget_floor") for s in restorers(params)}
    assert set(keys) == expected
    for e in doc["checks"]:
        assert ENTRY_KEYS <= set(e) and e["status"] in ("pass", "FAIL") and e["explanation"]
        assert all(isinstance(v, float) for v in e["compared"].values()) and len(e["compared"]) == 2
    square = next(e for e in doc["checks"] if e["check"] == "square_vs_whitebox")
    assert square["images"] == 2 and square["cost"]["queries_per_image"] == 12
    assert square["cost"]["purifier_evals_per_image"] == 12 * 2 * 4  # queries x fixed draws x UNet calls (t* = 4)


def test_checks_pass_on_a_normal_restorer(plain_run):
    _, layout, _, _ = plain_run
    doc = checks_of(layout)
    assert doc["status"] == "pass", [e["explanation"] for e in doc["checks"] if e["status"] == "FAIL"]


def test_checks_fail_behind_a_gradient_masking_layer(base_layout, tmp_path, monkeypatch):
    load = adaptive.load_restorer
    monkeypatch.setattr(adaptive, "load_restorer", lambda layout, source: Quantised(load(layout, source)))
    params = params_for()
    layout = fresh(base_layout, tmp_path)
    adaptive.run(params, layout, CPU)
    doc = checks_of(layout)
    assert doc["status"] == "FAIL"
    for variant in restorers(params):
        got = statuses(doc, variant)
        assert got[("square_vs_whitebox", 32)] == "FAIL"
        assert got[("large_budget_floor", 64)] == "FAIL"
        assert got[("full_vs_transfer", 32)] == "FAIL" and got[("bpda_vs_transfer", 32)] == "FAIL"


def test_sets_cost_and_metrics(plain_run):
    params, layout, summary, rows = plain_run
    store = layout.root / "adaptive" / "adversarial.zarr"
    x = read_images(layout.test_store, "inputs")[:2]
    for source in restorers(params):
        for spec in params.adaptive.attacks:
            name = f"{source}/{spec.name}/32"
            adv = read_images(store, name)
            assert adv.shape == x.shape and np.abs(adv - x).max() <= 32 / 256
            attrs = store_attrs(store, name)
            assert attrs["algorithm"] == spec.algorithm and attrs["restarts"] == 1
            cost = attrs["cost"]
            assert cost["images"] == 2 and cost["seconds_per_image"] > 0
            passes = spec.steps + 1  # APGD: steps + 1 gradients; PGD: steps gradients + the last iterate scored
            assert cost["forward_backward_per_image"] == (spec.steps + 1 if spec.algorithm == "apgd" else spec.steps)
            full = spec.gradient == "full"
            assert cost["purifier_evals_per_image"] == 4 * (passes + (cost["forward_backward_per_image"]
                                                                       if full and spec.checkpoint else 0))
            assert cost["purifier_backward_per_image"] == (4 * cost["forward_backward_per_image"] if full else 0)
            model = source.replace("/", ":")
            assert summary[model]["cost"][f"{spec.name}_32"] == {k: cost[k] for k in adaptive.COST_KEYS}
    metrics = json.loads((layout.root / "adaptive" / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(summary))
    assert {r["phase"] for r in rows} == {"craft", "draws", "checks"}


def test_same_arrays_and_checks_regardless_of_batch_size(base_layout, plain_run, tmp_path):
    params, layout, _, _ = plain_run
    other = params_for(adaptive={**OVERRIDES["adaptive"], "batch_size": 1})
    again = fresh(base_layout, tmp_path)
    adaptive.run(other, again, CPU)
    for source in restorers(params):
        for spec in params.adaptive.attacks:
            name = f"{source}/{spec.name}/32"
            np.testing.assert_array_equal(read_images(again.root / "adaptive" / "adversarial.zarr", name),
                                          read_images(layout.root / "adaptive" / "adversarial.zarr", name))
    strip = lambda doc: [{k: v for k, v in e.items() if k != "cost"} for e in doc["checks"]]  # noqa: E731
    assert strip(checks_of(again)) == strip(checks_of(layout))


def test_disabled_checks_still_write_checks_json(base_layout, tmp_path):
    params = params_for(adaptive={**OVERRIDES["adaptive"], "checks": {"enabled": False}})
    layout = fresh(base_layout, tmp_path)
    adaptive.run(params, layout, CPU)
    doc = checks_of(layout)
    assert doc["enabled"] is False and doc["checks"] == [] and doc["status"] == "pass"


def test_stage_declares_checks_json_as_an_uncached_output():
    """An output, not a DVC metric: it holds statuses and explanations, not only numbers."""
    assert {"data/adaptive/checks.json": {"cache": False}} in adaptive.STAGE.outs


# ------------------------------------------------------------------------------------------ params
def test_default_adaptive_section():
    cfg = params_from_dict({}).adaptive
    assert cfg.draws >= 8 and not cfg.strong and cfg.checks.enabled
    assert any(a.gradient == "full" for a in cfg.attacks) and any(a.gradient == "bpda" for a in cfg.attacks)
    assert cfg.large_budget_spec().gradient == "full"


def test_checks_use_every_image_when_the_adaptive_set_is_smaller():
    assert params_from_dict({"adaptive": {"max_images": 1}}).adaptive.checks.max_images == 2  # valid: clamped at run


def test_strong_switch_replaces_the_protocol():
    cfg = params_from_dict({"adaptive": {"strong": True, "max_images": 4}}).adaptive
    assert cfg.attacks == STRONG_ATTACKS and cfg.budgets == STRONG_BUDGETS == (1, 2, 4, 8)
    assert cfg.draws == STRONG_DRAWS >= 16 and cfg.max_images == 4 and cfg.checks.max_images == 8
    full = [a for a in cfg.attacks if a.gradient == "full"]
    assert {a.algorithm for a in full} == {"apgd", "pgd"} and all(a.eot_samples >= 8 and a.steps >= 50 for a in full)
    assert any(a.gradient == "bpda" for a in cfg.attacks) and cfg.checks.enabled
    assert cfg.large_budget_spec().name == "full"
    params = params_from_dict({"adaptive": {"strong": True}})
    assert params_from_dict(to_dict(params)) == params


@pytest.mark.parametrize("raw, culprit", [
    ({"strong": "yes"}, "adaptive.strong must be true or false"),
    ({"attacks": [{"name": "x", "algorithm": "fgsm"}]}, "adaptive.attacks[0].algorithm must be one of"),
    ({"attacks": [{"name": "x", "restarts": 0}]}, "adaptive.attacks[0].restarts must be > 0"),
    ({"checks": {"max_images": 0}}, "adaptive.checks.max_images must be > 0"),
    ({"checks": {"square_queries": 0}}, "adaptive.checks.square_queries must be > 0"),
    ({"checks": {"square_eot_samples": 0}}, "adaptive.checks.square_eot_samples must be > 0"),
    ({"checks": {"tolerance_db": -1.0}}, "adaptive.checks.tolerance_db must be >= 0"),
    ({"checks": {"floor_tolerance_db": -1.0}}, "adaptive.checks.floor_tolerance_db must be >= 0"),
    ({"checks": {"large_budget": 0}}, "adaptive.checks.large_budget must be an integer number of 1/256 steps"),
    ({"checks": {"large_budget_attack": "nope"}}, "adaptive.checks.large_budget_attack 'nope' is not one of"),
    ({"checks": {"colour": 1}}, "unknown key adaptive.checks.colour"),
    ({"attacks": []}, "adaptive.attacks must list at least one attack when adaptive.checks.enabled"),
])
def test_bad_adaptive_params_name_the_key(raw, culprit):
    with pytest.raises(ConfigError, match=r"^params: " + culprit.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        params_from_dict({"adaptive": raw})
