"""DefendedRestorer (purify → restore as one module): gradient modes, explicit noise, errors.

Adaptive attacks need gradients that reach the purifier input (Athalye et al. 2018; Nie et al. 2022),
and EOT needs fresh, reproducible purification noise per forward pass, passed as an argument.
"""

import copy

import pytest
import torch

from udcshield.defenses import (
    BlockedGradientError,
    DefendedRestorer,
    DrawSequence,
    NoiseDraw,
    SamplerConfig,
    default_generator_factory,
    guided_purify,
    purify_ddim,
    reverse_chain,
)
from udcshield.seeding import derive_seed

from tests.tiny import TinyRestorer, defended, gen, images, tiny_purifier


def input_grad(model, x, generator_seeds=(1, 2), target=None):
    a = x.clone().requires_grad_(True)
    out = model(a, [gen(s) for s in generator_seeds])
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
    outs = [defended(gradient=m)(x, [gen(1), gen(2)]) for m in ("full", "bpda", "none")]
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


def test_draws_are_fresh_reproducible_and_stateless():
    x = images()
    model = defended(gradient="none")
    state = {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(model).items()}
    a, b = model(x, NoiseDraw([11, 12], 0)), model(x, NoiseDraw([11, 12], 1))
    assert (a - b).abs().max() > 1e-3  # each draw is fresh noise (EOT needs this)
    # no state: the same draw gives the same output, whatever ran in between and in any order
    torch.testing.assert_close(model(x, NoiseDraw([11, 12], 1)), b, rtol=0, atol=0)
    torch.testing.assert_close(model(x, NoiseDraw([11, 12], 0)), a, rtol=0, atol=0)
    model(x)
    assert vars(model) == state  # forward passes change no attribute of the module


def test_draw_sequence_hands_out_consecutive_draws():
    seq = DrawSequence([3, 4], start=2)
    assert [next(seq) for _ in range(3)] == [NoiseDraw((3, 4), 2), NoiseDraw((3, 4), 3), NoiseDraw((3, 4), 4)]
    assert seq.used == 3 and seq.seeds == (3, 4)


def test_noise_draw_matches_default_factory_and_is_per_image():
    x = images(3)
    model = defended(gradient="none")
    out = model(x, NoiseDraw([5, 6, 7], 4))
    expected = model.restorer(model.purifier.purify(x, t_star=5, generator=default_generator_factory([5, 6, 7], 4)))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # an image's noise depends on its own seed and draw, not on the batch it sits in
    torch.testing.assert_close(model(x[1:2], NoiseDraw([6], 4)), out[1:2])


def test_no_noise_is_the_documented_deterministic_default():
    x = images()
    model = defended(gradient="none", seed=3)
    first = model(x)
    positional = NoiseDraw([derive_seed(3, "defended", i) for i in range(2)], 0)
    assert model.default_noise(2) == positional
    torch.testing.assert_close(model(x, positional), first, rtol=0, atol=0)
    torch.testing.assert_close(model(x), first, rtol=0, atol=0)  # no hidden counter: same noise again
    model(x, gen(0))  # an explicit generator is used as is
    torch.testing.assert_close(model(x), first, rtol=0, atol=0)


def test_custom_generator_factory_and_bad_factory():
    x = images()
    calls = []

    def factory(seeds, draw):
        calls.append((list(seeds), draw))
        return [gen(draw * 100 + i) for i in range(len(seeds))]

    model = defended(gradient="none", generator_factory=factory)
    model(x, NoiseDraw([1, 2], 7))
    assert calls == [([1, 2], 7)]
    bad = defended(gradient="none", generator_factory=lambda seeds, draw: [gen(0)])
    with pytest.raises(ValueError, match="generator_factory"):
        bad(x)


def test_seed_count_must_match_batch_and_bad_noise():
    model = defended(gradient="none")
    with pytest.raises(ValueError, match="3 seeds"):
        model(images(2), NoiseDraw([1, 2, 3]))
    with pytest.raises(ValueError, match="seeds"):
        NoiseDraw([1, -2])
    with pytest.raises(ValueError, match="draw"):
        NoiseDraw([1], -1)
    with pytest.raises(ValueError, match="noise"):
        model(images(2), "draw 0")


def test_sampler_and_guidance_go_through_the_sampler_interface():
    x = images()
    ddim = defended(sampler="ddim", num_steps=3, eta=0.5, gradient="none")
    assert ddim.sampler_config == SamplerConfig(kind="ddim", t_star=5, num_steps=3, eta=0.5)
    expected = ddim.restorer(purify_ddim(ddim.purifier, x, t_star=5, num_steps=3, generator=gen(4), eta=0.5))
    torch.testing.assert_close(ddim(x, gen(4)), expected, rtol=0, atol=0)
    guided = defended(guidance_scale=20.0, reference_noise="forward", gradient="none")
    expected = guided.restorer(guided_purify(guided.purifier, x, t_star=5, generator=gen(4), guidance_scale=20.0,
                                             reference_noise="forward"))
    torch.testing.assert_close(guided(x, gen(4)), expected, rtol=0, atol=0)
    expected = guided.restorer(reverse_chain(guided.purifier, x, guided.sampler_config, gen(4)))
    torch.testing.assert_close(guided(x, gen(4)), expected, rtol=0, atol=0)


def test_t_star_zero_is_the_bare_restorer_and_evaluation_cost():
    x = images()
    bare = defended(t_star=0)
    torch.testing.assert_close(bare(x), bare.restorer(x), rtol=0, atol=0)
    assert bare.evaluations_per_forward == 0 and bare.steps == []
    model = defended(t_star=6, num_steps=3, gradient="none")
    calls = []
    model.purifier.unet.register_forward_hook(lambda module, args, output: calls.append(1))
    model(x)
    assert len(calls) == model.evaluations_per_forward == 3 and model.steps == [6, 4, 1]


@pytest.mark.parametrize("kwargs, culprit", [
    ({"gradient": "exact"}, "gradient"),
    ({"sampler": "euler"}, "sampler"),
    ({"t_star": -1}, "t_star"),
    ({"t_star": 101}, "t_star"),
    ({"t_star": 2.0}, "t_star"),
    ({"num_steps": 9}, "num_steps"),
    ({"t_star": 0, "num_steps": 3}, "num_steps"),
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
