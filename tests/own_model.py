"""A user's own restorer, defined outside the package: a tiny module written into a temporary folder and put on
``sys.path``, so tests can name it as ``"<module>:make_net"`` like a user's ``mypkg.nets:make_net``."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

SOURCE = '''
from torch import nn


class OwnNet(nn.Module):
    """x + conv(tanh(conv(x))): (B, 3, H, W) -> same shape."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.inner = nn.Conv2d(3, width, 3, padding=1)
        self.outer = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x):
        return x + self.outer(self.inner(x).tanh())


def make_net(width: int = 4) -> nn.Module:
    """The factory a user names in params.yaml."""
    return OwnNet(width=width)


def unannotated(width: int = 4):
    return OwnNet(width=width)


def side_effect(path: str = "marker"):
    open(path, "w").write("called")
    return OwnNet()
'''


def write_own_module(folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the module into ``folder``, put ``folder`` on ``sys.path`` and return the module's (unique) name."""
    name = f"own_nets_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def given_weights(width: int = 4, seed: int = 7) -> dict[str, torch.Tensor]:
    """A state dict for ``OwnNet(width)``: seeded values far from any default initialisation."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {"inner.weight": (width, 3, 3, 3), "inner.bias": (width,), "outer.weight": (3, width, 3, 3),
              "outer.bias": (3,)}
    return {key: 0.3 * torch.randn(shape, generator=gen) for key, shape in shapes.items()}


def write_weights(path: Path, state_dict: dict[str, torch.Tensor]) -> Path:
    """``state_dict`` as ``path``: safetensors for ``.safetensors``, ``torch.save`` otherwise."""
    if path.suffix == ".safetensors":
        save_file(state_dict, str(path))
    else:
        torch.save(state_dict, path)
    return path


def assert_state_equal(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Every tensor of ``model`` equals the one of ``state_dict`` exactly, and no key is missing or extra."""
    actual = model.state_dict()
    assert sorted(actual) == sorted(state_dict)
    for key, value in state_dict.items():
        torch.testing.assert_close(actual[key].cpu(), value, rtol=0, atol=0)
