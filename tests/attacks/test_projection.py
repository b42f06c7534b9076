import numpy as np
import pytest
import torch

from udcshield.attacks import PGD, project_linf, representable_budget

EPSILONS = [1 / 256, 2 / 256, 4 / 256, 8 / 256, 8 / 255, 0.1, 1 / 3]


def edge_images(n: int = 4, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    specials = torch.tensor([0.0, 1.0, 1e-8, 1 - 2**-24, 0.3, 0.7, 2**-10, 1 - 2**-10])
    idx = torch.randint(0, len(specials), x.shape, generator=g)
    use = torch.rand(x.shape, generator=g) < 0.4
    return torch.where(use, specials[idx], x)


def assert_in_budget(adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert adv.dtype == x.dtype and adv.shape == x.shape
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert bool(((adv - x).abs() <= eps).all())  # float32 comparison
    diff64 = np.abs(adv.double().numpy() - x.double().numpy())
    assert diff64.max() <= eps  # exact difference, float64 comparison
    assert np.abs(adv.numpy() - x.numpy()).max() <= np.float32(eps)


@pytest.mark.parametrize("eps", EPSILONS)
def test_project_linf_exact(eps):
    x = edge_images()
    g = torch.Generator().manual_seed(1)
    adv = x + (torch.rand(x.shape, generator=g) * 4 - 2) * eps  # far outside the ball
    assert_in_budget(project_linf(adv, x, eps), x, eps)
    assert_in_budget(project_linf(x + eps, x, eps), x, eps)
    assert_in_budget(project_linf(x - eps, x, eps), x, eps)


def test_naive_clamp_can_violate_and_projection_fixes_it():
    eps = 8 / 255
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    naive = torch.clamp(x + eps, 0, 1)
    over = (naive.double() - x.double()).abs() > eps
    assert bool(over.any())  # rounding of x + eps really exceeds the budget somewhere
    assert_in_budget(project_linf(naive, x, eps), x, eps)


def test_representable_budget():
    assert representable_budget(8 / 256) == 8 / 256
    b = representable_budget(8 / 255)
    assert b <= 8 / 255 and np.float32(b) == b


@pytest.mark.parametrize("eps", [1 / 256, 8 / 256, 8 / 255])
def test_attack_output_in_budget(eps):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Sigmoid())
    x = edge_images(n=2, h=8, w=8, seed=3)
    t = edge_images(n=2, h=8, w=8, seed=4)
    adv = PGD(model, eps=eps, steps=5)(x, t, seeds=[1, 2])
    assert_in_budget(adv, x, eps)


def test_project_linf_rejects_bad_input():
    x = torch.full((1, 3, 4, 4), 0.5)
    with pytest.raises(ValueError, match="eps"):
        project_linf(x, x, -0.1)
    with pytest.raises(ValueError, match="adv"):
        project_linf(x[:, :2], x, 0.1)
    with pytest.raises(ValueError, match="adv"):
        project_linf(x * float("nan"), x, 0.1)
    with pytest.raises(ValueError, match="x"):
        project_linf(x, x + 1, 0.1)
