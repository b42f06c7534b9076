"""DefendedRestorer (purify → restore as one module; DESIGN.md §5): gradient modes, noise policy, errors.

Adaptive attacks need gradients that reach the purifier input (Athalye et al. 2018; Nie et al. 2022).
"""

import copy

import pytest
import torch

from udcshield.defenses import (
    BlockedGradientError,
    DefendedRestorer,
    default_generator_factory,
    guided_purify,
    purify_ddim,
)

from tests.tiny import TinyRestorer, defended, gen, images, tiny_purifier


def input_grad(model, x, generator_seeds=(1, 2), target=None):
    a = x.clone().requires_grad_(True)
    out = model(a, generator=[gen(s) for s in generator_seeds])
    target = torch.zeros_like(out) if target is None else target
    (g,) = torch.autograd.grad(((out - target) ** 2).sum(), a)
    return g


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_full_gradient_reaches_input_and_checkpoint_matches(sampler):
    x = images()
    plain = defended(sampler=sampler, gradient="full", checkpoint=False)
    ckpt = defended(sampler=sampler, gradient="full", checkpoint=True)
    g_plain, g_ckpt = input_grad(plain, x), input_grad(ckpt, x)
    assert torch.isfinite(g_plain).all() and g_plain.abs().max() > 0
    torch.testing.assert_close(g_ckpt, g_plain, rtol=1e-5, atol=1e-5)


def test_full_gradient_is_not_the_bpda_gradient():
    """The full gradient includes the purifier's Jacobian, so it differs from BPDA's identity."""
    x = images()
    g_full = input_grad(defended(gradient="full"), x)
    g_bpda = input_grad(defended(gradient="bpda"), x)
    assert (g_full - g_bpda).abs().max() > 1e-4


def test_checkpointed_backward_through_ten_step_chain():
    model = defended(t_star=10, gradient="full", checkpoint=True)
    assert model.evaluations_per_forward == 10
    g = input_grad(model, images(1, 24, 24), generator_seeds=(3,))
    assert torch.isfinite(g).all() and g.abs().max() > 0


def test_bpda_gradient_equals_restorer_gradient_at_purified_point():
    x, target = images(), images(seed=9)
    model = defended(gradient="bpda", num_steps=3)
    purified = model.purifier.purify(x, t_star=5, num_steps=3, generator=[gen(1), gen(2)]).requires_grad_(True)
    (expected,) = torch.autograd.grad(((model.restorer(purified) - target) ** 2).sum(), purified)
    got = input_grad(model, x, target=target)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_modes_share_the_forward_value():
    x = images()
    outs = [defended(gradient=m)(x, generator=[gen(1), gen(2)]) for m in ("full", "bpda", "none")]
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    torch.testing.assert_close(outs[2], outs[0], rtol=0, atol=0)


def test_none_mode_raises_on_input_gradient_but_trains_restorer():
    x = images()
    model = defended(gradient="none")
    with pytest.raises(BlockedGradientError, match="gradient='none'"):
        input_grad(model, x)
    out = model(x)  # x does not require grad: the restorer's parameters still get gradients
    out.sum().backward()
    assert model.restorer.conv1.weight.grad is not None
    assert all(p.grad is None for p in model.purifier.parameters())


def test_gradient_mode_switch_and_validation():
    model = defended(gradient="none")
    model.gradient = "bpda"
    assert model.gradient == "bpda"
    with pytest.raises(ValueError, match="gradient"):
        model.gradient = "exact"


def test_input_gradient_leaves_parameters_untouched():
    x = images()
    model = defended(gradient="full", checkpoint=True)
    before = copy.deepcopy(model.state_dict())
    input_grad(model, x)
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_noise_policy_fresh_but_reproducible():
    x = images()
    model = defended(gradient="none")
    model.set_seeds([11, 12])
    a, b = model(x), model(x)
    assert model.draws == 2
    assert (a - b).abs().max() > 1e-3  # each forward draws fresh noise (EOT needs this)
    model.set_seeds([11, 12])
    torch.testing.assert_close(model(x), a, rtol=0, atol=0)
    torch.testing.assert_close(model(x), b, rtol=0, atol=0)


def test_noise_policy_matches_default_factory_and_is_per_image():
    x = images(3)
    model = defended(gradient="none")
    model.set_seeds([5, 6, 7], draw=4)
    out = model(x)
    expected = model.restorer(model.purifier.purify(x, t_star=5, generator=default_generator_factory([5, 6, 7], 4)))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    model.set_seeds([6], draw=4)
    torch.testing.assert_close(model(x[1:2]), out[1:2])


def test_explicit_generator_does_not_advance_and_default_seeds_are_positional():
    x = images()
    model = defended(gradient="none", seed=3)
    model(x, generator=gen(0))
    assert model.draws == 0
    first = model(x)
    model.set_seeds(None)
    torch.testing.assert_close(model(x), first, rtol=0, atol=0)
    state = model.noise_state()
    second = model(x)
    model.load_noise_state(state)
    torch.testing.assert_close(model(x), second, rtol=0, atol=0)


def test_custom_generator_factory_and_bad_factory():
    x = images()
    calls = []

    def factory(seeds, draw):
        calls.append((list(seeds), draw))
        return [gen(draw * 100 + i) for i in range(len(seeds))]

    model = defended(gradient="none", generator_factory=factory)
    model.set_seeds([1, 2])
    model(x)
    assert calls == [([1, 2], 0)]
    bad = defended(gradient="none", generator_factory=lambda seeds, draw: [gen(0)])
    with pytest.raises(ValueError, match="generator_factory"):
        bad(x)


def test_seed_count_must_match_batch():
    model = defended(gradient="none")
    model.set_seeds([1, 2, 3])
    with pytest.raises(ValueError, match="3 seeds"):
        model(images(2))
    with pytest.raises(ValueError, match="seeds"):
        model.set_seeds([1, -2])


def test_sampler_and_guidance_dispatch():
    x = images()
    ddim = defended(sampler="ddim", num_steps=3, gradient="none")
    expected = ddim.restorer(purify_ddim(ddim.purifier, x, t_star=5, num_steps=3, generator=gen(4)))
    torch.testing.assert_close(ddim(x, generator=gen(4)), expected, rtol=0, atol=0)
    guided = defended(guidance_scale=20.0, gradient="none")
    expected = guided.restorer(guided_purify(guided.purifier, x, t_star=5, generator=gen(4), guidance_scale=20.0))
    torch.testing.assert_close(guided(x, generator=gen(4)), expected, rtol=0, atol=0)


def test_t_star_zero_is_the_bare_restorer_and_counts_evaluations():
    x = images()
    bare = defended(t_star=0)
    torch.testing.assert_close(bare(x), bare.restorer(x), rtol=0, atol=0)
    assert bare.network_evaluations == 0
    model = defended(t_star=6, num_steps=3, gradient="none")
    model(x)
    model(x)
    assert model.network_evaluations == 6


@pytest.mark.parametrize("kwargs, culprit", [
    ({"gradient": "exact"}, "gradient"),
    ({"sampler": "euler"}, "sampler"),
    ({"t_star": -1}, "t_star"),
    ({"t_star": 101}, "t_star"),
    ({"num_steps": 9}, "num_steps"),
    ({"eta": 1.5}, "eta"),
    ({"guidance_scale": -1.0}, "guidance_scale"),
    ({"reference_noise": "none"}, "reference_noise"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments_name_the_culprit(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        defended(**kwargs)


def test_bad_modules_and_inputs():
    with pytest.raises(ValueError, match="purifier"):
        DefendedRestorer(TinyRestorer(), TinyRestorer(), t_star=3)
    with pytest.raises(ValueError, match="restorer"):
        DefendedRestorer(tiny_purifier(), "not a module", t_star=3)
    with pytest.raises(ValueError, match="input"):
        defended()(torch.rand(3, 16, 16))
