"""Convergence, measured: objective per iteration in the store, a probe rerun with twice the steps and one
more restart, and a flag that trips on a deliberately under-iterated attack."""

import pytest
import torch

from tests.shard_workspace import build_data, sharded_params
from udcshield.attacks import APGD, FGSM, PGD
from udcshield.config import AttackSpec
from udcshield.pipeline import attack
from udcshield.pipeline.convergence import add_history, history_sums, mean_objective, probe_spec
from udcshield.store.zarr_io import store_attrs

CPU = torch.device("cpu")


def test_probe_spec_doubles_steps_and_adds_a_restart():
    model = torch.nn.Conv2d(3, 3, 1)
    spec = AttackSpec(name="pgd", budgets=(8,), kwargs={"steps": 7, "random_start": True})
    probe = probe_spec(spec, PGD(model, steps=7))
    assert probe.kwargs == {"steps": 14, "random_start": True, "restarts": 2}
    assert probe_spec(AttackSpec(name="apgd"), APGD(model, steps=5, restarts=2)).kwargs == {"steps": 10, "restarts": 3}
    no_start = probe_spec(AttackSpec(name="pgd", kwargs={"random_start": False}), PGD(model, random_start=False))
    assert "restarts" not in no_start.kwargs  # restarts from one fixed start would be identical
    assert probe_spec(AttackSpec(name="fgsm"), FGSM(model)) is None


def test_history_sums_add_up_to_the_mean_over_batches():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Sigmoid())
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    atk = PGD(model, steps=3)
    acc = None
    for s in (slice(0, 1), slice(1, 4)):
        atk(x[s], y[s], seeds=list(range(s.start, s.stop)))
        acc = add_history(acc, history_sums(atk))
    whole = PGD(model, steps=3)
    whole(x, y, seeds=[0, 1, 2, 3])
    torch.testing.assert_close(torch.tensor(mean_objective(acc), dtype=torch.float64), whole.last_history.mean(dim=2), atol=1e-7, rtol=0)
    assert history_sums(FGSM(model)) is None and mean_objective(None) is None


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The attack stage twice on the tiny data root: a 1-step PGD with a tiny step size (under-iterated:
    doubling it must lower the PSNR) and a 20-step PGD (converged at a loose tolerance)."""
    out = {}
    for label, steps, tol in (("short", 1, 0.1), ("long", 20, 0.5)):
        raw = sharded_params(attack={"attacks": [
            {"name": "pgd", "budgets": [8], "kwargs": {"steps": steps, "alpha": 8 / 256 / 8, "random_start": True}},
            {"name": "fgsm", "budgets": [8]}],
            "convergence": {"probe_images": 3, "tolerance_db": tol}})
        params, layout = build_data(tmp_path_factory.mktemp(label), raw)
        attack.run(params, layout, CPU)
        out[label] = {name: store_attrs(layout.adversarial, name)
                      for name in ("resunet_tiny/base/pgd/8", "resunet_tiny/base/fgsm/8")}
    return out


def test_under_iterated_attack_is_flagged(stores):
    record = stores["short"]["resunet_tiny/base/pgd/8"]["convergence"]
    assert record["probe_steps"] == 2 and record["probe_restarts"] == 2 and record["probe_images"] == 3
    assert record["drop_db"] > 0.1 and record["converged"] is False
    assert record["probe_cost"]["forward_backward"] == 2 * 2 * 2  # 2 steps x 2 restarts, 2 batches (batch_size 2)


def test_history_is_stored_and_a_long_attack_converges(stores):
    attrs = stores["long"]["resunet_tiny/base/pgd/8"]
    history = attrs["objective_history"]
    assert len(history) == 1 and len(history[0]) == 21
    assert all(b >= a for a, b in zip(history[0], history[0][1:]))
    assert attrs["convergence"]["converged"] is True
    assert "convergence" not in stores["long"]["resunet_tiny/base/fgsm/8"]
