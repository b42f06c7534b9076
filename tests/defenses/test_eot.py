"""EOT gradient estimates (Athalye et al. 2018) through the stochastic defended restorer."""

import pytest
import torch

from udcshield.attacks import distortion
from udcshield.defenses import NoiseDraw
from udcshield.defenses.eot import eot_loss_grad

from tests.tiny import defended, images


def test_one_sample_is_the_plain_gradient():
    x, ref = images(), images(seed=1)
    model = defended()
    grad, dist = eot_loss_grad(model, x, ref, samples=1, seeds=[3, 4])
    a = x.clone().requires_grad_(True)
    expected_dist = distortion(model(a, NoiseDraw([3, 4], 0)), ref)
    (expected,) = torch.autograd.grad(expected_dist.sum(), a)
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)
    torch.testing.assert_close(dist, expected_dist.detach(), rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())


def test_mean_of_fresh_draws():
    x, ref = images(), images(seed=1)
    model = defended()
    grad, dist, per_draw = eot_loss_grad(model, x, ref, samples=3, return_samples=True, seeds=[3, 4])
    assert per_draw.shape == (3, *x.shape)
    torch.testing.assert_close(grad, per_draw.mean(0))
    # sample k is draw first_draw + k: a later call starting at draw 1 repeats samples 1 and 2
    _, _, later = eot_loss_grad(model, x, ref, samples=2, return_samples=True, seeds=[3, 4], first_draw=1)
    torch.testing.assert_close(later, per_draw[1:], rtol=0, atol=0)
    assert (per_draw[0] - per_draw[1]).abs().max() > 1e-6  # each draw sees different purifier noise
    assert dist.shape == (2,)


@pytest.mark.parametrize("gradient", ["full", "bpda"])
def test_variance_of_the_estimate_falls_with_more_samples(gradient):
    """Var of the EOT mean over n draws ≈ Var(single draw) / n: compare n = 1 and n = 4 over 8 repeats."""
    x, ref = images(1), images(1, seed=1)
    model = defended(gradient=gradient)

    def spread(samples: int) -> float:
        estimates = torch.stack([eot_loss_grad(model, x, ref, samples=samples, seeds=[samples],
                                               first_draw=r * samples)[0] for r in range(8)])
        return float(estimates.var(dim=0).sum())

    one, four = spread(1), spread(4)
    assert one > 0
    assert four < 0.5 * one


@pytest.mark.parametrize("samples", [0, -1, 1.5, True])
def test_bad_sample_count(samples):
    with pytest.raises(ValueError, match="samples"):
        eot_loss_grad(defended(), images(), images(), samples=samples, seeds=[1, 2])


def test_defended_model_needs_seeds_and_draws_are_checked():
    with pytest.raises(ValueError, match="seeds"):
        eot_loss_grad(defended(), images(), images(), samples=2)
    with pytest.raises(ValueError, match="first_draw"):
        eot_loss_grad(defended(), images(), images(), samples=2, seeds=[1, 2], first_draw=-1)


def test_bad_shapes_and_objective():
    with pytest.raises(ValueError, match="same shape"):
        eot_loss_grad(defended(), images(), images(1), samples=1, seeds=[1, 2])
    with pytest.raises(ValueError, match="objective"):
        eot_loss_grad(defended(), images(), images(), samples=1, objective="psnr", seeds=[1, 2])
