"""LPIPS perceptual distance, AlexNet variant (Zhang et al., CVPR 2018), loaded from local weights only.

The metric compares unit-normalized activations of five AlexNet conv layers (Krizhevsky et al. 2012):
d(a, b) = sum_l mean_{h,w} sum_k w_{l,k} (n_l(a) - n_l(b))_{k,h,w}^2, with n_l the channel-normalized
features of layer l and w_l >= 0 learned per-channel weights (1 x 1 convolutions). No weights are ever
downloaded: :meth:`LPIPS.from_file` reads a local safetensors file whose keys follow
the reference implementation's module names, so a converted ``lpips.LPIPS(net="alex")`` state dict loads
as is::

    net.slice1.0.{weight,bias}   conv1  3 -> 64,   11 x 11, stride 4, padding 2
    net.slice2.3.{weight,bias}   conv2  64 -> 192,  5 x 5,  padding 2   (after 3 x 3 / 2 max-pool)
    net.slice3.6.{weight,bias}   conv3  192 -> 384, 3 x 3,  padding 1   (after 3 x 3 / 2 max-pool)
    net.slice4.8.{weight,bias}   conv4  384 -> 256, 3 x 3,  padding 1
    net.slice5.10.{weight,bias}  conv5  256 -> 256, 3 x 3,  padding 1
    lin{0..4}.model.1.weight     1 x C_l x 1 x 1, non-negative
    scaling_layer.{shift,scale}  optional; must equal the fixed input normalization if present
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

CHANNELS: tuple[int, ...] = (64, 192, 384, 256, 256)
MIN_SIZE = 31  # smallest height/width that survives conv1 and both max-pools
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _slices() -> list[nn.Sequential]:
    """AlexNet's conv trunk split after each ReLU, keeping torchvision's layer indices for key names."""
    layers: list[tuple[int, nn.Module]] = [
        (0, nn.Conv2d(3, 64, 11, stride=4, padding=2)), (1, nn.ReLU()),
        (2, nn.MaxPool2d(3, 2)), (3, nn.Conv2d(64, 192, 5, padding=2)), (4, nn.ReLU()),
        (5, nn.MaxPool2d(3, 2)), (6, nn.Conv2d(192, 384, 3, padding=1)), (7, nn.ReLU()),
        (8, nn.Conv2d(384, 256, 3, padding=1)), (9, nn.ReLU()),
        (10, nn.Conv2d(256, 256, 3, padding=1)), (11, nn.ReLU()),
    ]
    bounds = [(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)]
    return [nn.Sequential(OrderedDict((str(i), m) for i, m in layers[a:b])) for a, b in bounds]


class _AlexTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        for k, s in enumerate(_slices(), start=1):
            self.add_module(f"slice{k}", s)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            feats.append(x)
        return feats


class _Linear(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(OrderedDict([("0", nn.Identity()),
                                                ("1", nn.Conv2d(channels, 1, 1, bias=False))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _normalize(feat: torch.Tensor) -> torch.Tensor:
    """Unit-normalize along channels; safe gradient where a feature vector is all zero."""
    return feat / (torch.sqrt(feat.pow(2).sum(dim=1, keepdim=True) + 1e-20) + 1e-10)


class LPIPS(nn.Module):
    """LPIPS distance with an AlexNet trunk (Zhang et al., "The Unreasonable Effectiveness of Deep
    Features as a Perceptual Metric", CVPR 2018).

    Build with :meth:`from_file` (a local safetensors file; nothing is downloaded) or, in tests only,
    :meth:`random_for_tests`. Parameters are frozen (``requires_grad=False``) and the module is in eval
    mode; gradients flow to the inputs, so attacks can ascend the distance.

    Call: ``d = lpips(a, b)`` with a, b of shape B x 3 x H x W in [0, 1] (mapped to [-1, 1] internally),
    H, W >= 31 -> d of shape (B,), >= 0 (non-negative weights), 0 for identical images, symmetric.
    """

    def __init__(self, state_dict: dict[str, torch.Tensor], source: str = "<state dict>") -> None:
        super().__init__()
        self.net = _AlexTrunk()
        for i, ch in enumerate(CHANNELS):
            self.add_module(f"lin{i}", _Linear(ch))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.source = source
        self._load(state_dict, source)
        self.requires_grad_(False)
        self.eval()

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LPIPS:
        """Load LPIPS(AlexNet) weights from a local safetensors file at ``path``.

        Raises FileNotFoundError naming the path when it does not exist (weights are never
        downloaded), ValueError for a file that is not safetensors or whose keys/shapes do not fit.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(
                f"LPIPS weights not found at {str(p)!r}: LPIPS needs a local safetensors file with the "
                "AlexNet trunk and linear-layer weights (no weights are downloaded); convert the "
                "reference lpips 'alex' weights to safetensors and pass that path")
        try:
            state = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{str(p)!r} is not a readable safetensors file: {err}") from None
        return cls(state, source=str(p))

    @classmethod
    def random_for_tests(cls, seed: int = 0) -> LPIPS:
        """Stand-in LPIPS with random weights drawn from ``torch.Generator().manual_seed(seed)``.

        For testing the mechanics only: the distances mean nothing perceptually.
        """
        g = torch.Generator().manual_seed(seed)
        state: dict[str, torch.Tensor] = {}
        for name, module in cls._skeleton().named_modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                w = torch.randn(module.weight.shape, generator=g) * math.sqrt(2.0 / fan_in)
                if name.startswith("lin"):
                    state[f"{name}.weight"] = w.abs() / module.in_channels
                else:
                    state[f"{name}.weight"] = w
                    state[f"{name}.bias"] = 0.01 * torch.randn(module.out_channels, generator=g)
        return cls(state, source=f"random_for_tests(seed={seed})")

    @staticmethod
    def _skeleton() -> nn.Module:
        skel = nn.Module()
        skel.add_module("net", _AlexTrunk())
        for i, ch in enumerate(CHANNELS):
            skel.add_module(f"lin{i}", _Linear(ch))
        return skel

    def _load(self, state: dict[str, torch.Tensor], source: str) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"LPIPS weights from {source} must be a dict of tensors")
        state = dict(state)
        for key, value in (("scaling_layer.shift", _SHIFT), ("scaling_layer.scale", _SCALE)):
            if key in state:
                given = state.pop(key).double().flatten()
                if given.shape != (3,) or not torch.allclose(given, torch.tensor(value, dtype=torch.float64),
                                                             atol=1e-6):
                    raise ValueError(f"{key} in {source} differs from the LPIPS input normalization {value}")
        expected = {k: v.shape for k, v in self.state_dict().items()}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"LPIPS weights in {source} do not fit: missing {missing}, unexpected {unexpected}")
        for key, shape in expected.items():
            t = state[key]
            if not isinstance(t, torch.Tensor) or t.shape != shape:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"LPIPS weight {key} in {source} has shape {got}, expected {tuple(shape)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"LPIPS weight {key} in {source} is not finite")
            if key.startswith("lin") and bool((t < 0).any()):
                raise ValueError(f"LPIPS linear weight {key} in {source} has negative entries")
        self.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)

    # -- metric -----------------------------------------------------------------------------------

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS distance (B,) between a and b (B x 3 x H x W in [0, 1], H, W >= 31)."""
        for name, t in (("a", a), ("b", b)):
            if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != 3:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"LPIPS input {name} must have shape B x 3 x H x W, got {shape}")
            if min(t.shape[-2:]) < MIN_SIZE:
                raise ValueError(f"LPIPS input {name} must be at least {MIN_SIZE} x {MIN_SIZE}, "
                                 f"got {tuple(t.shape[-2:])}")
        if a.shape != b.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        shift = self.shift.to(a.dtype)
        scale = self.scale.to(a.dtype)
        fa = self.net((2 * a - 1 - shift) / scale)
        fb = self.net((2 * b - 1 - shift) / scale)
        total = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for i, (xa, xb) in enumerate(zip(fa, fb)):
            diff = (_normalize(xa) - _normalize(xb)).pow(2)
            total = total + getattr(self, f"lin{i}")(diff).mean(dim=(1, 2, 3))
        return total
