"""Shared contract of every built-in restorer (tiny size where a "tiny" preset exists).

A restorer maps (B, 3, H, W) images in [0, 1] to the same shape for any H and W, is deterministic given
its generator, lets gradients reach the input (attacks need them), survives a checkpoint round trip,
keeps the caller's train/eval mode and treats the images of a batch independently. Outputs are not
clamped (documented in every model's module docstring).
"""

import importlib

import pytest
import torch

from udcshield.models import available_sizes, create_restorer, list_restorers, load_checkpoint, save_checkpoint

BUILTIN = [name for name in list_restorers() if not name.startswith("test_")]
SEVEN = ["discnet", "uformer", "udcunet", "bnudc", "dwformer", "dagf", "srudc"]
MODULES = {"discnet": "discnet", "uformer": "uformer", "udcunet": "udcunet", "bnudc": "bnudc",
           "dwformer": "dwformer", "dagf": "dagf", "srudc": "srudc"}


def _size(name):
    return "tiny" if "tiny" in available_sizes(name) else None


def _build(name, seed=0, perturb=True):
    """Tiny model with weights from ``seed``; ``perturb`` moves zero-initialized layers off zero so the
    network part (not only the identity skip) shapes the output, as after training."""
    model = create_restorer(name, size=_size(name), generator=torch.Generator().manual_seed(seed))
    if perturb:
        gen = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def _image(*shape, seed=0, requires_grad=False):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)).requires_grad_(requires_grad)


def test_the_seven_are_registered():
    assert set(SEVEN) | {"resunet", "resunet_tiny"} <= set(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("shape", [(1, 3, 37, 29), (2, 3, 32, 48), (1, 3, 7, 5)])
def test_shape_and_finite(name, shape):
    model = _build(name)
    with torch.no_grad():
        out = model(_image(*shape))
    assert out.shape == shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", BUILTIN)
def test_gradients_reach_input_and_every_parameter(name):
    model = _build(name)
    x = _image(2, 3, 21, 19, requires_grad=True)
    model(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # the network contributes: the gradient is not that of the identity map (2 x)
    assert not torch.allclose(x.grad, 2 * x.detach())
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters outside the graph: {unused}"


@pytest.mark.parametrize("name", BUILTIN)
def test_determinism_from_generator(name):
    a, b, c = _build(name, seed=5, perturb=False), _build(name, seed=5, perturb=False), _build(name, seed=6, perturb=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    x = _image(1, 3, 16, 20)
    a, b = _build(name, seed=5), _build(name, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
        torch.testing.assert_close(a(x), a(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", BUILTIN)
def test_checkpoint_round_trip(name, tmp_path):
    model = _build(name).eval()
    save_checkpoint(model, tmp_path / name)
    loaded = load_checkpoint(tmp_path / name)
    assert loaded.restorer_name == name and loaded.init_kwargs == model.init_kwargs
    x = _image(1, 3, 19, 23)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", BUILTIN)
def test_train_eval_mode_is_kept(name):
    model = _build(name)
    x = _image(1, 3, 12, 12)
    model.train()
    model(x)
    assert all(m.training for m in model.modules())
    model.eval()
    with torch.no_grad():
        model(x)
    assert not any(m.training for m in model.modules())


@pytest.mark.parametrize("name", BUILTIN)
def test_images_of_a_batch_are_independent(name):
    model = _build(name).eval()
    x = _image(3, 3, 13, 11)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:2], model(x[1:2]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", BUILTIN)
def test_rejects_non_image_input(name):
    with pytest.raises(ValueError, match="shape"):
        _build(name, perturb=False)(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("name", [n for n in SEVEN if n != "dagf"])
def test_untrained_model_is_identity(name):
    """Residual restorers start as the identity (zero-initialized last layer); DAGF's output is a guided
    filter, documented as not of the form input + residual."""
    model = _build(name, perturb=False)
    x = _image(1, 3, 17, 15)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", SEVEN)
def test_module_docstring_cites_paper_and_states_simplifications(name):
    doc = " ".join(importlib.import_module(f"udcshield.models.{MODULES[name]}").__doc__.split())
    assert "Paper:" in doc and "Simplified" in doc
    assert "not clamped" in doc or "unclamped" in doc


@pytest.mark.parametrize("name", ["discnet", "udcunet"])
def test_psf_code_is_optional_and_used(name):
    model = _build(name).eval()
    x = _image(2, 3, 16, 16)
    code_dim = model.init_kwargs["code_dim"]
    with torch.no_grad():
        default = model(x)
        torch.testing.assert_close(model(x, psf_code=model.default_code.detach()), default, rtol=0, atol=0)
        other = model(x, psf_code=torch.ones(2, code_dim))
    assert not torch.allclose(default, other)
    with pytest.raises(ValueError, match="psf_code"):
        model(x, psf_code=torch.ones(3, code_dim))
