import pytest
import torch
from torch import nn

from udcshield.attacks import BIM, MIFGSM, create_attack, distortion

from tests.tiny import mid_images, small_net


@pytest.mark.parametrize("random_start", [False, True])
def test_decay_zero_equals_bim(random_start):
    model = small_net()
    x, t = mid_images(3, 1), mid_images(3, 2)
    kw = dict(eps=4 / 256, steps=7, random_start=random_start)
    mi = MIFGSM(model, decay=0.0, **kw)
    bim = BIM(model, alpha=4 / 256 / 7, **kw)
    assert torch.equal(mi(x, t, seeds=[1, 2, 3]), bim(x, t, seeds=[1, 2, 3]))


def test_momentum_budget_and_gain():
    model = small_net(1)
    x, t = mid_images(4, 3, 12, 12), mid_images(4, 4, 12, 12)
    atk = MIFGSM(model, eps=8 / 256, steps=10)
    adv = atk(x, t)
    assert atk.alpha == pytest.approx(8 / 256 / 10) and atk.decay == 1.0
    assert atk.last_cost["iterations"] == 10 and atk.last_cost["forward_backward"] == 10
    assert float((adv - x).abs().max()) <= 8 / 256
    with torch.no_grad():
        assert bool((distortion(model(adv), t) > distortion(model(x), t)).all())


def test_momentum_accumulates_on_linear_model():
    # For a model whose gradient direction never changes, momentum = same sign: equals BIM.
    conv = nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.diag(torch.tensor([1.0, -2.0, 0.5])).view(3, 3, 1, 1))
    x = mid_images(2, 5)
    t = torch.zeros_like(x)  # output stays positive in ch 0/2, negative in ch 1: fixed gradient signs
    mi = MIFGSM(conv, eps=2 / 256, steps=4, decay=1.0, objective="l1")(x, t)
    bim = BIM(conv, eps=2 / 256, steps=4, alpha=2 / 256 / 4, objective="l1")(x, t)
    assert torch.equal(mi, bim)


def test_model_modes_and_validation():
    model = small_net(2).train()
    MIFGSM(model, eps=2 / 256, steps=2)(mid_images(1, 6), mid_images(1, 7))
    assert all(m.training for m in model.modules())
    assert isinstance(create_attack("mifgsm", model, decay=0.5), MIFGSM)
    with pytest.raises(ValueError, match="decay"):
        MIFGSM(model, decay=-1.0)
    with pytest.raises(ValueError, match="steps"):
        MIFGSM(model, steps=1.5)
