"""udcshield.defenses: diffusion purification of (attacked) UDC inputs and adaptive attacks on it.

Images are (B, 3, H, W) in [0, 1]; see :mod:`udcshield.defenses.purifier`. The defended system
(purify → restore, :class:`DefendedRestorer`) and the attacks that see it (:class:`AdaptivePGD`: BPDA,
EOT, full checkpointed gradients) follow DESIGN.md §5; DDIM (:func:`purify_ddim`) and GDMP input
guidance (:func:`guided_purify`) are alternative reverse chains.
"""

from udcshield.defenses.purifier import DiffusionPurifier, load_purifier, save_purifier, strided_timesteps
from udcshield.defenses.bpda import BlockedGradientError, bpda, gradient_blocked
from udcshield.defenses.ddim import ddim_step, purify_ddim
from udcshield.defenses.guidance import guided_purify
from udcshield.defenses.defended import GRADIENT_MODES, DefendedRestorer, default_generator_factory
from udcshield.defenses.eot import eot_loss_grad
from udcshield.defenses.adaptive import AdaptivePGD

__all__ = [
    "AdaptivePGD",
    "BlockedGradientError",
    "DefendedRestorer",
    "DiffusionPurifier",
    "GRADIENT_MODES",
    "bpda",
    "ddim_step",
    "default_generator_factory",
    "eot_loss_grad",
    "gradient_blocked",
    "guided_purify",
    "load_purifier",
    "purify_ddim",
    "save_purifier",
    "strided_timesteps",
]
