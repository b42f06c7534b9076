"""udcshield.accel: acceleration wrappers keep dtype, layout, values (float32) and gradients."""

from __future__ import annotations

import pytest
import torch

from udcshield import accel as accel_module
from udcshield.accel import (
    AccelCache,
    Acceleration,
    AcceleratedModule,
    accelerate,
    accelerate_purifier,
    amp_psnr_gap,
    choose_amp,
)
from udcshield.defenses import DiffusionPurifier, purify_ddim
from udcshield.models import create_restorer
from udcshield.seeding import torch_generator

CUDA = torch.cuda.is_available()


def _restorer() -> torch.nn.Module:
    model = create_restorer("resunet", generator=torch_generator(0, "test/accel"), size="tiny")
    with torch.no_grad():  # perturb the (zero-initialised) head so outputs depend on every layer
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch_generator(1, "test/accel", p.numel())))
    return model.eval()


def test_acceleration_validates_options():
    with pytest.raises(ValueError, match="amp"):
        Acceleration(amp="fp16")
    with pytest.raises(ValueError, match="compile"):
        Acceleration(compile="fast")
    with pytest.raises(ValueError, match="channels_last"):
        Acceleration(channels_last="yes")  # type: ignore[arg-type]
    assert Acceleration().label() == "fp32" and not Acceleration().enabled
    assert Acceleration(amp="bf16", channels_last=True, compile="reduce-overhead").label() == \
        "bf16+cl+compile-reduce-overhead"


def test_plain_acceleration_returns_the_model_itself():
    model = _restorer()
    assert accelerate(model, Acceleration(), "cpu") is model


def test_bf16_on_cpu_is_refused_unless_asked():
    with pytest.raises(ValueError, match="bf16"):
        accelerate(_restorer(), Acceleration(amp="bf16"), "cpu")
    purifier = DiffusionPurifier(sample_size=16, block_out_channels=(8, 16), generator=torch_generator(0, "p"))
    with pytest.raises(ValueError, match="bf16"):
        accelerate_purifier(purifier, Acceleration(amp="bf16"), "cpu")


def test_channels_last_wrapper_keeps_values_dtype_layout_and_gradients():
    model = _restorer()
    x = torch.rand(2, 3, 16, 16, generator=torch_generator(0, "x"))
    ref = model(x)
    fast = accelerate(model, Acceleration(channels_last=True), "cpu")
    assert isinstance(fast, AcceleratedModule)
    out = fast(x)
    assert out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    a = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fast(a).square().sum(), a)
    b = x.clone().requires_grad_(True)
    (grad_ref,) = torch.autograd.grad(model(b).square().sum(), b)
    torch.testing.assert_close(grad, grad_ref, atol=1e-5, rtol=1e-4)


def test_bf16_autocast_changes_values_a_little_and_returns_float32():
    model = _restorer()
    x = torch.rand(2, 3, 16, 16, generator=torch_generator(0, "x"))
    out = AcceleratedModule(model, amp="bf16")(x)
    ref = model(x)
    assert out.dtype == torch.float32
    diff = (out - ref).abs().max().item()
    assert 0 < diff < 0.1  # bf16 rounding is visible but small


def test_amp_gap_and_choice():
    model = _restorer()
    x = torch.rand(4, 3, 16, 16, generator=torch_generator(0, "x"))
    gap = amp_psnr_gap(model, x, x, "cpu", batch_size=2)
    assert set(gap) == {"psnr_fp32", "psnr_bf16", "gap_db"}
    assert gap["gap_db"] == pytest.approx(abs(gap["psnr_fp32"] - gap["psnr_bf16"]))
    assert choose_amp(model, x, x, "cpu")[0] == "none"


def test_purifier_noise_predictor_is_returned_not_stored():
    purifier = DiffusionPurifier(sample_size=16, block_out_channels=(8, 16), generator=torch_generator(0, "p")).eval()
    x = torch.rand(2, 3, 16, 16, generator=torch_generator(0, "x"))
    attributes = set(vars(purifier))

    def gens():
        return [torch_generator(0, "g", i) for i in range(2)]
    with torch.no_grad():
        ref = purify_ddim(purifier, x, t_star=20, num_steps=3, generator=gens())
        calls = []
        same = purify_ddim(purifier, x, t_star=20, num_steps=3, generator=gens(),
                           noise_predictor=lambda z, t: calls.append(1) or purifier.unet(z, t).sample)
        assert len(calls) == 3
        torch.testing.assert_close(same, ref, rtol=0, atol=0)
        assert accelerate_purifier(purifier, Acceleration(), "cpu") is None  # all off: the plain UNet call
        runner = accelerate_purifier(purifier, Acceleration(channels_last=True), "cpu")
        assert callable(runner)
        torch.testing.assert_close(purify_ddim(purifier, x, t_star=20, num_steps=3, generator=gens(),
                                               noise_predictor=runner), ref, atol=1e-5, rtol=1e-5)
        # nothing was attached to the purifier: without the predictor it runs the plain UNet
        torch.testing.assert_close(purify_ddim(purifier, x, t_star=20, num_steps=3, generator=gens()), ref,
                                   atol=1e-5, rtol=1e-5)
    assert set(vars(purifier)) == attributes
    assert not any("runner" in key for key in purifier.state_dict())


def test_accel_cache_builds_once_per_model_and_setting():
    cache = AccelCache()
    a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    built = []

    def build(tag):
        built.append(tag)
        return tag

    assert cache.get("k", a, "s", "cpu", lambda: build("a")) == "a"
    assert cache.get("k", a, "s", "cpu", lambda: build("again")) == "a"
    assert cache.get("k", b, "s", "cpu", lambda: build("b")) == "b"
    assert cache.get("k", a, "t", "cpu", lambda: build("a/t")) == "a/t"
    assert cache.get("other", a, "s", "cpu", lambda: build("other")) == "other"
    assert built == ["a", "b", "a/t", "other"] and len(cache) == 4
    cache.clear()
    assert len(cache) == 0


def test_cuda_branch_caches_through_the_callers_cache(monkeypatch):
    """The CUDA code path without a GPU: the wrapper and the amp choice are built once per model and
    setting when the caller holds an AccelCache, on every call without one, and never stored on the model."""
    from udcshield.accel import accelerate_purifier_for, accelerate_restorer_for
    from udcshield.config import params_from_dict

    built, probed = [], []
    monkeypatch.setattr(accel_module, "accelerate", lambda model, acc, device: built.append(acc) or ("wrapped", acc))
    monkeypatch.setattr(accel_module, "choose_amp", lambda model, x, y, device, tolerance_db: ("bf16", {}))
    monkeypatch.setattr(accel_module, "accelerate_purifier", lambda p, acc, device: built.append(acc) or "runner")
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *args, **kwargs: self)

    def probe():
        probed.append(1)
        return torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)

    cfg = params_from_dict({"accel": {"amp": "auto", "channels_last": True, "compile": "default"}}).accel
    model = _restorer()
    attributes = set(vars(model))
    cache = AccelCache()
    first = accelerate_restorer_for(cfg, model, probe, "cuda", cache)
    second = accelerate_restorer_for(cfg, model, probe, "cuda", cache)
    assert first == second == (("wrapped", Acceleration("bf16", True, "default")), "bf16+cl+compile")
    assert len(built) == 1 and len(probed) == 1
    accelerate_restorer_for(cfg, model, probe, "cuda")  # no cache: measured and built again
    assert len(built) == 2 and len(probed) == 2
    purifier = DiffusionPurifier(sample_size=16, block_out_channels=(8, 16), generator=torch_generator(0, "p"))
    assert accelerate_purifier_for(cfg, purifier, "cuda", cache) == ("runner", "fp32+cl+compile-reduce-overhead")
    assert accelerate_purifier_for(cfg, purifier, "cuda", cache)[0] == "runner" and len(built) == 3
    assert set(vars(model)) == attributes and "_accel_key" not in vars(purifier)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_bf16_compile_attack_close_to_fp32():
    """On a GPU: PGD through the bf16 + channels_last + compiled restorer stays within 0.05 dB of fp32."""
    from udcshield.attacks.pgd import PGD
    from udcshield.evaluation.metrics import psnr

    model = _restorer().cuda()
    x = torch.rand(8, 3, 64, 64, generator=torch_generator(0, "x")).cuda()
    y = x.clamp(0.1, 0.9)
    adv32 = PGD(model, eps=8 / 256, steps=5)(x, y, seeds=list(range(8)))
    fast = accelerate(model, Acceleration(amp="bf16", channels_last=True, compile="default"), "cuda")
    adv16 = PGD(fast, eps=8 / 256, steps=5)(x, y, seeds=list(range(8)))
    with torch.no_grad():
        p32 = psnr(model(adv32).clamp(0, 1), y).mean().item()
        p16 = psnr(model(adv16).clamp(0, 1), y).mean().item()
    assert abs(p32 - p16) <= 0.05
    assert (adv16 - x).abs().max().item() <= 8 / 256


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_graph_purifier_matches_eager():
    purifier = DiffusionPurifier(sample_size=32, block_out_channels=(16, 32), generator=torch_generator(0, "p")).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch_generator(0, "x")).cuda()

    def gens():
        return [torch_generator(0, "g", i) for i in range(4)]
    with torch.no_grad():
        assert accelerate_purifier(purifier, Acceleration(), "cuda") is None
        ref = purify_ddim(purifier, x, t_star=20, num_steps=4, generator=gens())
        runner = accelerate_purifier(purifier, Acceleration(compile="reduce-overhead"), "cuda")
        for _ in range(3):  # warm-up, record, replay
            out = purify_ddim(purifier, x, t_star=20, num_steps=4, generator=gens(), noise_predictor=runner)
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=2e-3)


def test_params_accel_section_is_checked_and_a_no_op_on_cpu():
    from udcshield.accel import accelerate_purifier_for, accelerate_restorer_for
    from udcshield.config import ConfigError, params_from_dict

    with pytest.raises(ConfigError, match="accel.amp"):
        params_from_dict({"accel": {"amp": "fp16"}})
    with pytest.raises(ConfigError, match="accel.amp_tolerance_db"):
        params_from_dict({"accel": {"amp_tolerance_db": 0.0}})
    cfg = params_from_dict({"accel": {"amp": "auto", "channels_last": True, "compile": "default"}}).accel
    model = _restorer()
    x = torch.rand(2, 3, 16, 16, generator=torch_generator(0, "x"))
    cache = AccelCache()
    same, label = accelerate_restorer_for(cfg, model, lambda: pytest.fail("the probe is read only on CUDA"), "cpu",
                                          cache)
    assert same is model and label == "fp32"
    purifier = DiffusionPurifier(sample_size=16, block_out_channels=(8, 16), generator=torch_generator(0, "p"))
    assert accelerate_purifier_for(cfg, purifier, "cpu", cache) == (None, "fp32")
    assert len(cache) == 0
