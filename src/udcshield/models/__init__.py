"""udcshield.models: image restorers, their registry and checkpoint folders.

Every restorer maps a tone-mapped UDC batch (B, 3, H, W) in [0, 1] to a restored batch of the same
shape. Importing this package registers the built-in restorers.
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

__all__ = [
    "ResUNet",
    "check_image_batch",
    "create_restorer",
    "list_restorers",
    "load_checkpoint",
    "read_checkpoint_config",
    "register_restorer",
    "save_checkpoint",
    "init_from_generator",
]
