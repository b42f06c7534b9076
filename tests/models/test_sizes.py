"""Size presets: "paper" within 10 % of the published parameter count, "tiny" small, overrides apply."""

import time

import pytest
import torch

from udcshield.models import (
    PAPER_PARAMS, available_sizes, count_parameters, create_restorer, load_checkpoint, save_checkpoint,
)
from udcshield.models.sizes import SIZE_PRESETS

SEVEN = ["discnet", "uformer", "udcunet", "bnudc", "dwformer", "dagf", "srudc"]


def test_every_study_model_has_presets_and_published_count():
    assert set(PAPER_PARAMS) == set(SEVEN)
    for name in SEVEN:
        assert available_sizes(name) == ["paper", "tiny", "default"]


@pytest.mark.parametrize("name", SEVEN)
def test_paper_size_matches_published_count(name):
    model = create_restorer(name, size="paper")
    count = count_parameters(model)
    assert abs(count - PAPER_PARAMS[name]) <= 0.10 * PAPER_PARAMS[name], (name, count, PAPER_PARAMS[name])


@pytest.mark.parametrize("name", SEVEN)
def test_paper_size_forward_small_image(name):
    model = create_restorer(name, size="paper", generator=torch.Generator().manual_seed(0)).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.no_grad():
        out = model(x)
    assert time.perf_counter() - start < 5.0
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in SIZE_PRESETS if "tiny" in SIZE_PRESETS[n]])
def test_tiny_size_is_tiny(name):
    assert count_parameters(create_restorer(name, size="tiny")) <= 30_000


@pytest.mark.parametrize("name", SEVEN)
def test_default_size_is_constructor_defaults_and_equals_paper(name):
    default = create_restorer(name, size="default")
    plain = create_restorer(name)
    paper = create_restorer(name, size="paper")
    assert default.init_kwargs == plain.init_kwargs == paper.init_kwargs


def test_overrides_apply_on_top_of_preset_and_size_is_not_stored():
    model = create_restorer("dwformer", size="tiny", base_channels=4)
    assert model.init_kwargs == {**SIZE_PRESETS["dwformer"]["tiny"], "base_channels": 4}
    assert "size" not in model.init_kwargs


def test_tiny_checkpoint_rebuilds_from_resolved_kwargs(tmp_path):
    model = create_restorer("uformer", size="tiny").eval()
    save_checkpoint(model, tmp_path / "c")
    loaded = load_checkpoint(tmp_path / "c")
    assert count_parameters(loaded) == count_parameters(model)


def test_unknown_size_and_missing_preset():
    with pytest.raises(ValueError, match="unknown size"):
        create_restorer("discnet", size="huge")
    with pytest.raises(ValueError, match="available sizes"):
        create_restorer("resunet", size="paper")
    assert create_restorer("resunet", size="tiny").init_kwargs == create_restorer("resunet_tiny").init_kwargs


def test_unknown_override_still_type_error():
    with pytest.raises(TypeError, match="accepted arguments"):
        create_restorer("srudc", size="tiny", widht=3)


def test_count_parameters_trainable_only():
    model = create_restorer("dagf", size="tiny")
    total = count_parameters(model)
    model.head.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - model.head.weight.numel()
