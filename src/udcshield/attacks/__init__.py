"""udcshield.attacks: attacks on image restorers speaking torchattacks' interface.

White-box (registry names): FGSM "fgsm" (Goodfellow et al. 2015), PGD "pgd" and PGD-L2 "pgd_l2" (Madry et al.
2018), Auto-PGD "apgd" and "apgd_l2" (Croce & Hein 2020), BIM "bim" (Kurakin et al. 2017), MI-FGSM "mifgsm"
(Dong et al. 2018), C&W-L2 "cw" (Carlini & Wagner 2017) and LPIPS-guided PGD "lpips_pgd" (LPIPS: Zhang et al.
2018). Black-box through a counted :class:`QueryOracle`: SimBA "simba" (Guo et al. 2019) and Square "square"
(Andriushchenko et al. 2020). Functions: :func:`universal_perturbation` / :func:`apply_universal` (universal
perturbations) and :func:`transfer_attack` with :class:`EnsembleModel` (transfer from surrogates). All
maximize the distortion of a UDC restorer's output (Song et al., arXiv 2402.13629) in the [0, 1] domain.

Budgets (integers in units of 1/256) become radii through :mod:`udcshield.attacks.budget`, from the threat
model each attack declares (``threat_norm``, ``budget_mode``; looked up by name in
:mod:`udcshield.attacks.registry`). torchattacks is not required: the attacks speak its interface through
:class:`ImageAttack`.
"""

from udcshield.attacks.apgd import APGD, APGDL2
from udcshield.attacks.base import ImageAttack, check_images, project_linf, representable_budget
from udcshield.attacks.quantize import quantize_linf
from udcshield.attacks.bim import BIM
from udcshield.attacks.budget import BUDGET_UNIT, budget_to_linf, check_budget
from udcshield.attacks.cw import CW, CWL2
from udcshield.attacks.fgsm import FGSM
from udcshield.attacks.lpips import LPIPS
from udcshield.attacks.lpips_attack import LPIPSPGD
from udcshield.attacks.mifgsm import MIFGSM
from udcshield.attacks.objectives import OBJECTIVES, TARGETED, UNTARGETED, ClampedOutput, distortion
from udcshield.attacks.oracle import QueryBudgetExceeded, QueryOracle
from udcshield.attacks.pgd import PGD
from udcshield.attacks.pgd_l2 import PGDL2, project_l2
from udcshield.attacks.registry import (
    attack_class,
    attack_constructor_eps,
    attack_kwargs,
    budget_mode,
    budget_radius,
    create_attack,
    list_attacks,
    register_attack,
    threat_model,
    threat_norm,
)
from udcshield.attacks.simba import SimBA
from udcshield.attacks.square import Square
from udcshield.attacks.transfer import EnsembleModel, transfer_attack
from udcshield.attacks.universal import apply_universal, universal_perturbation

__all__ = [
    "APGD",
    "APGDL2",
    "BIM",
    "BUDGET_UNIT",
    "CW",
    "CWL2",
    "FGSM",
    "LPIPS",
    "LPIPSPGD",
    "MIFGSM",
    "OBJECTIVES",
    "PGD",
    "PGDL2",
    "TARGETED",
    "UNTARGETED",
    "EnsembleModel",
    "ClampedOutput",
    "ImageAttack",
    "QueryBudgetExceeded",
    "QueryOracle",
    "SimBA",
    "Square",
    "apply_universal",
    "attack_class",
    "attack_constructor_eps",
    "attack_kwargs",
    "budget_mode",
    "budget_radius",
    "budget_to_linf",
    "check_budget",
    "check_images",
    "create_attack",
    "distortion",
    "list_attacks",
    "project_l2",
    "project_linf",
    "quantize_linf",
    "register_attack",
    "representable_budget",
    "threat_model",
    "threat_norm",
    "transfer_attack",
    "universal_perturbation",
]
