import pytest
import torch

from udcshield.attacks import distortion


def test_mse_and_l1_per_image():
    out = torch.zeros(2, 3, 4, 4)
    ref = torch.zeros(2, 3, 4, 4)
    ref[1] = 0.5
    assert torch.allclose(distortion(out, ref, "mse"), torch.tensor([0.0, 0.25]))
    assert torch.allclose(distortion(out, ref, "l1"), torch.tensor([0.0, 0.5]))
    assert distortion(out, ref).shape == (2,)


def test_bad_arguments():
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="objective"):
        distortion(x, x, "lpips")
    with pytest.raises(ValueError, match="shape"):
        distortion(x, torch.zeros(1, 3, 4, 5))
