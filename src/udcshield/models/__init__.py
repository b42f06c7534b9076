"""udcshield.models: image restorers, their registry and checkpoint folders.

Every restorer maps a tone-mapped UDC batch (B, 3, H, W) in [0, 1] to a restored batch of the same
shape (not clamped). Importing this package registers the built-in restorers: the ResUNet baseline
(Zhou et al. 2021) and the seven UDC restorers of the study (Song et al., arXiv 2402.13629): "discnet",
"uformer", "udcunet", "bnudc", "dwformer", "dagf", "srudc". Each has size presets
(``create_restorer(name, size="paper" | "tiny" | "default")``, see :mod:`udcshield.models.sizes`).
"""

from udcshield.models.checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint
from udcshield.models.registry import (
    check_image_batch,
    create_restorer,
    list_restorers,
    register_restorer,
    init_from_generator,
)
from udcshield.models.unet import ResUNet
from udcshield.models.discnet import DISCNet
from udcshield.models.uformer import Uformer
from udcshield.models.udcunet import UDCUNet
from udcshield.models.bnudc import BNUDC
from udcshield.models.dwformer import DWFormer
from udcshield.models.dagf import DAGF
from udcshield.models.srudc import SRUDC
from udcshield.models.sizes import PAPER_PARAMS, available_sizes, count_parameters

__all__ = [
    "BNUDC",
    "DAGF",
    "DISCNet",
    "DWFormer",
    "PAPER_PARAMS",
    "ResUNet",
    "SRUDC",
    "UDCUNet",
    "Uformer",
    "available_sizes",
    "count_parameters",
    "check_image_batch",
    "create_restorer",
    "list_restorers",
    "load_checkpoint",
    "read_checkpoint_config",
    "register_restorer",
    "save_checkpoint",
    "init_from_generator",
]
