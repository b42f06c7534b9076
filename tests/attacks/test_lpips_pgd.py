import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from udcshield.attacks import LPIPS, LPIPSPGD, create_attack, distortion

from tests.tiny import mid_images, small_net


@pytest.fixture(scope="module")
def metric() -> LPIPS:
    return LPIPS.random_for_tests(seed=1)


def test_increases_lpips_within_budget(metric):
    model = small_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lp_before = {k: v.clone() for k, v in metric.state_dict().items()}
    x, t = mid_images(2, 1, 32), mid_images(2, 2, 32)
    atk = LPIPSPGD(model, metric, eps=8 / 256, steps=5)
    adv = atk(x, t, seeds=[1, 2])
    assert float((adv - x).abs().max()) <= 8 / 256
    assert atk.last_cost["iterations"] == 5 and atk.last_cost["forward_backward"] == 5
    model.eval()
    with torch.no_grad():
        assert bool((metric(model(adv), t) > metric(model(x), t)).all())
    assert torch.equal(adv, LPIPSPGD(model, metric, eps=8 / 256, steps=5)(x, t, seeds=[1, 2]))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    for k, v in metric.state_dict().items():
        assert torch.equal(v, lp_before[k])
    assert all(p.grad is None for p in model.parameters())


def test_pixel_term_and_clean_output(metric):
    model = small_net(1)
    x, t = mid_images(2, 3, 32), mid_images(2, 4, 32)
    mixed = LPIPSPGD(model, metric, eps=4 / 256, steps=3, pixel_weight=1e4)(x, t, seeds=[5, 6])
    with torch.no_grad():
        assert bool((distortion(model(mixed), t) > distortion(model(x), t)).all())
    with pytest.warns(UserWarning, match="random_start"):
        atk = LPIPSPGD(model, metric, eps=4 / 256, steps=2, reference="clean_output", random_start=False)
    adv = atk(x, seeds=[1, 2])
    with torch.no_grad():
        assert bool((metric(model(adv), model(x)) > 0).all())


def test_weights_path_and_registry(metric, tmp_path):
    path = tmp_path / "alex.safetensors"
    save_file({k: v.contiguous() for k, v in metric.state_dict().items()}, str(path))
    atk = create_attack("lpips_pgd", nn.Identity(), lpips=str(path), eps=2 / 256, steps=1)
    assert isinstance(atk, LPIPSPGD) and isinstance(atk.lpips, LPIPS)
    with pytest.raises(FileNotFoundError, match="no weights are downloaded"):
        LPIPSPGD(nn.Identity(), lpips=tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="lpips"):
        create_attack("lpips_pgd", nn.Identity())
    with pytest.raises(ValueError, match="pixel_weight"):
        LPIPSPGD(nn.Identity(), metric, pixel_weight=-1.0)
