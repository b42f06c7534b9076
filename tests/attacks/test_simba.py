import pytest
import torch
from torch import nn

from udcshield.attacks import SimBA, create_attack, distortion
from udcshield.attacks.simba import dct_basis_vector, dct_matrix, idct2, low_frequency_order

from tests.tiny import NoGradCounter, mid_images, small_net


@pytest.mark.parametrize("basis,step", [("pixel", 4 / 256), ("dct", 0.2)])
def test_increases_distortion_within_query_budget(basis, step):
    wrapped = NoGradCounter(small_net())
    before = {k: v.clone() for k, v in wrapped.state_dict().items()}
    x, t = mid_images(3, 1, 16), mid_images(3, 2, 16)
    atk = SimBA(wrapped, step=step, max_queries=200, basis=basis)
    adv = atk(x, t, seeds=[1, 2, 3])
    with torch.no_grad():
        assert bool((distortion(wrapped(adv), t) > distortion(wrapped(x), t)).all())
    q = atk.last_queries
    assert bool((q <= 200).all()) and int(q.max()) == 200
    assert wrapped.rows - 6 == int(q.sum()) == atk.last_cost["queries"]  # 6 rows: the check above
    assert atk.last_cost["forward_backward"] == 0 and atk.last_cost["queries_max"] == 200
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    for k, v in wrapped.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in wrapped.parameters())


def test_single_image_exact_budget_and_clean_output_charge():
    wrapped = NoGradCounter(small_net(1))
    x = mid_images(1, 3, 16)
    atk = SimBA(wrapped, max_queries=50, reference="clean_output")
    adv = atk(x, seeds=[4])
    assert wrapped.rows == 50 and int(atk.last_queries[0]) == 50  # the reference output counts
    assert not torch.equal(adv, x)


def test_pixel_steps_and_eps_projection():
    model = small_net(2)
    x, t = mid_images(2, 4, 16), mid_images(2, 5, 16)
    adv = SimBA(model, step=4 / 256, max_queries=300)(x, t)
    diff = (adv - x).abs()
    assert float(diff.max()) <= 4 / 256 + 1e-7  # each pixel is tried once: one step at most
    assert int((diff > 1e-6).sum()) > 0
    capped = SimBA(model, step=4 / 256, max_queries=300, eps=2 / 256)(x, t)
    assert float((capped - x).abs().max()) <= 2 / 256


def test_max_iters_and_determinism():
    model = small_net(3)
    x, t = mid_images(2, 6, 16), mid_images(2, 7, 16)
    atk = SimBA(model, max_iters=10, max_queries=1000)
    a = atk(x, t, seeds=[1, 2])
    assert atk.last_cost["iterations"] == 10 and bool((atk.last_queries <= 21).all())
    assert torch.equal(a, atk(x, t, seeds=[1, 2]))
    alone = atk(x[1:], t[1:], seeds=[2])
    torch.testing.assert_close(alone[0], a[1], rtol=0, atol=1e-6)
    assert not torch.equal(a[0], atk(x, t, seeds=[9, 2])[0])


def test_dct_basis_orthonormal_and_is_inverse_dct_of_one_hot():
    shape = (3, 8, 6)
    d = dct_matrix(8)
    torch.testing.assert_close(d @ d.T, torch.eye(8, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(3 * 8 * 6, generator=g)[:12].tolist()
    vecs = torch.stack([dct_basis_vector(i, shape, torch.float64).flatten() for i in idx])
    torch.testing.assert_close(vecs @ vecs.T, torch.eye(12, dtype=torch.float64))
    for i in idx[:4]:
        onehot = torch.zeros(shape, dtype=torch.float64).flatten()
        onehot[i] = 1.0
        torch.testing.assert_close(dct_basis_vector(i, shape, torch.float64), idct2(onehot.view(shape)))
    dc = dct_basis_vector(0, shape, torch.float64)
    torch.testing.assert_close(dc[0], torch.full((8, 6), 1 / (48**0.5), dtype=torch.float64))
    with pytest.raises(ValueError, match="index"):
        dct_basis_vector(3 * 8 * 6, shape)


def test_low_frequency_order():
    shape = (3, 8, 8)
    order = low_frequency_order(shape, freq_dims=2, stride=3, generator=torch.Generator().manual_seed(1))
    assert sorted(order.tolist()) == list(range(3 * 64))
    rest = order % 64
    level = torch.maximum(rest // 8, rest % 8)
    assert bool((level[:12] < 2).all())  # first band: the 2 x 2 lowest frequencies of 3 channels
    band = torch.where(level < 2, 0, 1 + (level - 2) // 3)
    assert bool((band[1:] >= band[:-1]).all())


def test_registry_and_validation():
    assert isinstance(create_attack("simba", nn.Identity(), basis="dct"), SimBA)
    atk = SimBA(nn.Identity())
    assert atk.step == 4 / 256 and atk.max_queries == 1000 and atk.eps == 1.0
    with pytest.raises(ValueError, match="basis"):
        SimBA(nn.Identity(), basis="wavelet")
    with pytest.raises(ValueError, match="max_queries"):
        SimBA(nn.Identity(), max_queries=0)
    with pytest.raises(ValueError, match="step"):
        SimBA(nn.Identity(), step=0.0)
