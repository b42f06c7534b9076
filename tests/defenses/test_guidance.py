"""GDMP input guidance (Wang et al. 2022) on DDPM and DDIM reverse chains."""

import pytest
import torch

from udcshield.defenses import guided_purify, purify_ddim

from tests.tiny import gen, images, tiny_purifier as tiny


@pytest.mark.parametrize("num_steps", [None, 3])
def test_scale_zero_equals_unguided(num_steps):
    p, x = tiny(), images()
    ddpm = guided_purify(p, x, t_star=8, num_steps=num_steps, generator=gen(1), guidance_scale=0.0)
    torch.testing.assert_close(ddpm, p.purify(x, t_star=8, num_steps=num_steps, generator=gen(1)), rtol=0, atol=0)
    ddim = guided_purify(p, x, t_star=8, num_steps=num_steps, generator=gen(1), sampler="ddim", eta=0.3)
    expected = purify_ddim(p, x, t_star=8, num_steps=num_steps, generator=gen(1), eta=0.3)
    torch.testing.assert_close(ddim, expected, rtol=0, atol=0)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_guidance_pulls_output_toward_the_input(sampler):
    p, x = tiny(), images()
    errors = []
    with torch.no_grad():
        for scale in (0.0, 10.0, 100.0):
            out = guided_purify(p, x, t_star=20, generator=gen(1), guidance_scale=scale, sampler=sampler)
            errors.append(float(((out - x) ** 2).mean()))
    assert errors[0] > errors[1] > errors[2]


def test_reference_noise_fresh_draws_forward_does_not():
    p, x = tiny(), images(1)
    g_fresh, g_forward, g_plain = gen(1), gen(1), gen(1)
    a = guided_purify(p, x, t_star=6, generator=g_fresh, guidance_scale=50.0, sampler="ddim")
    b = guided_purify(p, x, t_star=6, generator=g_forward, guidance_scale=50.0, sampler="ddim",
                      reference_noise="forward")
    purify_ddim(p, x, t_star=6, generator=g_plain)
    assert torch.equal(g_forward.get_state(), g_plain.get_state())  # eta=0: one forward draw only
    assert not torch.equal(g_fresh.get_state(), g_plain.get_state())
    assert (a - b).abs().max() > 0


def test_gradients_flow_through_guided_chain():
    p, x = tiny(), images(1)
    grads = []
    for ckpt in (False, True):
        a = x.clone().requires_grad_(True)
        out = guided_purify(p, a, t_star=6, generator=gen(1), guidance_scale=30.0, checkpoint=ckpt)
        (g,) = torch.autograd.grad((out ** 2).sum(), a)
        grads.append(g)
    assert torch.isfinite(grads[0]).all() and grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)


def test_t_star_zero_returns_input():
    x = images()
    torch.testing.assert_close(guided_purify(tiny(), x, t_star=0, generator=gen(), guidance_scale=5.0), x,
                               rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, culprit", [
    ({"guidance_scale": -1.0}, "guidance_scale"),
    ({"guidance_scale": float("inf")}, "guidance_scale"),
    ({"guidance_scale": True}, "guidance_scale"),
    ({"sampler": "heun"}, "sampler"),
    ({"reference_noise": "zero"}, "reference_noise"),
    ({"eta": 2.0}, "eta"),
    ({"t_star": 500}, "t_star"),
])
def test_bad_arguments(kwargs, culprit):
    args = {"t_star": 5, "generator": gen(), "guidance_scale": 1.0} | kwargs
    with pytest.raises(ValueError, match=culprit):
        guided_purify(tiny(), images(), **args)
