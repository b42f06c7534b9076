"""The whole ``params.yaml``: :class:`Params`, its cross-section checks, and loading.

Loading is strict: unknown keys, missing keys, wrong types and out-of-range values are errors raised
before any work starts, each naming the offending key by its dotted path. These checks need no registry;
the registry-aware ones (restorer and attack names, their kwargs and values, ``finetune.trainable``, the PSF
simulator's limits, image sizes against ``simulate.patch_size``) are in :mod:`udcshield.preflight`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from udcshield.config.base import ConfigError, build, option
from udcshield.config.robustness import (
    AdaptiveConfig,
    AttackConfig,
    PurifyConfig,
    SweepConfig,
)
from udcshield.config.runtime import (
    AccelConfig,
    EvaluateConfig,
    ReportConfig,
    RunnerConfig,
)
from udcshield.config.simulate import SimulateConfig
from udcshield.config.training import NAME_LABEL, FinetuneConfig, PurifierConfig, TrainConfig

__all__ = ["SECTIONS", "Params", "load_params", "params_from_dict"]


@dataclass(frozen=True)
class Params:
    """The whole ``params.yaml``: one section per stage (DVC tracks each stage's sections)."""

    profile: str = option(
        "cpu", "Name of the profile this file was composed from (`conf/profile/<name>.yaml`; `dvc exp run -S "
               "profile=<name>` recomposes it): a label for lineage, read by no stage.")
    seed: int = option(0, "Root seed of every random draw (>= 0).")
    device: Literal["auto", "cpu", "cuda"] = option(
        "auto", "`auto`: CUDA when present, else CPU (chosen at run time, never stored).")
    simulate: SimulateConfig = option(factory=SimulateConfig, doc="Paired data: source, optics, HDR, formation.")
    train: TrainConfig = option(factory=TrainConfig, doc="Restorers and their training.")
    purifier: PurifierConfig = option(factory=PurifierConfig, doc="Diffusion purifier and its training.")
    finetune: FinetuneConfig = option(factory=FinetuneConfig, doc="Robust fine-tuning of the restorers.")
    attack: AttackConfig = option(factory=AttackConfig, doc="Attacks crafted on the bare restorers.")
    purify: PurifyConfig = option(factory=PurifyConfig, doc="Test-time purification.")
    adaptive: AdaptiveConfig = option(factory=AdaptiveConfig, doc="Adaptive attacks through the purifier.")
    sweep: SweepConfig = option(factory=SweepConfig, doc="Purifier benchmark: t* x sampler.")
    evaluate: EvaluateConfig = option(factory=EvaluateConfig, doc="Per-image metrics.")
    report: ReportConfig = option(factory=ReportConfig, doc="Report rendering.")
    runner: RunnerConfig = option(factory=RunnerConfig, doc="Where the sharded stages run.")
    accel: AccelConfig = option(factory=AccelConfig, doc="GPU execution of attack and purify.")

    def validate(self, where: str = "params") -> None:
        """Every section's own checks, then the checks that span sections."""
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if not NAME_LABEL.fullmatch(self.profile):
            raise ConfigError(f"profile must be a profile name (letters, digits, '_', '-'), got {self.profile!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value.validate(f.name)
        self.check_t_stars()
        self.sweep.check_attack(self.attack, "sweep")
        self.report.check_attack(self.attack, "report")
        self.evaluate.check_attack(self.attack, "evaluate")

    def check_t_stars(self) -> None:
        """Every diffusion depth (``purify.t_star``, ``finetune.t_stars``, ``sweep.t_stars``) in [1, T].

        T is ``purifier.num_train_timesteps``; the purifier refuses a deeper t* at run time.
        """
        limit = self.purifier.num_train_timesteps
        depths = [("purify.t_star", self.purify.t_star)]
        depths += [(f"finetune.t_stars[{i}]", t) for i, t in enumerate(self.finetune.t_stars)]
        depths += [(f"sweep.t_stars[{i}]", t) for i, t in enumerate(self.sweep.t_stars)]
        for key, t in depths:
            if not 1 <= t <= limit:
                raise ConfigError(f"{key} ({t}) exceeds the purifier's {limit} diffusion steps: t* must be in "
                                  f"[1, purifier.num_train_timesteps] = [1, {limit}]")


#: Top-level sections of ``params.yaml`` (the keys of :class:`Params` that hold a section).
SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Params)
                                  if dataclasses.is_dataclass(f.default_factory))


def load_params(path: str | Path) -> Params:
    """Read and validate a params YAML file. Raises ConfigError (missing file, bad YAML, bad key/value)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from exc
    return params_from_dict(raw if raw is not None else {}, source=str(path))


def params_from_dict(raw: Any, source: str = "params") -> Params:
    """Build and validate :class:`Params` from a plain mapping. Raises ConfigError naming the key, prefixed
    with ``source`` (e.g. the file's path) for wrong types and values alike."""
    try:
        params = build(Params, raw, "")
        params.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return params
