"""The one reverse-chain interface (SamplerConfig + reverse_chain): DDPM (Ho et al. 2020), DDIM (Song et al.
2021), GDMP guidance (Wang et al. 2022) in DiffPure purification (Nie et al. 2022).

Every kind/guidance combination is checked bit for bit against a reference chain written here from the
step functions, and the public wrappers against the interface.
"""

import dataclasses
import math

import pytest
import torch

from udcshield.defenses import SamplerConfig, ddim_step, guided_purify, purify_ddim, reverse_chain, strided_timesteps
from udcshield.models.unet import pad_to_multiple

from tests.tiny import gen, images, tiny_purifier as tiny

COMBINATIONS = [
    {"kind": "ddpm"},
    {"kind": "ddpm", "num_steps": 3},
    {"kind": "ddpm", "num_steps": 3, "clip_denoised": False},
    {"kind": "ddim"},
    {"kind": "ddim", "num_steps": 3, "eta": 0.5},
    {"kind": "ddpm", "num_steps": 4, "guidance_scale": 20.0},
    {"kind": "ddpm", "guidance_scale": 20.0, "reference_noise": "forward"},
    {"kind": "ddim", "num_steps": 4, "guidance_scale": 20.0},
    {"kind": "ddim", "num_steps": 4, "eta": 0.7, "guidance_scale": 20.0, "reference_noise": "forward"},
]


def reference_chain(p, x, cfg: SamplerConfig, g: torch.Generator) -> torch.Tensor:
    """The purification chain spelled out with the DDPM / DDIM step functions and the GDMP shift."""
    steps = strided_timesteps(cfg.t_star, cfg.num_steps)
    height, width = x.shape[-2:]
    z0, _ = pad_to_multiple(2 * x - 1, p.multiple)
    abar = p.alpha_bar(cfg.t_star)
    forward_noise = torch.randn(z0.shape, generator=g)
    z = math.sqrt(abar) * z0 + math.sqrt(1.0 - abar) * forward_noise
    for t, s in zip(steps, steps[1:] + [0]):
        eps = p.unet(z, torch.full((x.shape[0],), t - 1, dtype=torch.long)).sample
        pull = None
        if cfg.guidance_scale > 0 and s > 0:
            abar_t, abar_s = p.alpha_bar(t), p.alpha_bar(s)
            variance = (1.0 - abar_s) / (1.0 - abar_t) * (1.0 - abar_t / abar_s)
            noise = torch.randn(z0.shape, generator=g) if cfg.reference_noise == "fresh" else forward_noise
            reference = math.sqrt(abar_t) * z0 + math.sqrt(1.0 - abar_t) * noise
            pull = (2.0 * cfg.guidance_scale * variance) * (z - reference)
        if cfg.kind == "ddpm":
            z_next = p.reverse_step(z, eps, t, s, g, clip_denoised=cfg.clip_denoised)
        else:
            z_next = ddim_step(p, z, eps, t, s, eta=cfg.eta, generator=g, clip_denoised=cfg.clip_denoised)
        z = z_next if pull is None else z_next - pull
    return ((z[..., :height, :width] + 1.0) * 0.5).clamp(0.0, 1.0)


@pytest.mark.parametrize("fields", COMBINATIONS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_reverse_chain_equals_the_step_functions(fields):
    p, x = tiny(), images(2, 13, 7)
    cfg = SamplerConfig(t_star=8, **fields)
    with torch.no_grad():
        got = reverse_chain(p, x, cfg, gen(3))
        expected = reference_chain(p, x, cfg, gen(3))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("fields", COMBINATIONS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_wrappers_are_the_interface(fields):
    p, x = tiny(), images(2)
    cfg = SamplerConfig(t_star=6, **fields)
    with torch.no_grad():
        ours = reverse_chain(p, x, cfg, [gen(1), gen(2)])
        guided = guided_purify(p, x, t_star=6, num_steps=cfg.num_steps, generator=[gen(1), gen(2)],
                               guidance_scale=cfg.guidance_scale, sampler=cfg.kind, eta=cfg.eta,
                               reference_noise=cfg.reference_noise, clip_denoised=cfg.clip_denoised)
        assert torch.equal(guided, ours)
        if cfg.guided:
            return
        if cfg.kind == "ddpm":
            plain = p.purify(x, t_star=6, num_steps=cfg.num_steps, generator=[gen(1), gen(2)],
                             clip_denoised=cfg.clip_denoised)
        else:
            plain = purify_ddim(p, x, t_star=6, num_steps=cfg.num_steps, generator=[gen(1), gen(2)], eta=cfg.eta,
                                clip_denoised=cfg.clip_denoised)
        assert torch.equal(plain, ours)


@pytest.mark.parametrize("fields, draws", [
    ({"kind": "ddpm"}, 1 + 3),  # forward noise + one per step except the last
    ({"kind": "ddim"}, 1),  # eta = 0: the forward noise only
    ({"kind": "ddim", "eta": 0.5}, 1 + 3),
    ({"kind": "ddpm", "guidance_scale": 5.0}, 1 + 3 + 3),  # plus a fresh reference per guided step
    ({"kind": "ddpm", "guidance_scale": 5.0, "reference_noise": "forward"}, 1 + 3),
    ({"kind": "ddim", "guidance_scale": 5.0}, 1 + 3),
])
def test_draw_count_per_chain(fields, draws):
    p, x = tiny(), images(1, 8, 8)
    g = gen(4)
    with torch.no_grad():
        reverse_chain(p, x, SamplerConfig(t_star=9, num_steps=4, **fields), g)
    expected = gen(4)
    for _ in range(draws):
        torch.randn(x.shape, generator=expected)
    assert torch.equal(g.get_state(), expected.get_state())


def test_noise_predictor_replaces_the_unet_call():
    p, x = tiny(), images()
    calls = []

    def predictor(z_t, t0):
        calls.append(int(t0[0]))
        return p.unet(z_t, t0).sample

    cfg = SamplerConfig(kind="ddim", t_star=20, num_steps=3)
    with torch.no_grad():
        ref = reverse_chain(p, x, cfg, gen(1))
        same = reverse_chain(p, x, cfg, gen(1), noise_predictor=predictor)
    assert calls == [t - 1 for t in cfg.timesteps]  # the UNet's 0-based index
    assert torch.equal(same, ref)
    with pytest.raises(ValueError, match="noise_predictor"):
        reverse_chain(p, x, cfg, gen(1), noise_predictor=3)


def test_checkpointing_keeps_gradients_with_a_noise_predictor():
    p, x = tiny(), images(1)
    cfg = SamplerConfig(kind="ddpm", t_star=5, num_steps=3, guidance_scale=10.0)
    grads = []
    for ckpt in (False, True):
        a = x.clone().requires_grad_(True)
        out = reverse_chain(p, a, cfg, gen(2), checkpoint=ckpt, noise_predictor=lambda z, t0: p.unet(z, t0).sample)
        (g,) = torch.autograd.grad((out ** 2).sum(), a)
        grads.append(g)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)


def test_t_star_zero_is_a_copy_without_draws():
    p, x, g = tiny(), images(), gen(5)
    out = reverse_chain(p, x, SamplerConfig(t_star=0, guidance_scale=3.0), g)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    assert torch.equal(g.get_state(), gen(5).get_state())


def test_config_fields_and_derived_values():
    cfg = SamplerConfig(t_star=100, num_steps=5, eta=1, guidance_scale=2)
    assert cfg.kind == "ddpm" and cfg.timesteps == [100, 75, 51, 26, 1] and cfg.evaluations == 5
    assert isinstance(cfg.eta, float) and isinstance(cfg.guidance_scale, float) and cfg.guided
    assert SamplerConfig(t_star=7).evaluations == len(SamplerConfig(t_star=7).timesteps) == 7
    assert SamplerConfig(t_star=0).timesteps == [] and not SamplerConfig(t_star=0).guided
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.t_star = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        SamplerConfig("ddpm", 5)  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize("fields, culprit", [
    ({"kind": "euler"}, "sampler kind"),
    ({"t_star": -1}, "t_star"),
    ({"t_star": 2.0}, "t_star"),
    ({"t_star": True}, "t_star"),
    ({"num_steps": 9}, "num_steps"),
    ({"num_steps": 0}, "num_steps"),
    ({"eta": 1.5}, "eta"),
    ({"eta": float("nan")}, "eta"),
    ({"guidance_scale": -1.0}, "guidance_scale"),
    ({"guidance_scale": float("inf")}, "guidance_scale"),
    ({"reference_noise": "zero"}, "reference_noise"),
    ({"clip_denoised": 1}, "clip_denoised"),
])
def test_bad_config_names_the_culprit(fields, culprit):
    with pytest.raises(ValueError, match=culprit):
        SamplerConfig(**({"t_star": 5} | fields))


def test_reverse_chain_checks_its_arguments():
    p = tiny()
    with pytest.raises(ValueError, match="t_star"):
        reverse_chain(p, images(), SamplerConfig(t_star=101), gen())
    with pytest.raises(ValueError, match="SamplerConfig"):
        reverse_chain(p, images(), {"t_star": 5}, gen())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="purifier"):
        reverse_chain(object(), images(), SamplerConfig(t_star=5), gen())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reverse_chain input"):
        reverse_chain(p, torch.rand(2, 1, 8, 8), SamplerConfig(t_star=5), gen())
    with pytest.raises(ValueError, match="generators"):
        reverse_chain(p, images(3), SamplerConfig(t_star=5), [gen(1)])
