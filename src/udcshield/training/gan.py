"""Adversarial (GAN) loss for restorers: a PatchGAN discriminator trained alongside, least-squares objective.

Song et al. (arXiv 2402.13629) fine-tune some restorers with "L2 + VGG-19 perceptual + adversarial loss";
the adversarial term is the usual image-restoration GAN loss (a discriminator learns to tell restored
images from ground truth, the restorer learns to fool it). Here:

* discriminator: PatchGAN (Isola et al., "Image-to-Image Translation with Conditional Adversarial
  Networks", CVPR 2017): strided 4x4 convolutions with LeakyReLU(0.2) and a 3x3 convolution to one
  realness score per patch; no normalization layers (nothing random, nothing batch-dependent); weights
  N(0, 0.02) as in that paper, drawn from an explicit generator;
* objective: least squares (LSGAN, Mao et al., ICCV 2017): the discriminator minimizes
  0.5 E[(D(y) - 1)^2] + 0.5 E[D(f(x))^2], the restorer minimizes 0.5 E[(D(f(x)) - 1)^2];
* schedule: every call of :class:`GANLoss` first takes one Adam step of the discriminator on that call's
  (ground truth, detached restored output), then returns the restorer's term computed with the updated
  discriminator (alternating updates, Goodfellow et al., NeurIPS 2014, with k = 1 discriminator step per
  call). The returned term carries gradients to the restorer only (it uses a frozen copy of the
  discriminator's weights, so several terms can be summed before one backward).

Not to be confused with adversarial *examples* (``finetune.adversarial_weight``, :mod:`udcshield.training.robust`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["PatchDiscriminator", "GANLoss"]


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017). (B, 3, H, W) in [0, 1] → (B, 1, ceil(H / 2^L), ceil(W / 2^L))
    unbounded realness scores, L = ``layers`` strided convolutions of widths ``channels * 2^i``."""

    def __init__(self, channels: int = 32, layers: int = 3, *, generator: torch.Generator) -> None:
        super().__init__()
        if channels < 1 or layers < 1:
            raise ValueError(f"PatchDiscriminator needs channels >= 1 and layers >= 1, got {channels}, {layers}")
        blocks: list[nn.Module] = []
        width_in = 3
        for i in range(layers):
            width = channels * 2**i
            blocks += [nn.Conv2d(width_in, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            width_in = width
        blocks.append(nn.Conv2d(width_in, 1, 3, padding=1))
        self.net = nn.Sequential(*blocks)
        with torch.no_grad():
            for module in self.net:
                if isinstance(module, nn.Conv2d):
                    module.weight.copy_(0.02 * torch.randn(module.weight.shape, generator=generator))
                    module.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Patch scores for ``images`` (B, 3, H, W); larger means "looks like ground truth"."""
        return self.net(images * 2.0 - 1.0)


class GANLoss:
    """The restorer's LSGAN term against a :class:`PatchDiscriminator` that trains on every call.

    Args:
        discriminator: moved to the device of the first ``output`` it sees.
        lr: Adam learning rate of the discriminator (betas 0.5, 0.999 as in Isola et al. 2017).

    ``discriminator_losses`` keeps the discriminator's loss of every call (for logs and tests).
    """

    def __init__(self, discriminator: PatchDiscriminator, lr: float = 1e-4) -> None:
        if not lr > 0:
            raise ValueError(f"GANLoss lr must be > 0, got {lr!r}")
        self.discriminator = discriminator
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.discriminator_losses: list[float] = []

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One discriminator step on (``target`` real, ``output`` fake), then the restorer's term
        0.5 mean((D(output) - 1)^2), a scalar >= 0 with gradients to ``output`` only.

        ``output``, ``target``: (B, 3, H, W) restored images and ground truth in [0, 1].
        Raises FloatingPointError when the discriminator's loss is NaN/inf.
        """
        if output.shape != target.shape:
            raise ValueError(f"GANLoss: output {tuple(output.shape)} and target {tuple(target.shape)} differ")
        disc = self.discriminator.to(output.device).train()
        with torch.enable_grad():
            d_loss = 0.5 * ((disc(target.detach()) - 1.0).square().mean() + disc(output.detach()).square().mean())
            value = float(d_loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"GAN discriminator loss is {value} at call {len(self.discriminator_losses) + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.discriminator_losses.append(value)
        # The restorer's term sees a frozen copy of the updated weights: no gradient reaches the
        # discriminator, and a later call's in-place update cannot invalidate this term's backward.
        frozen = {name: p.detach().clone() for name, p in disc.named_parameters()}
        return 0.5 * (functional_call(disc, frozen, (output,)) - 1.0).square().mean()
