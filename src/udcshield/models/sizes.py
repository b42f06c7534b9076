"""Size presets of the built-in restorers and their published parameter counts.

``create_restorer(name, size=...)`` (see :mod:`udcshield.models.registry`) looks presets up here:

* ``"paper"``: the configuration whose parameter count is within 10 % of the count published for the
  model (:data:`PAPER_PARAMS`); for the seven UDC restorers of the study (Song et al., arXiv 2402.13629)
  this is also the constructor default;
* ``"tiny"``: at most about 30 k parameters, for tests and the default CPU pipeline run;
* ``"default"``: the constructor's own defaults (no preset), always available.

Keyword arguments given to ``create_restorer`` next to ``size`` override the preset's values. The
resolved keyword arguments (not the size name) are what a checkpoint stores, so a checkpoint rebuilds
the same architecture even if a preset changes later.

This module imports nothing from the model files (the registry imports it lazily).
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["PAPER_PARAMS", "PAPER_VARIANT", "SIZE_PRESETS", "SIZES", "available_sizes", "count_parameters",
           "resolve_size"]

SIZES = ("paper", "tiny", "default")

#: Published parameter counts (as listed in the design notes, section 1, from the original papers).
PAPER_PARAMS: dict[str, int] = {
    "dagf": 1_120_000,       # Sundar et al., ECCVW 2020
    "dwformer": 1_450_000,   # Zhou et al., 2023
    "discnet": 3_800_000,    # Feng et al., CVPR 2021
    "bnudc": 4_570_000,      # Koh et al., CVPR 2022
    "srudc": 3_110_000,      # Song et al., ICCV 2023
    "udcunet": 14_060_000,   # Liu et al., ECCVW 2022
    "uformer": 5_230_000,    # Wang et al., CVPR 2022, Uformer-T
}

#: Which published variant the "paper" preset stands for.
PAPER_VARIANT: dict[str, str] = {name: "as published" for name in PAPER_PARAMS}
PAPER_VARIANT["uformer"] = "Uformer-T (C=16, depths 2, window 8)"

SIZE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "discnet": {
        "paper": {"base_channels": 32, "levels": 3, "blocks_per_level": 2, "kernel_size": 3, "code_dim": 5,
                  "cond_channels": 32, "generator_channels": 48},
        "tiny": {"base_channels": 8, "levels": 2, "blocks_per_level": 1, "kernel_size": 3, "code_dim": 5,
                 "cond_channels": 4, "generator_channels": 4},
    },
    "uformer": {
        "paper": {"embed_dim": 16, "levels": 4, "depth": 2, "window": 8, "expansion": 4.0},
        "tiny": {"embed_dim": 6, "levels": 2, "depth": 1, "window": 4, "expansion": 2.0},
    },
    "udcunet": {
        "paper": {"base_channels": 32, "levels": 4, "blocks_per_level": 5, "cond_channels": 32, "code_dim": 5,
                  "code_hidden": 64},
        "tiny": {"base_channels": 8, "levels": 2, "blocks_per_level": 1, "cond_channels": 8, "code_dim": 5,
                 "code_hidden": 16},
    },
    "bnudc": {
        "paper": {"high_channels": 48, "high_blocks": 18, "low_channels": 28, "low_levels": 4, "low_blocks": 2,
                  "sigma": 2.0},
        "tiny": {"high_channels": 8, "high_blocks": 2, "low_channels": 8, "low_levels": 2, "low_blocks": 1,
                 "sigma": 2.0},
    },
    "dwformer": {
        "paper": {"base_channels": 24, "levels": 3, "blocks_per_level": 1, "kernel_size": 7, "expansion": 2.0},
        "tiny": {"base_channels": 6, "levels": 2, "blocks_per_level": 1, "kernel_size": 7, "expansion": 2.0},
    },
    "dagf": {
        "paper": {"channels": 64, "blocks": 15, "scale": 2, "gf_radius": 1, "gf_eps": 1e-4, "gf_hidden": 16},
        "tiny": {"channels": 12, "blocks": 3, "scale": 2, "gf_radius": 1, "gf_eps": 1e-4, "gf_hidden": 8},
    },
    "srudc": {
        "paper": {"scatter_channels": 24, "image_channels": 48, "levels": 3, "scatter_blocks": 2, "image_blocks": 2,
                  "heads": 1, "t_min": 0.1},
        "tiny": {"scatter_channels": 8, "image_channels": 8, "levels": 2, "scatter_blocks": 1, "image_blocks": 1,
                 "heads": 1, "t_min": 0.1},
    },
    # Zhou et al. (CVPR 2021) ResUNet baseline: no published count we can check, so no "paper" preset.
    "resunet": {
        "tiny": {"base_channels": 8, "depth": 1, "blocks_per_level": 1},
    },
}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def available_sizes(name: str) -> list[str]:
    """Size names accepted by ``create_restorer(name, size=...)``: the presets of ``name`` plus "default"."""
    return [size for size in SIZES if size in SIZE_PRESETS.get(name, {})] + ["default"]


def resolve_size(name: str, size: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for restorer ``name`` at ``size``, with ``overrides`` applied on top.

    Raises ``ValueError`` for a size the restorer has no preset for (message lists the available ones).
    """
    if size == "default":
        return dict(overrides)
    presets = SIZE_PRESETS.get(name, {})
    if size not in presets:
        raise ValueError(f"restorer {name!r} has no size {size!r}; available sizes: {available_sizes(name)}")
    return {**presets[size], **overrides}
