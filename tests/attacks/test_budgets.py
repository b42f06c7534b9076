"""Every registered attack returns inputs inside its threat model, exactly, and leaves the model alone."""

import numpy as np
import pytest
import torch
from torch import nn

from udcshield.attacks import LPIPS, create_attack, list_attacks

LINF = {"bim": {"steps": 3}, "mifgsm": {"steps": 3}, "fgsm": {}, "pgd": {"steps": 3}, "apgd": {"steps": 3},
        "lpips_pgd": {"steps": 2}, "simba": {"max_queries": 60},
        "square": {"max_queries": 60}}


def edge_images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    specials = torch.tensor([0.0, 1.0, 1e-8, 1 - 2**-24, 2**-10, 1 - 2**-10])
    idx = torch.randint(0, len(specials), x.shape, generator=g)
    return torch.where(torch.rand(x.shape, generator=g) < 0.3, specials[idx], x)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh(),
                         nn.Conv2d(4, 3, 3, padding=1), nn.Sigmoid())


def test_every_attack_is_covered():
    assert set(list_attacks()) == set(LINF) | {"pgd_l2", "apgd_l2", "cw", "cw_l2"}


@pytest.mark.parametrize("name", sorted(LINF))
@pytest.mark.parametrize("eps", [1 / 256, 8 / 255])
def test_linf_budget_exact(name, eps):
    model = small_net().train()
    model[1].eval()
    flags = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    size = 32 if name == "lpips_pgd" else 8
    x, t = edge_images(2, size, 1), edge_images(2, size, 2)
    kwargs = {**LINF[name], "eps": eps}
    if name == "lpips_pgd":
        kwargs["lpips"] = LPIPS.random_for_tests(0)
    adv = create_attack(name, model, **kwargs)(x, t, seeds=[3, 4])
    assert adv.dtype == x.dtype and adv.shape == x.shape
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert np.abs(adv.double().numpy() - x.double().numpy()).max() <= eps
    assert [m.training for m in model.modules()] == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("eps", [0.01, 0.3])
def test_l2_budget(eps):
    model = small_net().eval()
    x, t = edge_images(3, 8, 5), edge_images(3, 8, 6)
    adv = create_attack("pgd_l2", model, eps=eps, steps=4)(x, t, seeds=[1, 2, 3])
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert (adv.double() - x.double()).flatten(1).norm(dim=1).max() <= eps + 1e-6
    cw = create_attack("cw", model, binary_search_steps=2, steps=3)
    adv = cw(x, t, seeds=[1, 2, 3])
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert cw.last_l2.shape == (3,) and cw.last_c.shape == (3,) and cw.last_success.dtype == torch.bool
