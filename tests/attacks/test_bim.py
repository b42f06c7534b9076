import pytest
import torch
from torch import nn

from udcshield.attacks import BIM, FGSM, PGD, create_attack, distortion
from udcshield.attacks.bim import kurakin_steps

from tests.tiny import mid_images, small_net


@pytest.mark.parametrize("eps", [1 / 256, 8 / 256])
def test_one_step_equals_fgsm(eps):
    model = small_net()
    x, t = mid_images(3, 1), mid_images(3, 2)
    bim = BIM(model, eps=eps, steps=1)
    assert bim.alpha == eps
    assert torch.equal(bim(x, t), FGSM(model, eps=eps)(x, t))
    assert bim.last_cost["iterations"] == 1 and bim.last_cost["forward_backward"] == 1


def test_equals_pgd_without_random_start():
    model = small_net(1)
    x, t = mid_images(2, 3), mid_images(2, 4)
    bim = BIM(model, eps=4 / 256, steps=5, alpha=1 / 256)
    pgd = PGD(model, eps=4 / 256, steps=5, alpha=1 / 256, random_start=False)
    assert torch.equal(bim(x, t), pgd(x, t))


def test_kurakin_defaults():
    assert kurakin_steps(1 / 256) == 2 and kurakin_steps(8 / 256) == 10 and kurakin_steps(0.0) == 1
    atk = BIM(nn.Identity(), eps=8 / 256)
    assert atk.steps == 10 and atk.alpha == 1 / 256
    assert BIM(nn.Identity(), eps=8 / 256, steps=4).alpha == 2 / 256


def test_budget_increase_and_model_untouched():
    model = small_net(2)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, t = mid_images(4, 5, 12, 12), mid_images(4, 6, 12, 12)
    x[0, 0, 0, 0], x[1, 1, 1, 1] = 0.0, 1.0
    adv = BIM(model, eps=4 / 256, steps=6)(x, t)
    assert float((adv - x).abs().max()) <= 4 / 256 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert all(m.training for m in model.modules())
    model.eval()
    with torch.no_grad():
        assert bool((distortion(model(adv), t) > distortion(model(x), t)).all())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())


def test_clean_output_random_start_and_determinism():
    with pytest.warns(UserWarning, match="random_start"):
        atk = BIM(nn.Identity(), eps=2 / 256, steps=3, reference="clean_output")
    x = mid_images(2, 7)
    a = atk(x, seeds=[1, 2])
    assert torch.equal(a, atk(x, seeds=[1, 2]))
    torch.testing.assert_close(distortion(a, x), torch.full((2,), (2 / 256) ** 2), rtol=1e-5, atol=0)


def test_registry_and_validation():
    assert isinstance(create_attack("bim", nn.Identity(), eps=1 / 256, steps=2), BIM)
    with pytest.raises(ValueError, match="steps"):
        BIM(nn.Identity(), steps=0)
    with pytest.raises(ValueError, match="alpha"):
        BIM(nn.Identity(), alpha=-1.0)
    with pytest.raises(ValueError, match="eps"):
        BIM(nn.Identity(), eps=2.0)
