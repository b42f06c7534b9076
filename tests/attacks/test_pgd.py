import pytest
import torch
from torch import nn

from udcshield.attacks import PGD, distortion

from tests.tiny import mid_images


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1), nn.Sigmoid()
    ).eval()


@pytest.mark.parametrize("level", [1, 2, 4, 8])
def test_identity_clean_output_reaches_eps_squared(level):
    eps = level / 256
    x = mid_images(3, seed=level)
    atk = PGD(nn.Identity(), eps=eps, reference="clean_output")
    adv = atk(x, seeds=[10, 11, 12])
    d = distortion(adv, x)
    assert torch.allclose(d, torch.full_like(d, eps**2), rtol=1e-5, atol=0)
    assert torch.allclose((adv - x).abs(), torch.full_like(x, eps), rtol=1e-5, atol=0)
    assert atk.last_cost["iterations"] == 20 and atk.last_cost["forward_backward"] == 20
    assert atk.last_cost["seconds"] >= 0


def test_distortion_non_decreasing_in_eps():
    model = small_net()
    x, t = mid_images(4, 1, 16, 16), mid_images(4, 2, 16, 16)
    seeds = [1, 2, 3, 4]
    values = []
    for level in (1, 2, 4, 8):
        adv = PGD(model, eps=level / 256, steps=10)(x, t, seeds=seeds)
        with torch.no_grad():
            values.append(float(distortion(model(adv), t).mean()))
    with torch.no_grad():
        clean = float(distortion(model(x), t).mean())
    assert clean <= values[0]
    assert all(a <= b for a, b in zip(values, values[1:])), values


def test_restarts_keep_best_per_image():
    model = small_net(1)
    x, t = mid_images(3, 5), mid_images(3, 6)
    atk = PGD(model, eps=4 / 256, steps=3, restarts=3)
    adv = atk(x, t, seeds=[7, 8, 9])
    assert atk.last_cost["iterations"] == 9 and atk.last_cost["forward_only"] == 3
    single = PGD(model, eps=4 / 256, steps=3)(x, t, seeds=[7, 8, 9])  # = the first restart
    with torch.no_grad():
        best = distortion(model(adv), t)
        first = distortion(model(single), t)
    assert bool((best >= first - 1e-7).all())


def test_determinism_and_batch_independence():
    model = small_net(2)
    x, t = mid_images(3, 3), mid_images(3, 4)
    atk = PGD(model, eps=8 / 256, steps=5)
    adv_batch = atk(x, t, seeds=[100, 200, 300])
    again = atk(x, t, seeds=[100, 200, 300])
    alone = atk(x[1:2], t[1:2], seeds=[200])
    reordered = atk(x.flip(0), t.flip(0), seeds=[300, 200, 100])
    assert torch.equal(adv_batch, again)
    torch.testing.assert_close(alone[0], adv_batch[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(reordered.flip(0), adv_batch, rtol=0, atol=1e-6)
    other = atk(x, t, seeds=[101, 200, 300])
    assert not torch.equal(other[0], adv_batch[0])


def test_no_global_rng_use():
    model = small_net(3)
    x, t = mid_images(2, 3), mid_images(2, 4)
    state = torch.get_rng_state()
    PGD(model, eps=2 / 256, steps=2)(x, t, seeds=[1, 2])
    PGD(model, eps=2 / 256, steps=2)(x, t)  # default seeds derive from the attack's seed
    assert torch.equal(state, torch.get_rng_state())


def test_parameters_untouched_and_modes_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5),
                          nn.Conv2d(4, 3, 3, padding=1))
    model.train()
    model[1].eval()  # mixed modes must come back exactly
    model[3].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    req = [p.requires_grad for p in model.parameters()]
    x, t = mid_images(2, 1), mid_images(2, 2)
    for training in (False, True):
        atk = PGD(model, eps=4 / 256, steps=3)
        atk.set_model_training_mode(model_training=training)
        atk(x, t, seeds=[1, 2])
        assert [m.training for m in model.modules()] == flags
    model.eval()
    atk = PGD(model, eps=4 / 256, steps=2)
    atk.set_model_training_mode(model_training=True)
    atk(x, t, seeds=[1, 2])
    assert not any(m.training for m in model.modules())
    model.train()
    with pytest.raises(ValueError):
        PGD(model, eps=4 / 256)(x, t[:, :, :4], seeds=[1, 2])
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert [p.requires_grad for p in model.parameters()] == req
    assert all(p.grad is None for p in model.parameters())


def test_works_under_no_grad():
    model = small_net(4)
    x, t = mid_images(1, 1), mid_images(1, 2)
    with torch.no_grad():
        adv = PGD(model, eps=8 / 256, steps=2)(x, t, seeds=[0])
    assert not torch.equal(adv, x)


def test_validation_errors():
    model = small_net(5)
    x, t = mid_images(2, 1), mid_images(2, 2)
    with pytest.raises(ValueError, match="eps"):
        PGD(model, eps=-1 / 256)
    with pytest.raises(ValueError, match="objective"):
        PGD(model, objective="ce")
    with pytest.raises(ValueError, match="reference"):
        PGD(model, reference="label")
    with pytest.raises(ValueError, match="steps"):
        PGD(model, steps=0)
    with pytest.raises(ValueError, match="restarts"):
        PGD(model, restarts=2, random_start=False)
    atk = PGD(model, eps=2 / 256, steps=1)
    with pytest.raises(ValueError, match="inputs"):
        atk(x[0], t)
    with pytest.raises(ValueError, match="inputs"):
        atk(x * float("nan"), t)
    with pytest.raises(ValueError, match="inputs"):
        atk(x + 1, t)
    with pytest.raises(ValueError, match="targets"):
        atk(x)
    with pytest.raises(ValueError, match="targets"):
        atk(x, t - 1)
    with pytest.raises(ValueError, match="seeds"):
        atk(x, t, seeds=[1])
    with pytest.raises(ValueError, match="seeds"):
        atk(x, t, seeds=[1, -2])
    with pytest.warns(UserWarning, match="random_start"):
        forced = PGD(model, reference="clean_output", random_start=False)
    assert forced.random_start
