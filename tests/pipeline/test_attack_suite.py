"""Every attack of the suite runs from params through the attack stage and respects its budget."""

import math

import numpy as np
import pytest
import torch

from tests.pipeline_fixtures import deep_update, tiny_params
from udcshield.config import params_from_dict
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.pipeline import attack, simulate
from udcshield.pipeline.common import load_pairs
from udcshield.pipeline.layout import Layout
from udcshield.store.zarr_io import read_images, store_attrs

SUITE = [
    {"name": "pgd", "budgets": [4], "kwargs": {"steps": 3}},
    {"name": "fgsm", "budgets": [4]},
    {"name": "bim", "budgets": [4], "kwargs": {"steps": 2}},
    {"name": "mifgsm", "budgets": [4], "kwargs": {"steps": 2}},
    {"name": "pgd_l2", "budgets": [4], "kwargs": {"steps": 3}},
    {"name": "apgd", "budgets": [4], "kwargs": {"steps": 4, "restarts": 2}},
    {"name": "apgd_l2", "budgets": [4], "kwargs": {"steps": 4}},
    {"name": "cw", "budgets": [4], "kwargs": {"binary_search_steps": 2, "steps": 5}},
    {"name": "cw_l2", "budgets": [256], "kwargs": {"binary_search_steps": 2, "steps": 5, "c": 1000.0}},
    {"name": "simba", "budgets": [4], "kwargs": {"max_queries": 40}},
    {"name": "square", "budgets": [4], "kwargs": {"max_queries": 20}},
    {"name": "universal", "budgets": [4], "kwargs": {"steps": 3, "lr": 0.005}},
]


@pytest.fixture(scope="module")
def stage_output(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("suite")
    params = params_from_dict(deep_update(tiny_params(), {"attack": {"models": ["base"], "attacks": SUITE}}))
    layout = Layout(root / "data")
    simulate.run(params, layout)
    model = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # a non-identity restorer so gradients and queries matter
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    save_checkpoint(model, layout.restorer("resunet_tiny"))
    summary = attack.run(params, layout, torch.device("cpu"))
    return params, layout, summary


@pytest.mark.parametrize("spec", SUITE, ids=[s["name"] for s in SUITE])
def test_each_attack_is_stored_within_budget(stage_output, spec):
    _, layout, summary = stage_output
    budget = spec["budgets"][0]
    name = f"resunet_tiny/base/{spec['name']}/{budget}"
    adv = read_images(layout.adversarial, name, verify=True)
    clean = load_pairs(layout.test_store)[0].numpy()
    delta = (adv - clean).reshape(adv.shape[0], -1)
    attrs = store_attrs(layout.adversarial, name)
    assert attrs["cost"]["seconds"] >= 0 and summary[name]["budget"] == budget
    assert adv.min() >= 0 and adv.max() <= 1
    if spec["name"] == "cw_l2":  # unbounded: nothing projected, the realised L2 norm recorded
        l2 = np.linalg.norm((adv.astype(np.float64) - clean).reshape(adv.shape[0], -1), axis=1)
        assert attrs["norm"] == "l2" and attrs["l2_mean"] == pytest.approx(l2.mean(), rel=1e-5)
    elif spec["name"] in ("pgd_l2", "apgd_l2"):
        eps = 4 / 256 * math.sqrt(np.prod(adv.shape[1:]))
        assert np.linalg.norm(delta.astype(np.float64), axis=1).max() <= eps * (1 + 1e-6)
    else:
        assert np.abs(delta).max() <= np.float32(4 / 256)
    assert np.abs(delta).max() > 0, "the attack changed nothing"
    if spec["name"] in ("simba", "square"):
        assert 0 < attrs["cost"]["queries"] <= spec["kwargs"]["max_queries"] * adv.shape[0]
        assert attrs["cost"]["forward_backward"] == 0
    if spec["name"].startswith("apgd"):  # steps + 1 gradients per restart
        restarts = spec["kwargs"].get("restarts", 1)
        assert attrs["cost"]["forward_backward"] == (spec["kwargs"]["steps"] + 1) * restarts * math.ceil(
            adv.shape[0] / params_from_dict(tiny_params()).attack.batch_size)
