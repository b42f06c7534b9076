"""udcshield.attacks: white-box attacks on image restorers speaking torchattacks' interface.

FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) maximize the distortion of a UDC
restorer's output (Song et al., arXiv 2402.13629) within an L-infinity budget in the [0, 1] domain.
"""

from udcshield.attacks.base import ImageAttack, check_images, project_linf, representable_budget
from udcshield.attacks.fgsm import FGSM
from udcshield.attacks.objectives import OBJECTIVES, distortion
from udcshield.attacks.pgd import PGD
from udcshield.attacks.registry import attack_kwargs, create_attack, list_attacks, register_attack

__all__ = [
    "FGSM",
    "OBJECTIVES",
    "PGD",
    "ImageAttack",
    "attack_kwargs",
    "check_images",
    "create_attack",
    "distortion",
    "list_attacks",
    "project_linf",
    "register_attack",
    "representable_budget",
]
