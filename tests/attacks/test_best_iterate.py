"""Best iterate everywhere: every iterative attack returns each image's most damaging iterate.

Croce & Hein (ICML 2020) keep the best point found, not the last; a sign step with a large step size
oscillates on a non-monotone objective, so the last iterate can be far from the best one.
"""

import pytest
import torch
from torch import nn

from tests.tiny import mid_images, small_net
from udcshield.attacks import BIM, MIFGSM, PGD, PGDL2
from udcshield.attacks.iterates import BestIterate
from udcshield.attacks.budget import budget_to_linf
from udcshield.attacks.objectives import distortion

EPS = budget_to_linf(8)


class Wavy(nn.Module):
    """f(x) = (1 + sin(40 conv(x))) / 2 with a fixed random 3x3 conv: the distortion to a fixed target goes
    up and down along any sign path, and pixels interact (no per-pixel fixed point at a corner)."""

    def __init__(self) -> None:
        super().__init__()
        weight = torch.randn(3, 3, 3, 3, generator=torch.Generator().manual_seed(0))
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 + 0.5 * torch.sin(40 * nn.functional.conv2d(x, self.weight, padding=1))


def make(cls, model, keep_best, steps=8):
    kwargs = {"eps": 0.3 if cls is PGDL2 else EPS, "steps": steps, "alpha": (0.3 if cls is PGDL2 else EPS) * 0.7,
              "keep_best": keep_best}
    if cls in (PGD, PGDL2):
        kwargs["random_start"] = True
    return cls(model, **kwargs)


@pytest.mark.parametrize("cls", [PGD, BIM, MIFGSM, PGDL2])
def test_best_iterate_is_at_least_as_strong_as_the_last(cls):
    """Same seeds, same path: the kept iterate's distortion is >= the last iterate's for every image, and
    strictly higher for some on an oscillating objective (the old last-iterate rule fails this)."""
    x = mid_images(6, 3, 8)
    y = torch.rand(x.shape, generator=torch.Generator().manual_seed(4))
    seeds = list(range(6))
    best = make(cls, Wavy(), True)(x, y, seeds=seeds)
    last = make(cls, Wavy(), False)(x, y, seeds=seeds)
    model = Wavy()
    d_best, d_last = distortion(model(best), y), distortion(model(last), y)
    assert bool((d_best >= d_last - 1e-7).all())
    assert bool((d_best > d_last + 1e-4).any())


@pytest.mark.parametrize("cls", [PGD, BIM, MIFGSM, PGDL2])
def test_history_is_the_running_best_and_ends_at_the_returned_point(cls):
    x = mid_images(3, 1, 8)
    y = torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
    atk = make(cls, Wavy(), True, steps=5)
    adv = atk(x, y, seeds=[7, 8, 9])
    history = atk.last_history
    assert history.shape == (1, 6, 3) and history.dtype == torch.float64
    assert bool((history[0, 1:] >= history[0, :-1]).all())
    torch.testing.assert_close(history[0, -1], distortion(atk.model(adv), y).double(), atol=1e-5, rtol=1e-4)
    assert atk.last_cost["forward_only"] == 1  # the last iterate, scored once


def test_pgd_restarts_history_and_cost():
    x = mid_images(2, 5, 8)
    atk = PGD(small_net(), eps=EPS, steps=4, restarts=3)
    atk(x, torch.rand_like(x), seeds=[1, 2])
    assert atk.last_history.shape == (3, 5, 2)
    assert atk.last_cost["forward_backward"] == 12 and atk.last_cost["forward_only"] == 3
    last = PGD(small_net(), eps=EPS, steps=4, restarts=3, keep_best=False)
    last(x, torch.rand_like(x), seeds=[1, 2])
    assert last.last_history.shape == (3, 4, 2)


def test_best_iterate_tracker_keeps_the_earliest_of_equal_values():
    track = BestIterate()
    a, b, c = (torch.full((2, 1, 1, 1), v) for v in (1.0, 2.0, 3.0))
    track.update(a, torch.tensor([1.0, 5.0]))
    track.update(b, torch.tensor([1.0, 6.0]))
    track.update(c, torch.tensor([4.0, 2.0]))
    assert track.point.flatten().tolist() == [3.0, 2.0]
    assert track.history().tolist() == [[1.0, 5.0], [1.0, 6.0], [4.0, 6.0]]
    assert BestIterate().history().numel() == 0
