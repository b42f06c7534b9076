"""Timestep schedule and noise draws of the purifier's reverse chains, shared by every sampler.

Timestep convention: t counts forward diffusion steps as in Ho et al. (NeurIPS 2020), t ∈ {0, …, T},
with ᾱ_0 = 1. :func:`strided_timesteps` picks the timesteps where a reverse chain evaluates the network
(the respacing of Nichol & Dhariwal 2021 when fewer than t* are kept); :func:`_randn` is the one noise
draw (one ``torch.Generator`` or one per image). This module imports no other module of the package: the
DDPM model (:mod:`udcshield.defenses.purifier`), the step math (:mod:`udcshield.defenses.ddim`,
:mod:`udcshield.defenses.guidance`) and the chain (:mod:`udcshield.defenses.samplers`) all build on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from udcshield.defenses.purifier import DiffusionPurifier

__all__ = ["Generators", "check_steps", "check_t_star", "strided_timesteps"]

Generators = torch.Generator | Sequence[torch.Generator]

# What the reverse chains use of a purifier (:class:`udcshield.defenses.purifier.DiffusionPurifier`).
_PURIFIER_INTERFACE = ("num_train_timesteps", "alpha_bar", "predict_noise", "reverse_step", "to_model_space",
                       "from_model_space", "multiple")


def check_steps(t_star: int, num_steps: int | None) -> None:
    """Raise ValueError unless ``t_star`` is a non-negative int and ``num_steps`` is None or an int in
    [1, t_star] (0 when t_star = 0): the arguments :func:`strided_timesteps` accepts."""
    if not isinstance(t_star, int) or isinstance(t_star, bool) or t_star < 0:
        raise ValueError(f"t_star must be a non-negative int, got {t_star!r}")
    if num_steps is None:
        return
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or not min(1, t_star) <= num_steps <= t_star:
        allowed = "None (or 0) when t_star=0" if t_star == 0 else f"None or an int in [1, t_star={t_star}]"
        raise ValueError(f"num_steps must be {allowed}, got {num_steps!r}")


def check_t_star(purifier: DiffusionPurifier, t_star: int) -> int:
    """Return ``t_star`` if it is an int in [0, T] for ``purifier``, else raise ValueError naming it.

    ``purifier`` must offer what the reverse chains use of a :class:`~udcshield.defenses.purifier.DiffusionPurifier`
    (T, ᾱ_t, the ε-network, the DDPM posterior step, the value-domain maps, the padding multiple).
    """
    if not all(hasattr(purifier, name) for name in _PURIFIER_INTERFACE):
        raise ValueError(f"purifier must be a DiffusionPurifier, got {type(purifier).__name__}")
    if not isinstance(t_star, int) or isinstance(t_star, bool) or not 0 <= t_star <= purifier.num_train_timesteps:
        raise ValueError(f"t_star must be an int in [0, {purifier.num_train_timesteps}], got {t_star!r}")
    return t_star


def strided_timesteps(t_star: int, num_steps: int | None = None) -> list[int]:
    """Descending timesteps (Ho et al. 2020 convention, 1..t_star) where the reverse chain evaluates the network.

    Strided sampling follows the respacing idea of Nichol & Dhariwal 2021 (improved DDPM) with the exact
    DDPM posterior between the kept steps.

    ``num_steps=None`` gives every step ``[t_star, t_star-1, ..., 1]``; otherwise ``num_steps`` values
    evenly spaced from ``t_star`` down to 1 (rounded half up), always starting at ``t_star``; with
    ``num_steps=1`` the single step jumps from t_star straight to 0.
    """
    check_steps(t_star, num_steps)
    if num_steps is None or num_steps == t_star:
        return list(range(t_star, 0, -1))
    if num_steps == 1:
        return [t_star]
    stride = (t_star - 1) / (num_steps - 1)
    steps = [math.floor(t_star - i * stride + 0.5) for i in range(num_steps)]
    if len(set(steps)) != num_steps:  # spacing >= 1 makes this unreachable; keep the guarantee explicit
        raise AssertionError(f"strided timesteps collided: {steps}")
    return steps


def _randn(shape: tuple[int, ...], generator: Generators, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of ``shape`` drawn on the generator's device, then moved next to ``like``.

    A sequence of generators gives one per batch element (per-image seeds, batch-size independent).
    """
    if isinstance(generator, torch.Generator):
        noise = torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype)
        return noise.to(like.device)
    generators = list(generator)
    if len(generators) != shape[0]:
        raise ValueError(f"got {len(generators)} generators for a batch of {shape[0]}")
    draws = [torch.randn((1, *shape[1:]), generator=g, device=g.device, dtype=like.dtype).to(like.device)
             for g in generators]
    return torch.cat(draws)
