import math

import pytest
import torch
from torch import nn

from udcshield.attacks import CW, create_attack, distortion
from udcshield.attacks.cw import output_psnr

from tests.tiny import mid_images, small_net


def test_larger_c_gives_larger_distortion_and_norm():
    model = small_net()
    x, t = mid_images(3, 1, 12), mid_images(3, 2, 12)
    dists, l2s = [], []
    for c in (1e3, 1e4, 1e5):
        atk = CW(model, c=c, binary_search_steps=1, steps=30, tau_db=100.0)  # never "successful"
        adv = atk(x, t)
        assert not bool(atk.last_success.any())
        assert torch.equal(atk.last_c, torch.full((3,), c, dtype=torch.float64))
        with torch.no_grad():
            dists.append(distortion(model(adv), t))
        l2s.append(atk.last_l2)
        torch.testing.assert_close(atk.last_l2, (adv.double() - x.double()).flatten(1).norm(dim=1))
    for lo, hi in zip(dists, dists[1:]):
        assert bool((hi > lo).all())
    for lo, hi in zip(l2s, l2s[1:]):
        assert bool((hi > lo).all())


def test_binary_search_finds_smallest_successful_perturbation():
    # Identity restorer, ground truth offset by a = 0.02: the PSNR drops by tau dB exactly when the
    # perturbation moves every pixel away from the truth by s = a (10**(tau/20) - 1), so the smallest
    # successful L2 norm is s * sqrt(C H W).
    x = mid_images(3, 3, 12)
    t = x + 0.02
    atk = CW(nn.Identity(), steps=30, tau_db=3.0)
    adv = atk(x, t)
    assert bool(atk.last_success.all()) and atk.last_cost["successes"] == 3
    drop = output_psnr(x, t) - output_psnr(adv, t)
    assert bool((drop >= 3.0).all())
    torch.testing.assert_close(atk.last_psnr_drop, drop)
    optimum = 0.02 * (10 ** (3.0 / 20) - 1) * math.sqrt(x[0].numel())
    assert bool((atk.last_l2 >= optimum - 1e-4).all()) and bool((atk.last_l2 <= 1.02 * optimum).all())
    assert atk.last_cost["iterations"] == 9 * 30 and atk.last_cost["forward_backward"] == 270
    assert atk.last_cost["forward_only"] == 1
    # binary search narrowed c well below the largest constant it tried
    assert bool((atk.last_c < 1e4).all()) and bool((atk.last_c > 1e-2).all())
    # a tighter requirement needs a larger perturbation
    stronger = CW(nn.Identity(), steps=30, tau_db=6.0)
    stronger(x, t)
    assert bool((stronger.last_l2 > atk.last_l2).all())


def test_in_box_deterministic_and_model_untouched():
    model = small_net(1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, t = mid_images(2, 4, 12), mid_images(2, 5, 12)
    x[0, 0, :3] = 0.0
    x[1, 1, :3] = 1.0
    atk = CW(model, binary_search_steps=2, steps=5)
    adv = atk(x, t, seeds=[1, 2])
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert torch.equal(adv, atk(x, t, seeds=[1, 2]))
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())


def test_clean_output_reference_uses_cap_and_random_start():
    with pytest.warns(UserWarning, match="random_start"):
        atk = CW(nn.Identity(), reference="clean_output", c=1e4, steps=10, binary_search_steps=2,
                 tau_db=15.0)
    x = mid_images(2, 6, 12)
    adv = atk(x, seeds=[1, 2])
    assert bool(atk.last_success.all())
    assert bool((output_psnr(adv, x) <= 60.0 - 15.0).all())
    assert not torch.equal(adv, atk(x, seeds=[3, 2]))


def test_registry_and_validation():
    assert isinstance(create_attack("cw", nn.Identity(), c=0.1, steps=3), CW)
    assert CW(nn.Identity()).binary_search_steps == 9 and CW(nn.Identity()).confidence == 0.0
    for kw, name in [({"c": 0.0}, "c"), ({"binary_search_steps": 0}, "binary_search_steps"),
                     ({"tau_db": -1.0}, "tau_db"), ({"lr": 0}, "lr"), ({"confidence": -1.0}, "confidence"),
                     ({"objective": "targeted_mse"}, "objective")]:
        with pytest.raises(ValueError, match=name):
            CW(nn.Identity(), **kw)


def test_cw_l2_is_cw_unclipped_and_the_stage_reports_its_realised_l2():
    """``cw_l2`` runs C&W unbounded (budget 256, nothing projected) and records its realised L2 norm;
    ``cw`` at 1/256 is the same search clipped to the L-inf ball, so it distorts less."""
    import numpy as np

    from tests.shard_workspace import sharded_params
    from udcshield.attacks import CWL2
    from udcshield.config import AttackSpec, params_from_dict
    from udcshield.pipeline.attack import craft

    model, x = nn.Identity(), mid_images(2, 3, 12)
    t = x + 0.02
    kwargs = {"steps": 30, "tau_db": 3.0, "binary_search_steps": 4}
    ref = CW(model, **kwargs)(x, t)
    params = params_from_dict(sharded_params())
    ids = ["a", "b"]
    adv, attrs = craft(model, AttackSpec("cw_l2", (256,), kwargs), 256, x, t, ids, params, "m/base", torch.device("cpu"))
    torch.testing.assert_close(torch.from_numpy(adv), ref, rtol=0, atol=0)  # the same search, not projected
    l2 = (torch.from_numpy(adv).double() - x.double()).flatten(1).norm(dim=1)
    assert attrs["norm"] == "l2" and attrs["budget"] == 256 and attrs["eps"] == math.sqrt(3 * 12 * 12)
    assert attrs["l2_mean"] == pytest.approx(float(l2.mean()), rel=1e-6) and attrs["linf_max"] > 1 / 256
    clipped, c_attrs = craft(model, AttackSpec("cw", (1,), kwargs), 1, x, t, ids, params, "m/base",
                             torch.device("cpu"))
    assert c_attrs["norm"] == "linf" and c_attrs["linf_max"] <= 1 / 256
    with torch.no_grad():
        assert bool((distortion(torch.from_numpy(clipped), t) < distortion(torch.from_numpy(adv), t)).all())
    assert issubclass(CWL2, CW) and np.isfinite(attrs["l2_mean"])
