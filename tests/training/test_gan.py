"""The adversarial (GAN) loss: PatchGAN discriminator, LSGAN updates, composition with the pixel loss."""

from __future__ import annotations

import pytest
import torch

from udcshield.models import create_restorer
from udcshield.training.gan import GANLoss, PatchDiscriminator
from udcshield.training.perceptual import restoration_loss
from udcshield.training.restorer import train_restorer


def disc(seed: int = 0) -> PatchDiscriminator:
    return PatchDiscriminator(channels=8, layers=2, generator=torch.Generator().manual_seed(seed))


def images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_discriminator_shape_and_seeded_init():
    d = disc()
    assert d(images(2, 0)).shape == (2, 1, 4, 4)
    assert all(torch.equal(a, b) for a, b in zip(d.state_dict().values(), disc().state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(d.state_dict().values(), disc(1).state_dict().values()))
    with pytest.raises(ValueError, match="layers"):
        PatchDiscriminator(layers=0, generator=torch.Generator())


def test_each_call_trains_the_discriminator_and_grads_reach_only_the_output():
    gan = GANLoss(disc(), lr=1e-2)
    real, fake = images(4, 1), (images(4, 2) * 0.2).requires_grad_()
    before = [p.detach().clone() for p in gan.discriminator.parameters()]
    term = gan(fake, real)
    assert term.ndim == 0 and float(term.detach()) >= 0
    assert any(not torch.equal(a, p) for a, p in zip(before, gan.discriminator.parameters()))  # D took a step
    term.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in gan.discriminator.parameters())  # the restorer's term left D alone
    assert all(p.requires_grad for p in gan.discriminator.parameters())


def test_discriminator_learns_to_separate_real_from_fake():
    gan = GANLoss(disc(), lr=2e-3)
    real, fake = images(8, 3), images(8, 4) * 0.1  # dark fakes: easy to tell apart
    for _ in range(60):
        gan(fake, real)
    assert gan.discriminator_losses[-1] < 0.5 * gan.discriminator_losses[0]
    with torch.no_grad():
        assert gan.discriminator(real).mean() > gan.discriminator(fake).mean() + 0.3


def test_restoration_loss_composes_pixel_and_gan_terms():
    gan = GANLoss(disc(), lr=1e-4)
    loss = restoration_loss("l2", gan=gan, gan_weight=0.5)
    out, tgt = images(2, 5), images(2, 6)
    value = loss(out, tgt)
    assert len(gan.discriminator_losses) == 1
    pixel = torch.nn.functional.mse_loss(out, tgt)
    expected = pixel + 0.5 * 0.5 * (gan.discriminator(out) - 1).square().mean()
    torch.testing.assert_close(value, expected.detach())
    assert restoration_loss("l1") == "l1"
    with pytest.raises(ValueError, match="needs a GANLoss"):
        restoration_loss("l2", gan_weight=0.1)
    with pytest.raises(ValueError, match="unknown loss 'huber'"):
        restoration_loss("huber")


def test_training_with_the_gan_term_is_deterministic_and_rejects_nan():
    def run() -> dict:
        model = create_restorer("resunet", generator=torch.Generator().manual_seed(0), base_channels=4, depth=1)
        gan = GANLoss(disc(), lr=1e-4)
        history = train_restorer(model, images(4, 7), images(4, 8), iterations=3, batch_size=2, crop_size=16,
                                 lr=1e-3, lr_min=1e-4, loss=restoration_loss("l2", gan=gan, gan_weight=0.1),
                                 generator=torch.Generator().manual_seed(1), log_every=1)
        assert len(gan.discriminator_losses) == 3
        return {"history": [row["loss"] for row in history], "weights": model.state_dict(),
                "disc": gan.discriminator.state_dict()}

    a, b = run(), run()
    assert a["history"] == b["history"]
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert all(torch.equal(a["disc"][k], b["disc"][k]) for k in a["disc"])
    gan = GANLoss(disc())
    with pytest.raises(FloatingPointError, match="discriminator"):
        gan(torch.full((1, 3, 16, 16), float("nan")), images(1, 9))
