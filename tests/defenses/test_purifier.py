"""DiffPure-style purifier (Nie et al. 2022) on a DDPM (Ho et al. 2020): contract tests on tiny models."""

import copy
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from udcshield.defenses import DiffusionPurifier, strided_timesteps

from tests.tiny import gen, images, tiny_purifier as tiny


@pytest.mark.parametrize("size", [(16, 16), (13, 7)])
def test_shape_and_range(size):
    out = tiny().purify(images(2, *size), t_star=5, generator=gen())
    assert out.shape == (2, 3, *size)
    assert out.min() >= 0 and out.max() <= 1


def test_deterministic_per_generator():
    p, x = tiny(), images()
    a = p.purify(x, t_star=6, num_steps=3, generator=gen(1))
    b = p.purify(x, t_star=6, num_steps=3, generator=gen(1))
    c = p.purify(x, t_star=6, num_steps=3, generator=gen(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3


def test_per_image_generators_are_batch_independent():
    p, x = tiny(), images(3)
    batch = p.purify(x, t_star=4, generator=[gen(10), gen(11), gen(12)])
    single = p.purify(x[1:2], t_star=4, generator=[gen(11)])
    torch.testing.assert_close(batch[1:2], single)
    with pytest.raises(ValueError, match="generators"):
        p.purify(x, t_star=4, generator=[gen(1)])


def test_t_star_zero_returns_input():
    x = images()
    out = tiny().purify(x, t_star=0, generator=gen())
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    assert out.data_ptr() != x.data_ptr()


def test_gradient_flows_to_input_and_checkpointing_matches():
    p = tiny()
    grads = []
    for use_ckpt in (False, True):
        x = images(1, 12, 12).mul(0.5).add(0.25).requires_grad_(True)  # away from the [0,1] clamp
        with torch.enable_grad():
            p.purify(x, t_star=3, generator=gen(4), checkpoint=use_ckpt).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])


def count_unet_calls(p: DiffusionPurifier):
    calls = []
    p.unet.register_forward_hook(lambda module, args, output: calls.append(int(args[1].flatten()[0])))
    return calls


@pytest.mark.parametrize("t_star, num_steps", [(20, None), (20, 5), (20, 1), (20, 20), (7, 2)])
def test_number_of_network_evaluations(t_star, num_steps):
    p = tiny()
    calls = count_unet_calls(p)
    p.purify(images(1, 8, 8), t_star=t_star, num_steps=num_steps, generator=gen())
    expected = t_star if num_steps is None else num_steps
    assert len(calls) == expected
    # the UNet sees diffusers' 0-based index t - 1 and starts at t_star
    assert calls[0] == t_star - 1 and calls == sorted(calls, reverse=True)


def test_strided_timesteps():
    assert strided_timesteps(5) == [5, 4, 3, 2, 1]
    assert strided_timesteps(100, 5) == [100, 75, 51, 26, 1]
    assert strided_timesteps(10, 1) == [10]
    for t_star in range(1, 40):
        for k in range(1, t_star + 1):
            steps = strided_timesteps(t_star, k)
            assert len(steps) == k and len(set(steps)) == k and steps[0] == t_star
    with pytest.raises(ValueError, match="num_steps"):
        strided_timesteps(5, 6)


@st.composite
def depth_and_steps(draw):
    t_star = draw(st.integers(min_value=1, max_value=1000))
    return t_star, draw(st.one_of(st.none(), st.integers(min_value=1, max_value=t_star)))


@settings(max_examples=300, deadline=None, database=None)
@given(depth_and_steps())
def test_strided_timesteps_properties(args):
    """Ho et al. convention: start at t_star, strictly decreasing, within [1, t_star], one per evaluation,
    ending at 1 whenever there are two or more (the last step then goes 1 -> 0)."""
    t_star, num_steps = args
    steps = strided_timesteps(t_star, num_steps)
    assert len(steps) == (t_star if num_steps is None else num_steps)
    assert steps[0] == t_star
    assert all(a > b for a, b in itertools.pairwise(steps))
    assert all(1 <= t <= t_star for t in steps)
    if len(steps) > 1:
        assert steps[-1] == 1
    if num_steps is None:
        assert steps == list(range(t_star, 0, -1))


@settings(database=None)
@given(st.integers(min_value=0, max_value=50), st.one_of(st.integers(max_value=-1), st.integers(min_value=51)))
def test_strided_timesteps_rejects_step_counts_outside_range(t_star, num_steps):
    with pytest.raises(ValueError, match="num_steps"):
        strided_timesteps(t_star, num_steps)


def test_strided_timesteps_edge_cases():
    assert strided_timesteps(0) == [] and strided_timesteps(0, 0) == []
    for bad in (-1, 2.0, True, "5"):
        with pytest.raises(ValueError, match="t_star"):
            strided_timesteps(bad)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="num_steps"):
            strided_timesteps(5, bad)


def test_matches_diffusers_scheduler_with_custom_timesteps():
    """Our strided posterior equals DDPMScheduler.step with custom (non-adjacent) timesteps."""
    p, x = tiny(), images(1, 8, 8)
    t_star, steps = 30, strided_timesteps(30, 4)
    ours = p.purify(x, t_star=t_star, num_steps=4, generator=gen(7))

    scheduler = copy.deepcopy(p.scheduler)
    scheduler.set_timesteps(timesteps=[t - 1 for t in steps])
    g = gen(7)
    abar = p.alpha_bar(t_star)
    z = abar**0.5 * (2 * x - 1) + (1 - abar) ** 0.5 * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = p.unet(z, t.expand(1)).sample
            z = scheduler.step(eps, t, z, generator=g).prev_sample
    torch.testing.assert_close(ours, ((z + 1) / 2).clamp(0, 1), rtol=1e-5, atol=1e-5)


def test_training_loss_scalar_and_deterministic():
    p, x = tiny(), images(4)
    a, b = p.training_loss(x, gen(3)), p.training_loss(x, gen(3))
    assert a.ndim == 0 and torch.isfinite(a) and a.item() == b.item()
    with pytest.raises(ValueError, match="multiples of 2"):
        p.training_loss(images(1, 15, 16), gen())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"t_star": 101}, "t_star"),
        ({"t_star": -1}, "t_star"),
        ({"t_star": 10, "num_steps": 11}, "num_steps"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny().purify(images(), generator=gen(), **kwargs)


def test_nan_input_rejected():
    x = images()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tiny().purify(x, t_star=3, generator=gen())


def test_bad_config():
    with pytest.raises(ValueError, match="beta_schedule"):
        DiffusionPurifier(beta_schedule="cubic")
    with pytest.raises(ValueError, match="block_out_channels"):
        DiffusionPurifier(block_out_channels=())


def test_attention_variant_runs():
    p = tiny(attention=True)
    assert p.purify(images(1, 8, 8), t_star=2, generator=gen()).shape == (1, 3, 8, 8)


def test_default_noise_table():
    p = DiffusionPurifier()
    assert abs(p.alpha_bar(100) - 0.8970) < 1e-3 and p.alpha_bar(0) == 1.0


def test_init_weights_come_from_generator_not_global_rng():
    state = torch.get_rng_state()
    a = DiffusionPurifier(block_out_channels=(8, 16), generator=gen(1))
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    b = DiffusionPurifier(block_out_channels=(8, 16), generator=gen(1))
    c = DiffusionPurifier(block_out_channels=(8, 16), generator=gen(2))
    wa, wb, wc = (p.unet.conv_in.weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
