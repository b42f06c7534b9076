"""Threat-model hygiene: 8-bit adversarial images inside the budget, and the attack on the scored output."""

import pytest
import torch

from tests.tiny import mid_images, small_net
from udcshield.attacks import PGD, ClampedOutput, quantize_linf
from udcshield.attacks.budget import budget_to_linf


@pytest.mark.parametrize("budget", [1, 2, 8])
def test_quantized_images_are_8bit_levels_inside_the_budget(budget):
    eps = budget_to_linf(budget)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(budget), dtype=torch.float32)
    x[0, 0, 0] = 0.0
    x[1, 0, 0] = 1.0
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(9)) * 2 - 1
    adv = (x + eps * noise.sign()).clamp(0, 1)
    q = quantize_linf(adv, x, eps)
    k = torch.round(q.double() * 255)
    assert q.dtype == torch.float32 and torch.equal(q, k.float() / 255)  # exactly what an 8-bit file decodes to
    assert float((q.double() - x.double()).abs().max()) <= eps
    assert float(q.min()) >= 0 and float(q.max()) <= 1
    # nearest level inside the ball: never more than one level away from the float point
    assert float((q.double() - adv.double()).abs().max()) <= 1 / 255 + 1e-9


def test_levels_already_inside_are_kept_and_tiny_budgets_refused():
    x = torch.full((1, 3, 4, 4), 100 / 255)
    adv = torch.full_like(x, 102 / 255)
    assert torch.equal(quantize_linf(adv, x, 8 / 256), adv)
    off = torch.full((1, 3, 4, 4), 100.5 / 255)
    with pytest.raises(ValueError, match="too small for 8-bit levels"):
        quantize_linf(off, off, 1e-4)


def test_clamped_output_is_what_psnr_scores_and_attacks_it():
    """On the clamped output the attack stops pushing saturated pixels; the distortion it reaches on the
    clamped output is at least that of the raw-objective attack (same seeds), on a restorer that overshoots."""
    class Overshoot(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_net()

        def forward(self, x):
            return 12 * (self.net(x) - 0.45) + 0.5  # part of the output lies outside [0, 1]

    model = Overshoot().eval()
    x = mid_images(4, 2, 8)
    y = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    clamped = ClampedOutput(model)
    with torch.no_grad():
        assert float(clamped(x).min()) >= 0 and float(clamped(x).max()) <= 1
        assert float(model(x).max()) > 1 or float(model(x).min()) < 0
    scored = lambda adv: ((clamped(adv) - y) ** 2).flatten(1).mean(1)  # noqa: E731
    with torch.no_grad():
        on_clamped = scored(PGD(clamped, eps=8 / 256, steps=10)(x, y, seeds=[0, 1, 2, 3])).mean()
        on_raw = scored(PGD(model, eps=8 / 256, steps=10)(x, y, seeds=[0, 1, 2, 3])).mean()
    assert float(on_clamped) >= float(on_raw) - 1e-6
