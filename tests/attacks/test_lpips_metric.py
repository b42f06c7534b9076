import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from udcshield.attacks import LPIPS


def images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def metric() -> LPIPS:
    return LPIPS.random_for_tests(seed=0)


def test_zero_symmetric_positive(metric):
    a, b = images(3, 1), images(3, 2)
    d = metric(a, b)
    assert d.shape == (3,) and bool((d > 0).all())
    torch.testing.assert_close(metric(b, a), d)
    assert torch.equal(metric(a, a), torch.zeros(3))
    # farther images are farther: a slightly perturbed copy is closer than an unrelated image
    near = (a + 0.01 * (images(3, 3) - 0.5)).clamp(0, 1)
    assert bool((metric(a, near) < d).all())
    assert not any(p.requires_grad for p in metric.parameters()) and not metric.training


def test_matches_direct_computation(metric):
    a, b = images(2, 4, 40), images(2, 5, 40)
    sd = metric.state_dict()
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    specs = [("net.slice1.0", 4, 2, False), ("net.slice2.3", 1, 2, True), ("net.slice3.6", 1, 1, True),
             ("net.slice4.8", 1, 1, False), ("net.slice5.10", 1, 1, False)]

    def feats(x):
        h = (2 * x - 1 - shift) / scale
        out = []
        for name, stride, pad, pool in specs:
            if pool:
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(F.conv2d(h, sd[f"{name}.weight"], sd[f"{name}.bias"], stride=stride, padding=pad))
            out.append(h)
        return out

    expected = torch.zeros(2)
    for i, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = sd[f"lin{i}.model.1.weight"]
        expected += ((na - nb).pow(2) * w.view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    torch.testing.assert_close(metric(a, b), expected, rtol=1e-4, atol=1e-7)


def test_gradient_finite_even_at_identical_images(metric):
    a = images(1, 6).requires_grad_(True)
    (g,) = torch.autograd.grad(metric(a, a.detach()).sum(), a)
    assert bool(torch.isfinite(g).all()) and float(g.abs().max()) == 0.0


def test_file_round_trip(metric, tmp_path):
    path = tmp_path / "lpips_alex.safetensors"
    state = {k: v.contiguous() for k, v in metric.state_dict().items()}
    state["scaling_layer.shift"] = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    state["scaling_layer.scale"] = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    save_file(state, str(path))
    loaded = LPIPS.from_file(path)
    a, b = images(2, 7), images(2, 8)
    assert torch.equal(loaded(a, b), metric(a, b))
    assert loaded.source == str(path)


def test_missing_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nowhere" / "alex.safetensors"
    with pytest.raises(FileNotFoundError, match="no weights are downloaded") as info:
        LPIPS.from_file(path)
    assert str(path) in str(info.value)


def test_bad_files_and_inputs(metric, tmp_path):
    pickled = tmp_path / "alex.pth"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="safetensors"):
        LPIPS.from_file(pickled)
    state = {k: v.contiguous() for k, v in metric.state_dict().items()}
    partial = dict(state)
    del partial["lin2.model.1.weight"]
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(ValueError, match="lin2.model.1.weight"):
        LPIPS.from_file(tmp_path / "partial.safetensors")
    negative = dict(state)
    negative["lin0.model.1.weight"] = -negative["lin0.model.1.weight"]
    with pytest.raises(ValueError, match="negative"):
        LPIPS(negative)
    wrong = dict(state)
    wrong["net.slice1.0.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(ValueError, match="net.slice1.0.weight"):
        LPIPS(wrong)
    with pytest.raises(ValueError, match="at least 31"):
        metric(images(1, 1, 16), images(1, 2, 16))
    with pytest.raises(ValueError, match="differ in shape"):
        metric(images(1, 1, 32), images(2, 2, 32))
