"""Cross-checks of our FGSM, PGD, BIM and MI-FGSM against the real torchattacks (Kim, arXiv 2010.01950).

torchattacks attacks classifiers, ours attack restorers. A restorer f with ground truth y becomes a
two-logit classifier ``logits(x) = [0, d(x)]`` with ``d(x) = MSE(f(x), y)`` per image, label 0: its
cross-entropy is softplus(d), strictly increasing in d, so grad CE = sigmoid(d) / B * grad d, a positive
per-image factor, and every sign step (FGSM, Goodfellow et al. 2015; PGD, Madry et al. 2018; BIM, Kurakin
et al. 2017) moves the same way. MI-FGSM (Dong et al. 2018) normalizes the gradient per image (torchattacks
by its mean |.|, ours by its L1 norm, n times larger): a positive factor again, so the momentum has the
same signs.

Agreement is exact except for one documented, intended difference: torchattacks clips x +- eps in
float32, which can round to a value whose exact distance to x exceeds eps by part of an ulp; our exact
projection (:func:`udcshield.attacks.project_linf`) moves exactly those elements one ulp toward x. For
inputs on the 2**-24 grid of ``torch.rand`` (and eps = k/256) x +- eps is exact, and the outputs are
bit-identical; for arbitrary float32 inputs they are equal after applying that one-ulp move to
torchattacks' output.

Step conventions differ on purpose, so every comparison passes eps, alpha and steps explicitly to both:
torchattacks' defaults are alpha = 2/255, steps = 10 (PGD, BIM, MI-FGSM) and, for BIM with steps=0,
int(min(255 eps + 4, 1.25 * 255 eps)) (8-bit levels of 1/255, rounded down); ours count budgets in 1/256
(:mod:`udcshield.attacks.budget`): PGD alpha = 2.5 eps / steps, BIM ceil(min(256 eps + 4, 1.25 * 256 eps))
steps of 1/256, MI-FGSM alpha = eps / steps. Random starts cannot be compared (torchattacks draws from the
global RNG, ours from one generator per image seed), so PGD runs with random_start=False in both.
torchattacks returns the last iterate; ours return each image's best by default, so the comparison runs
ours with ``keep_best=False`` (the best-iterate rule is tested in test_best_iterate.py).
"""

import pytest
import torch
from torch import nn

torchattacks = pytest.importorskip("torchattacks")

from udcshield.attacks import BIM, FGSM, MIFGSM, PGD, ImageAttack, budget_to_linf  # noqa: E402
from udcshield.attacks.bim import kurakin_steps  # noqa: E402


class DistortionClassifier(nn.Module):
    """Two logits [0, d(x)] with d the per-image MSE between restorer(x) and the fixed ground truth."""

    def __init__(self, restorer: nn.Module, target: torch.Tensor) -> None:
        super().__init__()
        self.restorer = restorer
        self.register_buffer("target", target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = (self.restorer(x) - self.target).pow(2).flatten(1).mean(dim=1)
        return torch.stack([torch.zeros_like(d), d], dim=1)


def restorer() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 3, 3, padding=1),
                         nn.Sigmoid()).eval()


def on_grid_images(seed: int) -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def off_grid_images(seed: int) -> torch.Tensor:
    """Values with full float32 mantissas (x ** 3), so that x +- eps rounds."""
    return on_grid_images(seed) ** 3


def exact_projection(theirs: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """torchattacks' output with every element outside the exact eps-ball moved one ulp toward x."""
    outside = (theirs.double() - x.double()).abs() > eps
    return torch.where(outside, torch.nextafter(theirs, x), theirs)


def pair(name: str, model: nn.Module, clf: nn.Module, eps: float, steps: int):
    """(ours, theirs) with the same eps, alpha, steps (and decay) and no random start."""
    alpha = eps / 4
    if name == "fgsm":
        return FGSM(model, eps=eps), torchattacks.FGSM(clf, eps=eps)
    if name == "pgd":
        return (PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False, keep_best=False),
                torchattacks.PGD(clf, eps=eps, alpha=alpha, steps=steps, random_start=False))
    if name == "bim":
        return (BIM(model, eps=eps, alpha=alpha, steps=steps, keep_best=False),
                torchattacks.BIM(clf, eps=eps, alpha=alpha, steps=steps))
    return (MIFGSM(model, eps=eps, alpha=alpha, steps=steps, decay=1.0, keep_best=False),
            torchattacks.MIFGSM(clf, eps=eps, alpha=alpha, steps=steps, decay=1.0))


ATTACKS = ["fgsm", "pgd", "bim", "mifgsm"]


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("budget", [1, 3, 8])
def test_bit_identical_on_the_rand_grid(name, budget):
    eps = budget_to_linf(budget)
    model, x, y = restorer(), on_grid_images(1), on_grid_images(2)
    clf = DistortionClassifier(model, y).eval()
    ours, theirs = pair(name, model, clf, eps, steps=6)
    adv_ours = ours(x, y)
    adv_theirs = theirs(x, torch.zeros(x.shape[0], dtype=torch.long))
    assert adv_ours.dtype == adv_theirs.dtype == torch.float32
    assert torch.equal(adv_ours, adv_theirs)
    assert not torch.equal(adv_ours, x)


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("budget", [1, 3, 8])
def test_equal_up_to_the_exact_projection_off_the_grid(name, budget):
    eps = budget_to_linf(budget)
    model, x, y = restorer(), off_grid_images(3), on_grid_images(4)
    clf = DistortionClassifier(model, y).eval()
    ours, theirs = pair(name, model, clf, eps, steps=6)
    adv_ours = ours(x, y)
    adv_theirs = theirs(x, torch.zeros(x.shape[0], dtype=torch.long))
    moved = exact_projection(adv_theirs, x, eps)
    assert not torch.equal(moved, adv_theirs)  # the case this test is about does occur
    assert torch.equal(adv_ours, moved)
    assert float((adv_ours.double() - x.double()).abs().max()) <= eps
    ulp = torch.nextafter(adv_theirs.abs(), torch.full_like(adv_theirs, 2.0)) - adv_theirs.abs()
    assert bool(((adv_ours - adv_theirs).abs() <= ulp).all())  # at most one float32 ulp apart


def test_step_conventions_differ_as_documented():
    model = restorer()
    clf = DistortionClassifier(model, on_grid_images(0)).eval()
    eps = budget_to_linf(8)
    for theirs in (torchattacks.PGD(clf, eps=eps), torchattacks.BIM(clf, eps=eps),
                   torchattacks.MIFGSM(clf, eps=eps)):
        assert theirs.alpha == 2 / 255 and theirs.steps == 10
    assert PGD(model, eps=eps).alpha == 2.5 * eps / 20
    assert MIFGSM(model, eps=eps, steps=10).alpha == eps / 10
    ours_bim = BIM(model, eps=eps)
    assert ours_bim.alpha == budget_to_linf(1) and ours_bim.steps == kurakin_steps(eps) == 10
    for budget in (1, 2, 4, 8, 16):
        e = budget_to_linf(budget)
        theirs_steps = torchattacks.BIM(clf, eps=e, steps=0).steps
        assert theirs_steps == int(min(e * 255 + 4, 1.25 * e * 255))
        assert kurakin_steps(e) >= theirs_steps  # ours: levels of 1/256, rounded up
    assert torchattacks.BIM(clf, eps=eps, steps=0).steps == 9 != kurakin_steps(eps)


def test_normalized_models_agree():
    """set_normalization_used: inputs and outputs normalized, the attack itself in [0, 1], as in torchattacks."""
    model, x, y = restorer(), on_grid_images(5), on_grid_images(6)
    mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]

    class Normalized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.inner(z * 0.5 + 0.5)

    wrapped = Normalized()
    ours = FGSM(wrapped, eps=budget_to_linf(4))
    theirs = torchattacks.FGSM(DistortionClassifier(wrapped, y).eval(), eps=budget_to_linf(4))
    ours.set_normalization_used(mean, std)
    theirs.set_normalization_used(mean, std)
    xn = (x - 0.5) / 0.5
    adv_ours, adv_theirs = ours(xn, y), theirs(xn, torch.zeros(4, dtype=torch.long))
    assert torch.equal(adv_ours, adv_theirs)
    assert ours._normalization_applied is True


def test_interface_methods_exist_in_both():
    model = restorer()
    ours, theirs = PGD(model, eps=budget_to_linf(2), steps=1), torchattacks.PGD(model, eps=budget_to_linf(2))
    for method in ("set_model", "set_device", "set_model_training_mode", "set_normalization_used", "normalize",
                   "inverse_normalize", "get_logits", "get_mode", "set_mode_default", "set_mode_targeted_by_label",
                   "set_mode_targeted_by_function", "set_mode_targeted_random", "set_mode_targeted_least_likely"):
        assert callable(getattr(theirs, method)) and callable(getattr(ours, method)), method
    for attr in ("attack", "model", "model_name", "device", "attack_mode", "targeted", "normalization_used"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert ours.supported_mode == ["default"]  # label-targeted modes do not apply to restorers
    assert not isinstance(ours, torchattacks.attack.Attack) and isinstance(ours, ImageAttack)
    assert repr(ours).startswith("PGD(model_name=Sequential, device=cpu, attack_mode=default, targeted=False, "
                                 "normalization_used=False, eps=")
    assert repr(theirs).startswith("PGD(model_name=Sequential, device=cpu, attack_mode=default, targeted=False, "
                                   "normalization_used=False, eps=")
