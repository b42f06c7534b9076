"""AdaptivePGD / AdaptiveAPGD: PGD and APGD + EOT through the purifier (Athalye et al. 2018; Madry et al. 2018;
Croce & Hein 2020), explicit noise draws; AdaptiveSquare: Square on the stochastic defended system."""

import copy

import pytest
import torch

from udcshield.attacks import APGD, PGD, distortion
from udcshield.attacks.square import Square
from udcshield.defenses import DefendedRestorer, NoiseDraw, default_generator_factory
from udcshield.defenses.adaptive import AdaptiveAPGD, AdaptivePGD, AdaptiveSquare, DefendedEOT, noise_seeds

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
    # 3 steps x 2 EOT samples, then the last iterate scored over 2 draws (best iterate)
    assert cost["forward_only"] == 2 and cost["defended_passes"] == 8
    assert cost["purifier_evals"] == 8 * model.evaluations_per_forward == 16


def test_kth_forward_pass_gets_draw_k():
    x, y, seeds = images(), images(seed=1), [7, 8]
    seen = []

    def factory(noise_seeds, draw):
        seen.append((tuple(noise_seeds), draw))
        return default_generator_factory(noise_seeds, draw)

    model = defended(gradient="bpda", num_steps=2, generator_factory=factory)
    atk = AdaptivePGD(model, eps=4 / 256, steps=3, eot_samples=2)
    atk(x, y, seeds=seeds)
    assert seen == [(tuple(AdaptivePGD.noise_seeds(seeds)), k) for k in range(8)]  # 3 x 2 gradients, 2 scores
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


def test_one_noise_scheme_for_every_adaptive_attack():
    assert AdaptivePGD.noise_seeds is AdaptiveAPGD.noise_seeds is DefendedEOT.noise_seeds
    assert AdaptiveSquare.noise_seeds([3, 4]) == noise_seeds([3, 4]) == AdaptivePGD.noise_seeds([3, 4])
    assert issubclass(AdaptivePGD, DefendedEOT) and issubclass(AdaptiveAPGD, DefendedEOT)


# ------------------------------------------------------------------------------------------ AdaptiveAPGD
@pytest.mark.parametrize("gradient", ["full", "bpda"])
def test_apgd_one_eot_sample_equals_plain_apgd_on_the_defended_model(gradient):
    x, y, seeds = images(), images(seed=1), [7, 8]
    model = defended(gradient=gradient, num_steps=2)
    atk = AdaptiveAPGD(model, eps=8 / 256, steps=5, eot_samples=1, restarts=2)
    adaptive = atk(x, y, seeds=seeds)
    ref = APGD(FreshDraws(model, AdaptiveAPGD.noise_seeds(seeds)), eps=8 / 256, steps=5, restarts=2)
    plain = ref(x, y, seeds=seeds)
    torch.testing.assert_close(adaptive, plain, rtol=0, atol=0)
    torch.testing.assert_close(atk.last_history, ref.last_history, rtol=0, atol=0)
    torch.testing.assert_close(atk.last_step_size, ref.last_step_size, rtol=0, atol=0)


@pytest.mark.parametrize("cls, plain", [(AdaptiveAPGD, APGD), (AdaptivePGD, PGD)])
@pytest.mark.parametrize("eot", [1, 2, 4])
def test_on_a_deterministic_defense_eot_changes_nothing(cls, plain, eot):
    """t* = 0: the defended system is the restorer alone; the EOT mean of identical passes is exact for 1, 2, 4."""
    restorer = TinyRestorer(dropout=0.0)
    x, y, seeds = images(), images(seed=1), [3, 4]
    model = tiny.defended(restorer, t_star=0, gradient="full")
    atk = cls(model, eps=8 / 256, steps=4, eot_samples=eot)
    adv = atk(x, y, seeds=seeds)
    torch.testing.assert_close(adv, plain(restorer, eps=8 / 256, steps=4)(x, y, seeds=seeds), rtol=0, atol=0)
    assert atk.last_cost["purifier_evals"] == 0


def test_apgd_cost_history_and_budget():
    x, y = images(2, 13, 9), images(2, 13, 9, seed=1)
    model = defended(gradient="full", num_steps=2, checkpoint=True)
    atk = AdaptiveAPGD(model, eps=4 / 256, steps=3, eot_samples=2, restarts=2)
    adv = atk(x, y, seeds=[1, 2])
    assert (adv - x).abs().max() <= 4 / 256 and adv.min() >= 0 and adv.max() <= 1
    cost = atk.last_cost
    assert cost["forward_backward"] == (3 + 1) * 2 * 2 and cost["defended_passes"] == 16 and cost["eot_samples"] == 2
    assert cost["purifier_evals"] == 16 * model.evaluations_per_forward
    assert atk.last_history.shape == (2, 3 + 1, 2)
    assert (atk.last_history.diff(dim=1) >= 0).all()  # the best EOT-mean objective never decreases


@pytest.mark.parametrize("cls", [AdaptiveAPGD, AdaptivePGD, AdaptiveSquare])
def test_same_seeds_same_arrays_regardless_of_batch_size(cls):
    x, y, seeds = images(3), images(3, seed=1), [5, 6, 7]
    model = defended(gradient="bpda" if cls is not AdaptiveSquare else "none", num_steps=2)
    kwargs = {"max_queries": 6} if cls is AdaptiveSquare else {"steps": 3}
    atk = cls(model, eps=8 / 256, eot_samples=2, **kwargs)
    whole = atk(x, y, seeds=seeds)
    torch.testing.assert_close(atk(x, y, seeds=seeds), whole, rtol=0, atol=0)
    split = torch.cat([atk(x[:2], y[:2], seeds=seeds[:2]), atk(x[2:], y[2:], seeds=seeds[2:])])
    torch.testing.assert_close(split, whole, rtol=0, atol=0)
    other = atk(x, y, seeds=[5, 6, 8])
    torch.testing.assert_close(other[:2], whole[:2], rtol=0, atol=0)
    assert (other[2] - whole[2]).abs().max() > 0


def test_apgd_rejects_non_adaptive_setups():
    with pytest.raises(ValueError, match="blocks gradients"):
        AdaptiveAPGD(defended(gradient="none"), eps=1 / 256)
    with pytest.raises(ValueError, match="DefendedRestorer"):
        AdaptiveAPGD(TinyRestorer(dropout=0.0), eps=1 / 256)
    with pytest.raises(ValueError, match="eot_samples"):
        AdaptiveAPGD(defended(), eps=1 / 256, eot_samples=0)
    with pytest.raises(ValueError, match="restarts"):
        AdaptiveAPGD(defended(), eps=1 / 256, restarts=0)
    atk = AdaptiveAPGD(defended(), eps=1 / 256, steps=1)
    with pytest.raises(RuntimeError, match="inside a call"):
        atk.get_logits(images())


# ------------------------------------------------------------------------------------------ AdaptiveSquare
def test_square_uses_the_same_fixed_draws_for_every_query():
    x, y, seeds = images(), images(seed=1), [7, 8]
    seen = []

    def factory(noise, draw):
        seen.append((tuple(noise), draw))
        return default_generator_factory(noise, draw)

    model = defended(gradient="none", num_steps=2, generator_factory=factory)
    atk = AdaptiveSquare(model, eps=8 / 256, max_queries=5, eot_samples=2)
    adv = atk(x, y, seeds=seeds)
    assert (adv - x).abs().max() <= 8 / 256
    assert seen == [(tuple(noise_seeds(seeds)), j) for _ in range(5) for j in range(2)]
    assert atk.last_queries.tolist() == [5, 5]
    assert atk.last_cost["defended_passes"] == 10 and atk.last_cost["purifier_evals"] == 10 * 2


def test_square_objective_is_the_mean_distortion_over_its_draws():
    x, y, seeds = images(), images(seed=1), [7, 8]
    model = defended(gradient="none", num_steps=2)
    atk = AdaptiveSquare(model, eps=8 / 256, max_queries=1, eot_samples=3)
    atk._noise = tuple(noise_seeds(seeds))
    try:
        stacked = atk.get_logits(x)
    finally:
        atk._noise = None
    assert stacked.shape == (2, 9, 16, 16)
    per_draw = torch.stack([distortion(model(x, NoiseDraw(noise_seeds(seeds), j)), y) for j in range(3)])
    torch.testing.assert_close(distortion(stacked, y.repeat(1, 3, 1, 1)), per_draw.mean(0), rtol=1e-6, atol=0)


@pytest.mark.parametrize("eot", [1, 2])
def test_square_on_a_deterministic_defense_is_square_on_the_restorer(eot):
    restorer = TinyRestorer(dropout=0.0)
    x, y, seeds = images(), images(seed=1), [3, 4]
    adv = AdaptiveSquare(tiny.defended(restorer, t_star=0, gradient="none"), eps=8 / 256, max_queries=8,
                         eot_samples=eot)(x, y, seeds=seeds)
    torch.testing.assert_close(adv, Square(restorer, eps=8 / 256, max_queries=8)(x, y, seeds=seeds), rtol=0, atol=0)


def test_square_checks_and_clean_output_reference():
    with pytest.raises(ValueError, match="DefendedRestorer"):
        AdaptiveSquare(TinyRestorer(dropout=0.0))
    with pytest.raises(ValueError, match="eot_samples"):
        AdaptiveSquare(defended(gradient="none"), eot_samples=0)
    with pytest.raises(ValueError, match="max_queries"):
        AdaptiveSquare(defended(gradient="none"), max_queries=0)
    atk = AdaptiveSquare(defended(gradient="none", num_steps=2), eps=4 / 256, max_queries=4, eot_samples=2,
                         reference="clean_output")
    x = images()
    adv = atk(x, seeds=[1, 2])  # the clean output (one query of 2 draws) is the reference
    assert (adv - x).abs().max() <= 4 / 256
    assert atk.last_queries.tolist() == [4, 4] and atk.last_cost["defended_passes"] == 8
    with pytest.raises(RuntimeError, match="inside a call"):
        atk.get_logits(x)
    atk._noise = (1, 2, 3)
    with pytest.raises(RuntimeError, match="whole batch"):
        atk.get_logits(x)
