import pytest
import torch
from torch import nn

from udcshield.attacks import FGSM, PGD, create_attack, list_attacks


def test_create_and_list():
    assert list_attacks() == ["apgd", "apgd_l2", "bim", "cw", "cw_l2", "fgsm", "lpips_pgd", "mifgsm", "pgd", "pgd_l2", "simba",
                              "square"]
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


def test_importable_and_usable_without_torchattacks():
    """torchattacks is not a dependency: the attacks (and what imports them) work with it unimportable."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torchattacks'] = None\n"
        "import torch, udcshield.attacks, udcshield.models, udcshield.defenses\n"
        "from udcshield.attacks import PGD, budget_to_linf\n"
        "atk = PGD(torch.nn.Conv2d(3, 3, 1), eps=budget_to_linf(2), steps=2)\n"
        "x = torch.rand(1, 3, 8, 8)\n"
        "assert float((atk(x, x.flip(-1), seeds=[0]) - x).abs().max()) <= budget_to_linf(2)\n"
        "assert 'torchattacks' not in {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_label_targeted_modes_are_refused_and_settings_reach_nested_attacks():
    atk = create_attack("pgd", nn.Conv2d(3, 3, 1), eps=1 / 256, steps=1)
    for method in (atk.set_mode_targeted_by_label, atk.set_mode_targeted_random, atk.set_mode_targeted_least_likely):
        with pytest.raises(ValueError, match="targeted_mse"):
            method()
    with pytest.raises(ValueError, match="targeted_mse"):
        atk.set_mode_targeted_by_function(lambda x, y: y)
    atk.set_mode_default()
    assert atk.get_mode() == "default" and not atk.targeted
    inner = create_attack("fgsm", nn.Identity(), eps=1 / 256)
    atk.helper = inner
    atk.set_device("cpu")
    atk.set_model_training_mode(model_training=True, dropout_training=True)
    assert inner.device == "cpu" and inner._model_training and inner._dropout_training
    assert inner.device is atk.device
    assert create_attack("fgsm", nn.Identity(), eps=1 / 256).device is None  # parameter-free: follows the inputs
