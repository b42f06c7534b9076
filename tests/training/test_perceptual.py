import pytest
import torch
from safetensors.torch import save_file

from udcshield.config import ConfigError, params_from_dict
from udcshield.training.perceptual import PerceptualLoss, VGG19Features, restoration_loss


@pytest.fixture()
def weights(tmp_path):
    torch.manual_seed(0)
    model = VGG19Features()
    path = tmp_path / "vgg19.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_taps_shapes_and_loss_properties(weights):
    feats = VGG19Features.from_file(weights)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = feats(x)
    assert out["relu3_3"].shape == (2, 256, 8, 8) and out["relu4_2"].shape == (2, 512, 4, 4)
    loss = PerceptualLoss(feats)
    assert float(loss(x, x)) == 0.0
    y = (x + 0.1).clamp(0, 1).requires_grad_(True)
    value = loss(y, x)
    value.backward()
    assert float(value.detach()) > 0 and y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in feats.parameters())


def test_combined_loss_and_clear_errors(weights, tmp_path):
    fn = restoration_loss("l2", 0.5, str(weights))
    x = torch.rand(1, 3, 16, 16)
    assert float(fn(x, x)) == 0.0 and float(fn(x, 1 - x)) > float(torch.mean((x - (1 - x)) ** 2))
    assert restoration_loss("l1") == "l1"
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        VGG19Features.from_file(tmp_path / "absent.safetensors")
    (tmp_path / "vgg.pth").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="never a pickle"):
        VGG19Features.from_file(tmp_path / "vgg.pth")
    with pytest.raises(ConfigError, match="vgg_weights_path"):
        params_from_dict({"train": {"perceptual_weight": 0.1}})
