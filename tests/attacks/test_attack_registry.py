import pytest
import torch
from torch import nn

from udcshield.attacks import FGSM, PGD, create_attack, list_attacks


def test_create_and_list():
    assert list_attacks() == ["bim", "cw", "fgsm", "lpips_pgd", "mifgsm", "pgd", "pgd_l2", "simba", "square"]
    model = nn.Identity()
    atk = create_attack("pgd", model, eps=2 / 256, steps=3)
    assert isinstance(atk, PGD) and atk.steps == 3 and atk.alpha == pytest.approx(2.5 * (2 / 256) / 3)
    assert isinstance(create_attack("FGSM", model, eps=1 / 256), FGSM)


def test_errors_list_valid_options():
    with pytest.raises(ValueError, match=r"unknown attack 'deepfool'.*fgsm.*pgd"):
        create_attack("deepfool", nn.Identity())
    with pytest.raises(ValueError, match=r"stepz.*valid.*steps"):
        create_attack("pgd", nn.Identity(), stepz=3)


def test_torchattacks_interface():
    atk = create_attack("pgd", nn.Conv2d(3, 3, 1), eps=1 / 256, steps=1)
    atk.set_device(torch.device("cpu"))
    atk.set_model_training_mode(model_training=False)
    assert "PGD" in repr(atk)
    with pytest.raises(ValueError):
        atk.set_mode_targeted_by_label(quiet=True)
