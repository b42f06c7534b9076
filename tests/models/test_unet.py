"""ResUNet restorer (Zhou et al. 2021): shapes, residual identity at init, gradients."""

import pytest
import torch

from udcshield.models import create_restorer


@pytest.mark.parametrize("name", ["resunet", "resunet_tiny"])
@pytest.mark.parametrize("size", [(37, 29), (64, 64), (5, 3), (1, 1)])
def test_any_size_keeps_shape(name, size):
    model = create_restorer(name)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    assert model(x).shape == x.shape


def test_untrained_is_identity_and_trained_is_not():
    model = create_restorer("resunet_tiny")
    x = torch.rand(1, 3, 37, 29, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x), x)
    with torch.no_grad():
        model.tail.weight.normal_(generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(model(x), x)


def test_gradient_reaches_input_through_network():
    model = create_restorer("resunet", depth=2)
    with torch.no_grad():  # make the residual branch non-trivial, otherwise only the skip carries gradient
        model.tail.weight.normal_(std=0.1, generator=torch.Generator().manual_seed(1))
    x = torch.rand(2, 3, 21, 19, generator=torch.Generator().manual_seed(0), requires_grad=True)
    model(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the network part contributes: gradient differs from the pure-identity gradient 2*x
    assert not torch.allclose(x.grad, 2 * x.detach())


def test_padding_does_not_leak_between_images():
    model = create_restorer("resunet_tiny")
    with torch.no_grad():
        model.tail.weight.normal_(std=0.1, generator=torch.Generator().manual_seed(1))
    x = torch.rand(2, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x)[:1], model(x[:1]))


def test_wrong_channels_raise():
    with pytest.raises(ValueError, match="shape"):
        create_restorer("resunet_tiny")(torch.rand(1, 1, 8, 8))
