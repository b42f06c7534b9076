"""AdaptivePGD: PGD + EOT through the purifier (Athalye et al. 2018; Madry et al. 2018), explicit noise draws."""

import copy

import pytest
import torch

from udcshield.attacks import PGD, distortion
from udcshield.defenses import DefendedRestorer, NoiseDraw, default_generator_factory
from udcshield.defenses.adaptive import AdaptivePGD

from tests import tiny
from tests.tiny import FreshDraws, TinyRestorer, images


def defended(**kwargs) -> DefendedRestorer:
    """The tiny defended restorer at t* = 4; its restorer has a (p = 0) dropout, so train/eval mode shows."""
    kwargs.setdefault("t_star", 4)
    return tiny.defended(TinyRestorer(dropout=0.0), **kwargs)


@pytest.mark.parametrize("gradient", ["full", "bpda"])
def test_one_eot_sample_equals_plain_pgd_on_the_defended_model(gradient):
    x, y, seeds = images(), images(seed=1), [7, 8]
    model = defended(gradient=gradient)
    adaptive = AdaptivePGD(model, eps=8 / 256, steps=3, eot_samples=1)(x, y, seeds=seeds)
    plain = PGD(FreshDraws(model, AdaptivePGD.noise_seeds(seeds)), eps=8 / 256, steps=3)(x, y, seeds=seeds)
    torch.testing.assert_close(adaptive, plain, rtol=0, atol=0)


@pytest.mark.parametrize("eps, size", [(1 / 256, (16, 16)), (8 / 256, (13, 9))])
def test_budget_and_range(eps, size):
    x, y = images(2, *size), images(2, *size, seed=1)
    adv = AdaptivePGD(defended(gradient="bpda"), eps=eps, steps=2, eot_samples=2)(x, y, seeds=[1, 2])
    assert adv.shape == x.shape
    assert (adv - x).abs().max() <= eps
    assert adv.min() >= 0 and adv.max() <= 1


def test_attack_increases_expected_defended_distortion():
    x, y = images(), images(seed=1)
    model = defended(gradient="full", checkpoint=True)
    adv = AdaptivePGD(model, eps=16 / 256, steps=4, eot_samples=2)(x, y, seeds=[1, 2])

    def expected_distortion(inp):
        with torch.no_grad():
            return torch.stack([distortion(model(inp, NoiseDraw([100, 101], k)), y) for k in range(4)]).mean(0)

    assert (expected_distortion(adv) > expected_distortion(x)).all()


def test_reproducible_cost_and_model_untouched():
    x, y = images(), images(seed=1)
    model = defended(gradient="bpda", num_steps=2)
    model.train()
    before = copy.deepcopy(model.state_dict())
    attributes = {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(model).items()}
    modes = [m.training for m in model.modules()]
    atk = AdaptivePGD(model, eps=4 / 256, steps=3, eot_samples=2)
    a = atk(x, y, seeds=[1, 2])
    model(x)  # using the model in between changes nothing: it has no noise state
    b = atk(x, y, seeds=[1, 2])
    c = atk(x, y, seeds=[1, 3])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a[1] - c[1]).abs().max() > 0
    assert vars(model) == attributes
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    cost = atk.last_cost
    assert cost["iterations"] == 3 and cost["forward_backward"] == 6 and cost["eot_samples"] == 2
    assert cost["purifier_evals"] == 6 * model.evaluations_per_forward == 12


def test_kth_forward_pass_gets_draw_k():
    x, y, seeds = images(), images(seed=1), [7, 8]
    seen = []

    def factory(noise_seeds, draw):
        seen.append((tuple(noise_seeds), draw))
        return default_generator_factory(noise_seeds, draw)

    model = defended(gradient="bpda", num_steps=2, generator_factory=factory)
    atk = AdaptivePGD(model, eps=4 / 256, steps=3, eot_samples=2)
    atk(x, y, seeds=seeds)
    assert seen == [(tuple(AdaptivePGD.noise_seeds(seeds)), k) for k in range(6)]
    with pytest.raises(RuntimeError, match="inside a call"):
        atk.get_logits(x)


def test_clean_output_reference_and_restarts_score_with_eot():
    x = images()
    model = defended(gradient="bpda", num_steps=2)
    atk = AdaptivePGD(model, eps=4 / 256, steps=2, eot_samples=2, restarts=2, reference="clean_output")
    adv = atk(x, seeds=[1, 2])
    assert (adv - x).abs().max() <= 4 / 256
    # 1 reference forward + 2 restarts x (2 steps x 2 samples + 2 scoring samples)
    assert atk.last_cost["forward_only"] == 1 + 2 * 2
    assert atk.last_cost["purifier_evals"] == (1 + 2 * (4 + 2)) * 2


def test_rejects_non_adaptive_setups():
    with pytest.raises(ValueError, match="gradient='none'"):
        AdaptivePGD(defended(gradient="none"), eps=1 / 256)
    with pytest.raises(ValueError, match="DefendedRestorer"):
        AdaptivePGD(TinyRestorer(dropout=0.0), eps=1 / 256)
    with pytest.raises(ValueError, match="eot_samples"):
        AdaptivePGD(defended(), eps=1 / 256, eot_samples=0)
    model = defended()
    atk = AdaptivePGD(model, eps=1 / 256, steps=1)
    model.gradient = "none"
    with pytest.raises(ValueError, match="'none'"):
        atk(images(), images(seed=1))
    with pytest.raises(ValueError, match="eps"):
        AdaptivePGD(defended(), eps=2.0)
