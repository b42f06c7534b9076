import math

import pytest
import torch
from torch import nn

from udcshield.attacks import PGDL2, create_attack, distortion, project_l2

from tests.tiny import mid_images, small_net


def norms(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (a.double() - x.double()).flatten(1).norm(dim=1)


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.5, 3.0])
def test_project_l2_feasible_and_optimal(eps):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 6, 6, generator=g)
    x[0, :, :2] = 0.0
    x[1, :, :2] = 1.0
    v = torch.randn(x.shape, generator=g)
    adv = x + v
    p = project_l2(adv, x, eps)
    assert bool((norms(p, x) <= eps + 1e-6).all())
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    torch.testing.assert_close(project_l2(p, x, eps), p, rtol=0, atol=1e-6)  # idempotent
    # optimality: no random feasible point is closer to adv
    for _ in range(20):
        q = project_l2(p + 0.05 * torch.randn(x.shape, generator=g), x, eps)
        assert bool((norms(p, adv) <= norms(q, adv) + 1e-5).all())


def test_project_l2_pure_ball_case_is_scaling():
    x = torch.full((2, 3, 4, 4), 0.5)
    v = 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    p = project_l2(x + v, x, 0.02)
    expected = x + v * (0.02 / v.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    torch.testing.assert_close(p, expected, rtol=0, atol=1e-6)
    inside = project_l2(x + 0.001 * v, x, 0.02)
    assert torch.equal(inside, x + 0.001 * v)


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.5])
def test_identity_clean_output_spends_all_energy(eps):
    x = mid_images(3, 1, 16, 16)
    atk = PGDL2(nn.Identity(), eps=eps, reference="clean_output")
    adv = atk(x, seeds=[1, 2, 3])
    n = x[0].numel()
    torch.testing.assert_close(distortion(adv, x), torch.full((3,), eps**2 / n), rtol=1e-4, atol=0)
    assert bool((norms(adv, x) <= eps + 1e-6).all())
    assert atk.last_cost["iterations"] == 20 and atk.last_cost["forward_backward"] == 20


def test_budget_gain_determinism_and_model():
    model = small_net(1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, t = mid_images(4, 2, 12, 12), mid_images(4, 3, 12, 12)
    x[0, 0] = 0.0
    atk = PGDL2(model, eps=0.5, steps=10)
    adv = atk(x, t, seeds=[1, 2, 3, 4])
    assert bool((norms(adv, x) <= 0.5 + 1e-6).all())
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert torch.equal(adv, atk(x, t, seeds=[1, 2, 3, 4]))
    alone = atk(x[2:3], t[2:3], seeds=[3])
    torch.testing.assert_close(alone[0], adv[2], rtol=0, atol=1e-5)
    assert all(m.training for m in model.modules())
    model.eval()
    with torch.no_grad():
        assert bool((distortion(model(adv), t) > distortion(model(x), t)).all())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_large_eps_and_validation():
    x = mid_images(1, 4, 16, 16)
    atk = PGDL2(nn.Identity(), eps=4.0, steps=3, reference="clean_output")
    assert atk.eps == 4.0 and atk.norm == "L2"
    adv = atk(x, seeds=[0])
    assert float(norms(adv, x)[0]) <= 4.0 + 1e-6
    assert math.isclose(create_attack("pgd_l2", nn.Identity(), eps=1.0, steps=4).alpha, 2.5 / 4)
    with pytest.raises(ValueError, match="eps"):
        PGDL2(nn.Identity(), eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        PGDL2(nn.Identity(), eps=float("inf"))
    with pytest.raises(ValueError, match="adv"):
        project_l2(x[:, :2], x, 0.1)
