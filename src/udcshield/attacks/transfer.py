"""Transfer attacks: craft on an ensemble of surrogate restorers, evaluate on unseen targets.

Averaging the outputs of several surrogates and attacking the average is the ensemble transfer recipe of
Liu et al., "Delving into Transferable Adversarial Examples and Black-box Attacks", ICLR 2017 (and of
Dong et al. 2018 for MI-FGSM). Here the models are UDC restorers (Song et al., arXiv 2402.13629): the
pipeline crafts on the surrogates and evaluates the result on each held-out target restorer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from udcshield.attacks.registry import create_attack


class EnsembleModel(nn.Module):
    """Mean of the outputs of several image-to-image models.

    Args:
        models: non-empty sequence of modules mapping B x 3 x H x W in [0, 1] to outputs of one shape.

    Call: ``ensemble(x)`` -> mean over members of ``m(x)``, same shape as each member's output.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if isinstance(models, nn.Module) or not isinstance(models, Sequence) or len(models) == 0:
            raise ValueError("surrogates must be a non-empty list of torch.nn.Module")
        for i, m in enumerate(models):
            if not isinstance(m, nn.Module):
                raise ValueError(f"surrogates[{i}] must be a torch.nn.Module, got {type(m).__name__}")
        self.members = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [m(x) for m in self.members]
        for i, o in enumerate(outs):
            if not isinstance(o, torch.Tensor) or o.shape != outs[0].shape:
                got = tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
                raise ValueError(f"surrogate {i} returned {got}, expected {tuple(outs[0].shape)}")
        return torch.stack(outs).mean(dim=0)


def transfer_attack(
    surrogates: Sequence[nn.Module],
    attack_name: str,
    attack_kwargs: Mapping[str, Any] | None,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    seeds: Sequence[int] | None = None,
) -> torch.Tensor:
    """Craft adversarial inputs on the mean-of-surrogates ensemble with a registered attack.

    Args:
        surrogates: the models the attacker has (white-box access to each).
        attack_name: a name of :func:`udcshield.attacks.registry.list_attacks`, e.g. "pgd", "mifgsm".
        attack_kwargs: keyword arguments for :func:`create_attack` (e.g. ``{"eps": budget_to_linf(8)}``).
        inputs: clean inputs, B x 3 x H x W float32 in [0, 1].
        targets: ground truth (required when the attack's reference is "target").
        seeds: one int per image (per-image random draws), as for any attack call.

    Returns:
        Adversarial inputs, B x 3 x H x W in [0, 1], within the attack's budget; the caller evaluates
        them on each target model. Surrogates' parameters and train/eval flags are left unchanged.
    """
    kwargs = dict(attack_kwargs or {})
    if "model" in kwargs:
        raise ValueError("attack_kwargs must not contain 'model' (the ensemble is the attacked model)")
    atk = create_attack(attack_name, EnsembleModel(list(surrogates)), **kwargs)
    return atk(inputs, targets, seeds=seeds)
