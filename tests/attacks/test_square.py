import pytest
import torch
from torch import nn

from udcshield.attacks import Square, create_attack, distortion
from udcshield.attacks.square import p_schedule

from tests.tiny import NoGradCounter, mid_images, small_net


def test_p_schedule_halvings():
    assert p_schedule(0.05, 0, 10000) == 0.05
    assert p_schedule(0.05, 10, 10000) == 0.05
    assert p_schedule(0.05, 11, 10000) == 0.025
    assert p_schedule(0.05, 201, 10000) == 0.05 / 8
    assert p_schedule(0.05, 9999, 10000) == 0.05 / 512
    assert p_schedule(0.05, 100, 1000) == p_schedule(0.05, 1000, 10000) == 0.05 / 16
    values = [p_schedule(0.1, i, 500) for i in range(500)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_increases_distortion_within_budgets():
    wrapped = NoGradCounter(small_net())
    x, t = mid_images(3, 1, 16), mid_images(3, 2, 16)
    x[0, :, :2] = 1.0
    atk = Square(wrapped, eps=8 / 256, max_queries=150)
    adv = atk(x, t, seeds=[1, 2, 3])
    with torch.no_grad():
        assert bool((distortion(wrapped(adv), t) > distortion(wrapped(x), t)).all())
    assert wrapped.rows - 6 == 3 * 150 == atk.last_cost["queries"]
    assert atk.last_queries.tolist() == [150, 150, 150] and atk.last_cost["iterations"] == 149
    assert float((adv - x).abs().max()) <= 8 / 256
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert all(p.grad is None for p in wrapped.parameters())


def test_clean_output_charge_determinism_and_modes():
    model = small_net(1).train()
    wrapped = NoGradCounter(model)
    x = mid_images(2, 3, 16)
    atk = Square(wrapped, eps=4 / 256, max_queries=40, reference="clean_output")
    a = atk(x, seeds=[1, 2])
    assert atk.last_queries.tolist() == [40, 40] and wrapped.rows == 80
    assert all(m.training for m in model.modules())
    assert torch.equal(a, atk(x, seeds=[1, 2]))
    alone = atk(x[:1], seeds=[1])
    torch.testing.assert_close(alone[0], a[0], rtol=0, atol=1e-6)


def test_registry_and_validation():
    assert isinstance(create_attack("square", nn.Identity(), eps=2 / 256, max_queries=10), Square)
    with pytest.raises(ValueError, match="p_init"):
        Square(nn.Identity(), p_init=1.5)
    with pytest.raises(ValueError, match="max_queries"):
        Square(nn.Identity(), max_queries=-1)
    with pytest.raises(ValueError, match="2 x 2"):
        Square(nn.Identity(), max_queries=3)(torch.rand(1, 3, 1, 8), torch.rand(1, 3, 1, 8))
