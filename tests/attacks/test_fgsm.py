import pytest
import torch
from torch import nn

from udcshield.attacks import FGSM, distortion, project_linf


def linear_model(a: list[float], b: list[float]) -> nn.Module:
    """y_c = a_c * x_c + b_c as a depthwise 1x1 convolution."""
    conv = nn.Conv2d(3, 3, 1, groups=3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(a).view(3, 1, 1, 1))
        conv.bias.copy_(torch.tensor(b))
    return conv


@pytest.mark.parametrize("eps", [1 / 256, 8 / 256])
def test_fgsm_matches_analytic_solution_on_linear_model(eps):
    a, b = [1.5, -0.7, 0.3], [0.1, 0.9, -0.2]
    model = linear_model(a, b)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 6, 6, generator=g)
    t = torch.rand(2, 3, 6, 6, generator=g)
    av, bv = torch.tensor(a).view(1, 3, 1, 1), torch.tensor(b).view(1, 3, 1, 1)
    expected = project_linf(x + eps * torch.sign(av * (av * x + bv - t)), x, eps)
    for objective in ("mse", "l1"):
        adv = FGSM(model, eps=eps, objective=objective)(x, t)
        assert torch.equal(adv, expected)
    atk = FGSM(model, eps=eps)
    atk(x, t)
    assert atk.last_cost["iterations"] == 1 and atk.last_cost["forward_backward"] == 1


def test_fgsm_clean_output_forces_random_start():
    with pytest.warns(UserWarning, match="random_start"):
        atk = FGSM(nn.Identity(), eps=4 / 256, reference="clean_output")
    assert atk.random_start
    x = 0.25 + 0.5 * torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    adv = atk(x, seeds=[3, 4])
    torch.testing.assert_close(distortion(adv, x), torch.full((2,), (4 / 256) ** 2), rtol=1e-5, atol=0)
    assert atk.last_cost["forward_only"] == 1


def test_fgsm_increases_distortion_and_keeps_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh())
    model.train()
    before = [p.clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(2)
    x, t = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    adv = FGSM(model, eps=8 / 256)(x, t)
    with torch.no_grad():
        assert bool((distortion(model(adv), t) > distortion(model(x), t)).all())
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert float((adv - x).abs().max()) <= 8 / 256
