import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from udcshield.attacks import apply_universal, distortion, universal_perturbation

from tests.tiny import small_net


def images(n: int, seed: int, size: int = 16) -> torch.Tensor:
    return 0.2 + 0.6 * torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def mean_distortion(model: nn.Module, x: torch.Tensor, t: torch.Tensor, delta: torch.Tensor) -> float:
    with torch.no_grad():
        return float(distortion(model(apply_universal(x, delta)), t).mean())


def test_beats_random_perturbation_of_same_norm_on_held_out_images():
    model = small_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    eps = 8 / 256
    x_train, x_test = images(32, 1), images(16, 2)
    t_train, t_test = x_train.clone(), x_test.clone()  # restoration target: the sharp image itself
    delta = universal_perturbation(model, (x_train, t_train), eps, steps=40, lr=eps / 8,
                                   generator=torch.Generator().manual_seed(0), batch_size=8)
    assert delta.shape == (1, 3, 16, 16) and delta.dtype == torch.float32
    assert float(delta.abs().max()) <= eps
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        rand = torch.where(torch.rand(delta.shape, generator=g) < 0.5, -eps, eps)
        rand = rand * (delta.norm() / rand.norm())
        assert float(rand.abs().max()) <= eps + 1e-7
        model.eval()
        assert mean_distortion(model, x_test, t_test, delta) > mean_distortion(model, x_test, t_test, rand)
    assert mean_distortion(model, x_test, t_test, delta) > mean_distortion(model, x_test, t_test,
                                                                          torch.zeros_like(delta))
    model.train()
    universal_perturbation(model, (x_train, t_train), eps, 2, eps / 4, torch.Generator().manual_seed(0))
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())


def test_deterministic_and_accepts_loaders():
    model = small_net(1)
    x = images(8, 3)
    args = (4 / 256, 5, 1 / 256)
    a = universal_perturbation(model, (x, None), *args, torch.Generator().manual_seed(1),
                               reference="clean_output", batch_size=4)
    b = universal_perturbation(model, (x, None), *args, torch.Generator().manual_seed(1),
                               reference="clean_output", batch_size=4)
    assert torch.equal(a, b)
    loader = DataLoader(TensorDataset(x, x), batch_size=4, shuffle=False)
    c = universal_perturbation(model, loader, *args, torch.Generator().manual_seed(1))
    assert c.shape == (1, 3, 16, 16) and float(c.abs().max()) <= 4 / 256


def test_apply_universal_tiles_crops_and_respects_budget():
    eps = 8 / 255
    delta = torch.tensor([[-eps, eps], [eps, -eps]]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    x = torch.rand(2, 3, 5, 3, generator=torch.Generator().manual_seed(4))
    x[0, 0, 0, 0], x[1, 2, 4, 2] = 1.0, 0.0
    out = apply_universal(x, delta)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    bound = float(delta.abs().max())  # eps as stored in float32
    assert bool(((out.double() - x.double()).abs() <= bound).all())
    tiled = delta.repeat(1, 1, 3, 2)[..., :5, :3]
    torch.testing.assert_close(out, (x + tiled).clamp(0, 1), rtol=0, atol=1e-7)
    small = apply_universal(images(1, 5, 2), torch.zeros(1, 3, 4, 4))  # delta larger than x: cropped
    assert small.shape == (1, 3, 2, 2)
    with pytest.raises(ValueError, match="delta"):
        apply_universal(x, torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="x"):
        apply_universal(x + 2, delta)


def test_validation():
    model = small_net()
    x = images(2, 6)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="eps"):
        universal_perturbation(model, (x, x), 2.0, 1, 0.1, gen)
    with pytest.raises(ValueError, match="steps"):
        universal_perturbation(model, (x, x), 0.1, 0, 0.1, gen)
    with pytest.raises(ValueError, match="lr"):
        universal_perturbation(model, (x, x), 0.1, 1, 0.0, gen)
    with pytest.raises(ValueError, match="generator"):
        universal_perturbation(model, (x, x), 0.1, 1, 0.1, 7)
    with pytest.raises(ValueError, match="targets"):
        universal_perturbation(model, (x, None), 0.1, 1, 0.1, gen)
    with pytest.raises(ValueError, match="no batches"):
        universal_perturbation(model, [], 0.1, 1, 0.1, gen)
