"""APGD (Croce & Hein 2020) for restorers: checkpoints, budgets, best iterate, step-size rule, determinism."""

import pytest
import torch
from torch import nn

from tests.tiny import TinyRestorer, mid_images, small_net
from udcshield.attacks.apgd import APGD, APGDL2, checkpoints
from udcshield.attacks.budget import budget_to_linf
from udcshield.attacks.objectives import distortion
from udcshield.attacks.pgd import PGD

EPS = budget_to_linf(8)


def test_checkpoints_are_the_papers():
    """Croce & Hein 2020, Sec. 3.1: p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 for N = 100."""
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1) == [0]
    for n in (2, 5, 20, 37):
        marks = checkpoints(n)
        assert marks[0] == 0 and all(a < b < n for a, b in zip(marks, marks[1:]))
    with pytest.raises(ValueError, match="steps"):
        checkpoints(0)


@pytest.mark.parametrize("cls, eps", [(APGD, EPS), (APGDL2, 0.3)])
def test_result_within_budget_in_the_box(cls, eps):
    x = mid_images(3, 0, 12)
    x[0, :, :3] = 0.0  # pixels on the box's faces
    x[1, :, :3] = 1.0
    atk = cls(TinyRestorer(), eps=eps, steps=12)
    adv = atk(x, torch.rand_like(x), seeds=[1, 2, 3])
    delta = (adv.double() - x.double()).flatten(1)
    norm = delta.abs().amax(dim=1) if cls is APGD else delta.norm(dim=1)
    assert bool((norm <= eps * (1 + 1e-6)).all())
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert atk.last_cost["forward_backward"] == 13 and atk.last_cost["iterations"] == 12


@pytest.mark.parametrize("cls, eps", [(APGD, EPS), (APGDL2, 0.3)])
def test_returns_each_images_best_iterate(cls, eps):
    """The returned point's objective equals the best recorded over the run, per image, and the best never
    decreases with the iterations."""
    model, x = small_net(1), mid_images(4, 2, 10)
    target = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    atk = cls(model, eps=eps, steps=15, restarts=2)
    adv = atk(x, target, seeds=[5, 6, 7, 8])
    history = atk.last_history.double()
    assert history.shape == (2, 16, 4)
    assert bool((history[:, 1:] >= history[:, :-1]).all())
    with torch.no_grad():
        achieved = distortion(model(adv), target).double()
    torch.testing.assert_close(achieved, history[:, -1].amax(dim=0), rtol=1e-5, atol=1e-9)


def test_not_weaker_than_pgd_at_equal_cost_on_a_smooth_restorer():
    model, x = small_net(4), mid_images(6, 5, 12)
    target = torch.rand(x.shape, generator=torch.Generator().manual_seed(9))
    seeds = list(range(6))
    with torch.no_grad():
        apgd = distortion(model(APGD(model, eps=EPS, steps=40)(x, target, seeds=seeds)), target)
        pgd = distortion(model(PGD(model, eps=EPS, steps=41)(x, target, seeds=seeds)), target)
        clean = distortion(model(x), target)
    assert bool((apgd > clean).all())
    assert float(apgd.mean()) >= float(pgd.mean()) * (1 - 1e-3)


def test_identity_clean_output_reaches_the_corner():
    """For the identity and reference = clean output, MSE is maximised at |delta| = eps everywhere."""
    x = mid_images(2, 3, 8)
    adv = APGD(nn.Identity(), eps=EPS, steps=10, reference="clean_output")(x, seeds=[1, 2])
    torch.testing.assert_close(distortion(adv, x), torch.full((2,), EPS**2), rtol=1e-4, atol=0)


def test_deterministic_and_independent_of_the_batch():
    model, x = TinyRestorer(), mid_images(4, 7, 10)
    target = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    atk = APGD(model, eps=EPS, steps=8, restarts=2)
    whole = atk(x, target, seeds=[10, 11, 12, 13])
    assert torch.equal(whole, atk(x, target, seeds=[10, 11, 12, 13]))
    part = atk(x[2:], target[2:], seeds=[12, 13])
    torch.testing.assert_close(part, whole[2:], rtol=0, atol=1e-6)


def test_step_size_is_halved_when_progress_stalls():
    """A constant objective never improves: at every checkpoint eta halves and the iterate resets, and the
    result is the starting point's best (no step can beat it)."""

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return x * 0 + self.w

    x = mid_images(2, 1, 6)
    atk = APGD(Flat(), eps=EPS, steps=10, random_start=False)
    adv = atk(x, torch.full_like(x, 0.5), seeds=[0, 1])
    assert torch.equal(adv, x)  # the start is the best iterate when nothing improves on it
    assert bool((atk.last_history[0] == atk.last_history[0, 0]).all())
    halvings = len(checkpoints(10)) - 1  # every checkpoint after the first: [3, 5, 7, 8, 9]
    torch.testing.assert_close(atk.last_step_size, torch.full((1, 2), 2 * EPS / 2**halvings))


@pytest.mark.parametrize("kwargs, match", [({"steps": 0}, "steps"), ({"restarts": 0}, "restarts"),
                                           ({"restarts": 2, "random_start": False}, "restarts > 1"),
                                           ({"eps": 1.5}, "eps")])
def test_bad_arguments_name_the_culprit(kwargs, match):
    with pytest.raises(ValueError, match=match):
        APGD(TinyRestorer(), **kwargs)


def test_l2_radius_may_exceed_one_and_must_be_positive():
    assert APGDL2(TinyRestorer(), eps=3.0).eps == 3.0
    with pytest.raises(ValueError, match="eps"):
        APGDL2(TinyRestorer(), eps=0.0)
