"""VGG-19 perceptual loss (Johnson et al., ECCV 2016), as used to fine-tune UDC restorers by Song et al.
(arXiv 2402.13629): distances between relu3_3 and relu4_2 features of an ImageNet VGG-19 (Simonyan &
Zisserman, ICLR 2015).

No weights are downloaded: :meth:`VGG19Features.from_file` reads a local safetensors file whose keys follow
the common ``features.<index>.weight`` / ``.bias`` layout of VGG-19's convolutional part (indices 0 ... 21),
so a converted ImageNet checkpoint loads as is. Never unpickles.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from udcshield.training.gan import GANLoss
from udcshield.training.restorer import resolve_loss

# (index in the features stack, in_channels, out_channels) of VGG-19's convolutions up to conv4_2
_CONVS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
          (16, 256, 256), (19, 256, 512), (21, 512, 512))
_POOL_BEFORE = (5, 10, 19)
TAPS = {"relu3_3": 14, "relu4_2": 21}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """VGG-19 convolutions up to relu4_2; ``forward(x)`` returns {tap: feature map} for ``TAPS``.

    Input (B, 3, H, W) in [0, 1] (ImageNet normalisation is applied inside). Parameters are frozen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.ModuleDict({str(i): nn.Conv2d(cin, cout, 3, padding=1) for i, cin, cout in _CONVS})
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | Path) -> VGG19Features:
        """Load weights from a local safetensors file (keys ``features.<i>.weight``/``.bias``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VGG-19 weights not found at {path}; the perceptual loss needs a local "
                                    "safetensors file (nothing is downloaded). Set train.perceptual_weight: 0 "
                                    "to train without it.")
        if path.suffix != ".safetensors":
            raise ValueError(f"VGG-19 weights must be a .safetensors file (never a pickle), got {path.name}")
        model = cls()
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            with open(path, "rb") as handle:
                head = handle.read(2)
            pickled = head[:1] == b"\x80" or head == b"PK"
            hint = " (it looks like a pickle / torch.save file; never unpickled)" if pickled else ""
            raise ValueError(f"VGG-19 weights {path} are not a valid safetensors file{hint}: {err}") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing:
            raise ValueError(f"{path}: missing VGG-19 weights {sorted(missing)[:4]} ...")
        return model.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = (x - self.mean) / self.std
        out = {}
        for index, _, _ in _CONVS:
            if index in _POOL_BEFORE:
                h = nn.functional.max_pool2d(h, 2)
            h = torch.relu(self.features[str(index)](h))
            for name, tap in TAPS.items():
                if tap == index:
                    out[name] = h
        return out


class PerceptualLoss(nn.Module):
    """Mean squared distance of VGG-19 relu3_3 and relu4_2 features, summed over the taps: scalar >= 0."""

    def __init__(self, features: VGG19Features) -> None:
        super().__init__()
        self.features = features

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fo, ft = self.features(output), self.features(target)
        return sum(nn.functional.mse_loss(fo[k], ft[k]) for k in TAPS)


def restoration_loss(kind: str, perceptual_weight: float = 0.0, vgg_weights_path: str | None = None,
                     gan: GANLoss | None = None, gan_weight: float = 0.0):
    """Pixel loss ("l2" or "l1") + ``perceptual_weight`` x :class:`PerceptualLoss` + ``gan_weight`` x ``gan``
    (the LSGAN term of :class:`udcshield.training.gan.GANLoss`), the study's fine-tuning loss (Song et al.,
    arXiv 2402.13629: L2 + VGG-19 perceptual + adversarial loss for some models).

    Returns the string ``kind`` when neither extra term is used (the training loop's built-in losses),
    else a callable ``(output, target) -> scalar`` on (B, 3, H, W) images in [0, 1].
    """
    pixel = resolve_loss(kind)  # validates the name: ValueError for anything but "l2" / "l1"
    if gan_weight < 0 or perceptual_weight < 0:
        raise ValueError(f"loss weights must be >= 0, got perceptual {perceptual_weight!r}, gan {gan_weight!r}")
    if gan_weight > 0 and gan is None:
        raise ValueError("gan_weight > 0 needs a GANLoss (its discriminator trains alongside)")
    if perceptual_weight <= 0 and gan_weight <= 0:
        return kind
    perceptual = None
    if perceptual_weight > 0:
        if not vgg_weights_path:
            raise ValueError("perceptual_weight > 0 needs vgg_weights_path (a local VGG-19 safetensors file)")
        perceptual = PerceptualLoss(VGG19Features.from_file(vgg_weights_path))

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = pixel(output, target)
        if perceptual is not None:
            perceptual.to(output.device)
            total = total + perceptual_weight * perceptual(output, target)
        if gan_weight > 0:
            total = total + gan_weight * gan(output, target)
        return total

    return loss
