"""Typed, frozen configuration for every pipeline stage, read from ``params.yaml``.

One dataclass per ``params.yaml`` section. Loading is strict: unknown keys, missing keys, wrong types
and out-of-range values are errors raised before any work starts, each naming the offending key by its
dotted path (e.g. ``attack.attacks[0].budgets[2]``).

Budgets are integers in [1, 256], in units of 1/256 of the tone-mapped [0, 1] image domain, as in Song et
al. (arXiv 2402.13629).

The package is a pure schema: it imports nothing else from ``udcshield``. Checks that need the registries or
what library code refuses (restorer and attack names, kwargs and their values, ``finetune.trainable``, the
PSF simulator's limits, the image sizes crops, attacks and metrics need) are in :mod:`udcshield.preflight`.
The dataclass defaults are the documented defaults and equal ``params.yaml``; :mod:`udcshield.config.reference`
renders them, with every key's description, as Markdown or JSON Schema.
"""

from udcshield.config import reference
from udcshield.config.base import MAX_BUDGET, ConfigError, to_dict
from udcshield.config.params import SECTIONS, Params, load_params, params_from_dict
from udcshield.config.robustness import (
    AdaptiveChecks,
    AdaptiveConfig,
    AdaptiveSpec,
    AttackConfig,
    AttackSpec,
    ConvergenceConfig,
    PurifyConfig,
    SweepConfig,
    SweepSampler,
)
from udcshield.config.runtime import (
    AccelConfig,
    EvaluateConfig,
    ReportConfig,
    RunnerConfig,
)
from udcshield.config.simulate import (
    FormationConfig,
    HdrConfig,
    OpticsConfig,
    SimulateConfig,
)
from udcshield.config.training import (
    FinetuneConfig,
    ModelSpec,
    PurifierConfig,
    TrainConfig,
)

__all__ = [
    "MAX_BUDGET",
    "SECTIONS",
    "AccelConfig",
    "AdaptiveChecks",
    "AdaptiveConfig",
    "AdaptiveSpec",
    "AttackConfig",
    "AttackSpec",
    "ConvergenceConfig",
    "ConfigError",
    "EvaluateConfig",
    "FinetuneConfig",
    "FormationConfig",
    "HdrConfig",
    "ModelSpec",
    "OpticsConfig",
    "Params",
    "PurifierConfig",
    "PurifyConfig",
    "ReportConfig",
    "RunnerConfig",
    "SimulateConfig",
    "SweepConfig",
    "SweepSampler",
    "TrainConfig",
    "load_params",
    "params_from_dict",
    "reference",
    "to_dict",
]
