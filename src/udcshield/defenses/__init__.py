"""udcshield.defenses: diffusion purification of (attacked) UDC inputs and adaptive attacks on it.

Images are (B, 3, H, W) in [0, 1]; see :mod:`udcshield.defenses.purifier`. Every reverse chain (DDPM,
Ho et al. 2020; DDIM, Song et al. 2021; GDMP input guidance, Wang et al. 2022) is one
:class:`SamplerConfig` run by :func:`reverse_chain` (DiffPure, Nie et al. 2022); :meth:`DiffusionPurifier.purify`,
:func:`purify_ddim` and :func:`guided_purify` are thin wrappers of it. The defended system (purify →
restore, :class:`DefendedRestorer`, noise passed explicitly as a :class:`NoiseDraw`) and the attacks
that see it (:class:`AdaptivePGD`: BPDA, EOT, full checkpointed gradients; Athalye et al. 2018) are
what adaptive evaluation needs.
"""

from udcshield.defenses.purifier import DiffusionPurifier, load_purifier, save_purifier, strided_timesteps
from udcshield.defenses.bpda import BlockedGradientError, bpda, gradient_blocked
from udcshield.defenses.ddim import ddim_step, purify_ddim
from udcshield.defenses.guidance import guided_purify
from udcshield.defenses.samplers import SamplerConfig, reverse_chain
from udcshield.defenses.defended import (
    GRADIENT_MODES,
    DefendedRestorer,
    DrawSequence,
    NoiseDraw,
    default_generator_factory,
)
from udcshield.defenses.eot import eot_loss_grad
from udcshield.defenses.adaptive import AdaptivePGD

__all__ = [
    "AdaptivePGD",
    "BlockedGradientError",
    "DefendedRestorer",
    "DiffusionPurifier",
    "DrawSequence",
    "GRADIENT_MODES",
    "NoiseDraw",
    "SamplerConfig",
    "bpda",
    "ddim_step",
    "default_generator_factory",
    "eot_loss_grad",
    "gradient_blocked",
    "guided_purify",
    "load_purifier",
    "purify_ddim",
    "reverse_chain",
    "save_purifier",
    "strided_timesteps",
]
