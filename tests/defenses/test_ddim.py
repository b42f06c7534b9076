"""DDIM purification (Song, Meng, Ermon, ICLR 2021) with the DDPM's ε-UNet: determinism, exactness, errors."""

import math

import pytest
import torch

from udcshield.defenses import ddim_step, purify_ddim

from tests.tiny import gen, images, tiny_purifier as tiny


@pytest.mark.parametrize("size", [(16, 16), (13, 7)])
def test_shape_and_range(size):
    out = purify_ddim(tiny(), images(2, *size), t_star=6, num_steps=3, generator=gen())
    assert out.shape == (2, 3, *size)
    assert out.min() >= 0 and out.max() <= 1


def test_eta_zero_every_step_is_deterministic_given_forward_noise():
    p, x = tiny(), images()
    g1, g2 = gen(1), gen(1)
    a = purify_ddim(p, x, t_star=8, num_steps=None, generator=g1)
    b = purify_ddim(p, x, t_star=8, num_steps=None, generator=g2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the forward noise is the only draw: the generator advanced by exactly one (B, 3, H, W) draw
    reference = gen(1)
    torch.randn(x.shape, generator=reference)
    assert torch.equal(g1.get_state(), reference.get_state())
    c = purify_ddim(p, x, t_star=8, generator=gen(2))
    assert (a - c).abs().max() > 1e-3


def test_eta_positive_draws_reverse_noise():
    p, x = tiny(), images()
    a = purify_ddim(p, x, t_star=8, num_steps=4, generator=gen(1), eta=0.0)
    b = purify_ddim(p, x, t_star=8, num_steps=4, generator=gen(1), eta=1.0)
    assert (a - b).abs().max() > 1e-4


def test_t_star_zero_returns_the_input():
    x = images()
    out = purify_ddim(tiny(), x, t_star=0, generator=gen())
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    assert out.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("num_steps", [1, 3, None])
def test_oracle_noise_recovers_the_clean_image(num_steps, monkeypatch):
    """With the true ε (an oracle denoiser) DDIM with eta=0 maps x_t* back to x exactly, for any stride."""
    p, x = tiny(), images()
    z_clean = p.to_model_space(x)

    def oracle(z_t, t):
        abar = p.alpha_bar(int(t))
        return (z_t - math.sqrt(abar) * z_clean) / math.sqrt(1.0 - abar)

    monkeypatch.setattr(p, "predict_noise", oracle)
    out = purify_ddim(p, x, t_star=30, num_steps=num_steps, generator=gen(5))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


def test_ddim_step_eta_one_has_the_ddpm_posterior_variance():
    p = tiny()
    z, eps = torch.randn(1, 3, 8, 8, generator=gen(1)), torch.randn(1, 3, 8, 8, generator=gen(2))
    t, s = 40, 30
    a = ddim_step(p, z, eps, t, s, eta=1.0, generator=gen(3), clip_denoised=False)
    b = ddim_step(p, z, eps, t, s, eta=1.0, generator=gen(4), clip_denoised=False)
    n3, n4 = torch.randn(1, 3, 8, 8, generator=gen(3)), torch.randn(1, 3, 8, 8, generator=gen(4))
    abar_t, abar_s = p.alpha_bar(t), p.alpha_bar(s)
    sigma = math.sqrt((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s))
    torch.testing.assert_close(a - b, sigma * (n3 - n4), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="generator"):
        ddim_step(p, z, eps, t, s, eta=0.5)
    with pytest.raises(ValueError, match="0 <= s < t"):
        ddim_step(p, z, eps, 3, 5)


def test_gradients_flow_with_and_without_checkpoint():
    p, x = tiny(), images(1)
    grads = []
    for ckpt in (False, True):
        a = x.clone().requires_grad_(True)
        out = purify_ddim(p, a, t_star=6, generator=gen(1), checkpoint=ckpt)
        (g,) = torch.autograd.grad((out ** 2).sum(), a)
        grads.append(g)
    assert torch.isfinite(grads[0]).all() and grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)


def test_per_image_generators_are_batch_independent():
    p, x = tiny(), images(3)
    batch = purify_ddim(p, x, t_star=5, generator=[gen(10), gen(11), gen(12)], eta=0.5)
    single = purify_ddim(p, x[1:2], t_star=5, generator=[gen(11)], eta=0.5)
    torch.testing.assert_close(batch[1:2], single)


@pytest.mark.parametrize("kwargs, culprit", [
    ({"t_star": -1}, "t_star"),
    ({"t_star": 101}, "t_star"),
    ({"t_star": 2.0}, "t_star"),
    ({"eta": -0.1}, "eta"),
    ({"eta": float("nan")}, "eta"),
    ({"num_steps": 7}, "num_steps"),
])
def test_bad_arguments(kwargs, culprit):
    args = {"t_star": 5, "generator": gen()} | kwargs
    with pytest.raises(ValueError, match=culprit):
        purify_ddim(tiny(), images(), **args)


def test_bad_images():
    with pytest.raises(ValueError, match="reverse_chain input"):
        purify_ddim(tiny(), torch.rand(2, 1, 8, 8), t_star=3, generator=gen())
    with pytest.raises(ValueError, match="purifier"):
        purify_ddim(object(), images(), t_star=3, generator=gen())
