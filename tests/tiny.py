"""Small shared builders for the tests: seeded generators and images, tiny models and purifiers."""

import torch
from torch import nn

from udcshield.defenses import DefendedRestorer, DiffusionPurifier
from udcshield.seeding import seeded_init


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(b=2, h=16, w=16, seed=0):
    return torch.rand(b, 3, h, w, generator=gen(seed))


def mid_images(n: int, seed: int, h: int = 8, w: int | None = None) -> torch.Tensor:
    """Images in [0.25, 0.75], away from the [0, 1] boundary; square unless ``w`` is given."""
    return 0.25 + 0.5 * torch.rand(n, 3, h, h if w is None else w, generator=gen(seed))


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 3, 3, padding=1),
                         nn.Sigmoid()).eval()


class NoGradCounter(nn.Module):
    """Counts evaluated rows; raises if ever called with gradients enabled."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.requires_grad:
            raise AssertionError("black-box attack evaluated the model with gradients enabled")
        self.rows += x.shape[0]
        return self.inner(x)


def tiny_purifier(**kwargs) -> DiffusionPurifier:
    return DiffusionPurifier(block_out_channels=(8, 16), num_train_timesteps=100, generator=gen(0), **kwargs).eval()


class TinyRestorer(nn.Module):
    """x + 0.1 * conv(tanh(conv(x))), with an optional (parameter-free) dropout between the convolutions."""

    def __init__(self, dropout: float | None = None) -> None:
        super().__init__()
        with seeded_init(0, "test/tiny-restorer"):
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 3, 3, padding=1)
            if dropout is not None:
                self.drop = nn.Dropout(dropout)

    def forward(self, x):
        h = torch.tanh(self.conv1(x))
        if hasattr(self, "drop"):
            h = self.drop(h)
        return x + 0.1 * self.conv2(h)


def defended(restorer: nn.Module | None = None, **kwargs) -> DefendedRestorer:
    """Tiny purifier + restorer as one DefendedRestorer in eval mode; ``t_star`` defaults to 5."""
    kwargs.setdefault("t_star", 5)
    return DefendedRestorer(tiny_purifier(), TinyRestorer() if restorer is None else restorer, **kwargs).eval()


class FreshDraws(nn.Module):
    """A DefendedRestorer called with ``NoiseDraw(seeds, k)`` at its k-th call (k = 0, 1, ...): fresh,
    reproducible purification noise per forward pass, for attacks that call ``model(x)`` only."""

    def __init__(self, model: DefendedRestorer, seeds) -> None:
        super().__init__()
        from udcshield.defenses import DrawSequence

        self.model = model
        self.draws = DrawSequence(seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, next(self.draws))
