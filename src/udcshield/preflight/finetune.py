"""Preflight of ``finetune``: the training crops fit the stored pairs, and every prefix of
``finetune.trainable`` names parameters of every restorer."""

from __future__ import annotations

from udcshield.config import ConfigError, Params
from udcshield.preflight.common import check_crop
from udcshield.preflight.train import build_meta
from udcshield.training.robust import unknown_prefixes

__all__ = ["check"]


def check(params: Params) -> None:
    """ConfigError naming ``finetune.crop_size`` when it exceeds ``simulate.patch_size``, or
    ``finetune.trainable`` when a prefix matches no parameter of some restorer.

    Each restorer is built on the meta device (no memory, no initialisation cost) to list its names; a
    restorer the registry refuses is named first (``train.models[i]``).
    """
    check_crop(params, "finetune")
    trainable = params.finetune.trainable
    if isinstance(trainable, str):
        return
    for i, spec in enumerate(params.train.models):
        model = build_meta(spec, f"train.models[{i}]")
        names = [name for name, _ in model.named_parameters()]
        unknown = unknown_prefixes(names, trainable)
        if unknown:
            tops = sorted({name.split(".")[0] for name in names})
            raise ConfigError(f"finetune.trainable: prefixes {unknown} match no parameter of restorer "
                              f"{spec.name!r} (its top-level parameter groups: {', '.join(tops)})")
