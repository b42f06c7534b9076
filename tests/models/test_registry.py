"""Registry contract: names, kwargs validation, stamping of restorer_name/init_kwargs."""

import pytest
import torch
from torch import nn

from udcshield.models import create_restorer, list_restorers, register_restorer
from udcshield.models.registry import check_image_batch


def test_builtins_registered():
    assert {"resunet", "resunet_tiny"} <= set(list_restorers())


def test_create_stamps_name_and_resolved_kwargs():
    model = create_restorer("resunet", depth=1)
    assert model.restorer_name == "resunet"
    assert model.init_kwargs == {"base_channels": 16, "depth": 1, "blocks_per_level": 1}


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="resunet_tiny"):
        create_restorer("no_such_net")


def test_unknown_kwarg_is_type_error_naming_accepted():
    with pytest.raises(TypeError, match="base_channels"):
        create_restorer("resunet", widht=3)


def test_bad_kwarg_value():
    with pytest.raises(ValueError, match="depth"):
        create_restorer("resunet", depth=-1)


def test_duplicate_registration_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_restorer("resunet")(nn.Identity)


def test_non_json_kwargs_rejected():
    @register_restorer("test_registry_identity")
    def factory(scale: object = 1.0) -> nn.Module:
        return nn.Identity()

    assert "test_registry_identity" in list_restorers()
    with pytest.raises(TypeError, match="JSON"):
        create_restorer("test_registry_identity", scale=object())


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (torch.rand(3, 8, 8), ValueError, "shape"),
        (torch.rand(1, 4, 8, 8), ValueError, "shape"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), TypeError, "floating"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, "NaN"),
    ],
)
def test_check_image_batch(bad, exc, match):
    with pytest.raises(exc, match=match):
        check_image_batch(bad, "x")


def test_initial_weights_from_generator_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(1))
    b = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(1))
    c = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(2))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)
    assert "generator" not in a.init_kwargs


def test_without_generator_the_callers_seeded_init_decides():
    from udcshield.seeding import seeded_init

    with seeded_init(1, "train"):
        a = create_restorer("resunet_tiny")
    with seeded_init(1, "train"):
        b = create_restorer("resunet_tiny")
    with seeded_init(2, "train"):
        c = create_restorer("resunet_tiny")
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)
