"""Known answers of the evaluation: APGD against PGD on a trained restorer, and the gradient-masking flag
tripping on a restorer whose forward pass has no useful gradient."""

import pytest
import torch
from torch import nn

from tests.pipeline_fixtures import tiny_params
from udcshield.attacks import APGD, PGD, Square
from udcshield.attacks.budget import budget_to_linf
from udcshield.attacks.objectives import distortion
from udcshield.config import params_from_dict
from udcshield.evaluation.metrics import psnr
from udcshield.models.registry import create_restorer
from udcshield.pipeline.report_checks import masking_checks

EPS = budget_to_linf(8)


def blurred_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hazy, sharp) pairs: smooth random images and a blurred, veiled copy, (n, 3, 16, 16) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    sharp = nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=16, mode="bilinear")
    kernel = torch.full((3, 1, 3, 3), 1 / 9)
    hazy = 0.2 + 0.6 * nn.functional.conv2d(sharp, kernel, padding=1, groups=3)
    return hazy.clamp(0, 1), sharp.clamp(0, 1)


@pytest.fixture(scope="module")
def trained():
    """A tiny ResUNet trained for 150 Adam steps to undo the veil and blur (loss falls several-fold)."""
    torch.manual_seed(0)
    model = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = blurred_pairs(64, 1)
    first = None
    for step in range(150):
        s = slice((step * 8) % 64, (step * 8) % 64 + 8)
        loss = ((model(x[s]) - y[s]) ** 2).mean()
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 3
    return model.eval()


def test_apgd_at_least_as_strong_as_pgd_on_a_trained_restorer(trained):
    x, y = blurred_pairs(8, 2)
    seeds = list(range(8))
    with torch.no_grad():
        apgd = distortion(trained(APGD(trained, eps=EPS, steps=20)(x, y, seeds=seeds)), y)
        pgd = distortion(trained(PGD(trained, eps=EPS, steps=20)(x, y, seeds=seeds)), y)
    assert float(apgd.mean()) >= float(pgd.mean())


class Quantised(nn.Module):
    """A restorer whose forward pass rounds its input to 32 levels: gradients are zero almost everywhere
    (gradient masking by a non-differentiable layer, Athalye et al. 2018)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 31) / 31)


def test_masking_flag_trips_on_a_quantising_restorer_and_not_on_the_plain_one(trained):
    """The report's masking check compares the weaker black-box Square with the strongest white-box attack:
    on the quantising restorer PGD's gradient is zero and Square wins (FAIL); on the plain one PGD wins."""
    raw = tiny_params()
    raw["attack"]["attacks"] = [{"name": "pgd", "budgets": [8]}, {"name": "square", "budgets": [8]}]
    params = params_from_dict(raw)
    x, y = blurred_pairs(4, 3)
    seeds = list(range(4))
    status = {}
    for label, model in (("masked", Quantised(trained).eval()), ("plain", trained)):
        with torch.no_grad():
            pgd = psnr(model(PGD(model, eps=EPS, steps=10)(x, y, seeds=seeds)), y).mean()
            square = psnr(model(Square(model, eps=EPS, max_queries=150)(x, y, seeds=seeds)), y).mean()
        summary = {"m": {"none": {"pgd_8": {"psnr": float(pgd)}, "square_8": {"psnr": float(square)}}}}
        (row,) = masking_checks(params, summary, "m")
        status[label] = row["status"]
    assert status == {"masked": "FAIL", "plain": "pass"}
