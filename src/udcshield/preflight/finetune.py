"""Preflight of ``finetune``: every prefix of ``finetune.trainable`` names parameters of every restorer."""

from __future__ import annotations

import torch

from udcshield.config import ConfigError, Params
from udcshield.models.registry import create_restorer
from udcshield.preflight.train import check_model
from udcshield.training.robust import unknown_prefixes

__all__ = ["check"]


def check(params: Params) -> None:
    """ConfigError naming ``finetune.trainable`` when a prefix matches no parameter of some restorer.

    Each restorer is built on the meta device (no memory, no initialisation cost) to list its names; a
    restorer the registry refuses is named first (``train.models[i]``).
    """
    trainable = params.finetune.trainable
    if isinstance(trainable, str):
        return
    for i, spec in enumerate(params.train.models):
        check_model(spec, f"train.models[{i}]")
        with torch.device("meta"):
            model = create_restorer(spec.name, **spec.kwargs)
        names = [name for name, _ in model.named_parameters()]
        unknown = unknown_prefixes(names, trainable)
        if unknown:
            tops = sorted({name.split(".")[0] for name in names})
            raise ConfigError(f"finetune.trainable: prefixes {unknown} match no parameter of restorer "
                              f"{spec.name!r} (its top-level parameter groups: {', '.join(tops)})")
