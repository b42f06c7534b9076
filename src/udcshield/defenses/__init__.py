"""udcshield.defenses: diffusion purification of (attacked) UDC inputs and adaptive attacks on it.

Images are (B, 3, H, W) in [0, 1]; see :mod:`udcshield.defenses.purifier`. Every reverse chain (DDPM,
Ho et al. 2020; DDIM, Song et al. 2021; GDMP input guidance, Wang et al. 2022) is one
:class:`SamplerConfig` run by :func:`reverse_chain` (DiffPure, Nie et al. 2022); :meth:`DiffusionPurifier.purify`,
:func:`purify_ddim` and :func:`guided_purify` are thin wrappers of it. The defended system (purify →
restore, :class:`DefendedRestorer`, noise passed explicitly as a :class:`NoiseDraw`) and the attacks
that see it (:mod:`udcshield.defenses.adaptive`: ``AdaptivePGD`` and ``AdaptiveAPGD`` with BPDA or full
checkpointed gradients and EOT, Athalye et al. 2018; Croce & Hein 2020; and ``AdaptiveSquare``, black-box) are
what adaptive evaluation needs. They and :func:`udcshield.defenses.eot.eot_loss_grad` are imported from their
modules, not from this package, because they build on the attacks: a stage that only purifies does not depend
on them.
"""

from udcshield.defenses.purifier import DiffusionPurifier, load_purifier, save_purifier, strided_timesteps
from udcshield.defenses.bpda import BlockedGradientError, bpda, gradient_blocked
from udcshield.defenses.ddim import ddim_step
from udcshield.defenses.samplers import SamplerConfig, guided_purify, purify_ddim, reverse_chain
from udcshield.defenses.defended import (
    GRADIENT_MODES,
    DefendedRestorer,
    DrawSequence,
    NoiseDraw,
    default_generator_factory,
)

__all__ = [
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
    "gradient_blocked",
    "guided_purify",
    "load_purifier",
    "purify_ddim",
    "reverse_chain",
    "save_purifier",
    "strided_timesteps",
]
