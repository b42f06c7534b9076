"""The ``train``, ``purifier`` and ``finetune`` sections: restorers, the diffusion purifier, robust fine-tuning.

Restorer names are plain strings here; :func:`udcshield.preflight.preflight` checks them against the
restorer registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from udcshield.config.base import (
    ConfigError,
    check_budget,
    jitter_range,
    lr_range,
    non_negative,
    option,
    positive,
)

__all__ = ["FinetuneConfig", "ModelSpec", "PurifierConfig", "TrainConfig", "replicate_name"]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
#: ``module:callable`` (dotted identifiers on both sides of one ``:``): a restorer factory outside the registry.
FACTORY_REFERENCE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")
#: A model label or profile name: it names folders, stage units and record rows.
NAME_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def replicate_name(label: str, seed: int) -> str:
    """Identity of the training run of model ``label`` with training seed ``seed``: ``label`` itself for seed 0,
    ``<label>-seed<seed>`` otherwise (its stage units, folders and record rows)."""
    return label if seed == 0 else f"{label}-seed{seed}"


@dataclass(frozen=True)
class ModelSpec:
    """One restorer to study: its architecture, constructor kwargs, identity, and optionally given weights.

    ``name`` is a registered restorer, an entry point of the group ``udcshield.restorers``, or a factory
    reference ``"module:callable"`` (a model from outside the package). ``label`` is the model's identity
    in paths, stage units and reports (``data/restorers/<label>``); it defaults to ``name`` and is required
    for a ``module:callable`` reference. ``weights`` (a ``.safetensors`` file or a PyTorch state dict
    ``.pt`` / ``.pth``) initialise the model; with ``train: false`` the train stage saves them unchanged.
    """

    name: str = option(doc="Restorer: a registered name, e.g. `resunet`, `discnet`, `uformer` (see "
                           "`udcshield.models.list_restorers()`), an entry point of the group `udcshield.restorers`, "
                           "or a factory reference `module:callable` (then `label` is required).")
    kwargs: dict[str, Any] = option(factory=dict, doc="Constructor keyword arguments of the restorer, e.g. "
                                                      "`{size: tiny}` or `{base_channels: 16, depth: 2}`.")
    label: str | None = option(
        None, "The model's identity in paths, stage units and reports (`data/restorers/<label>`): letters, digits, "
              "`_` and `-`. null = `name`; required when `name` is a `module:callable` reference.")
    weights: str | None = option(
        None, "Given initial weights: a `.safetensors` file or a PyTorch state dict `.pt` / `.pth` (read with "
              "`weights_only=True`), loaded strictly (every key and shape must match the model). null = random "
              "initialisation.")
    train: bool = option(
        True, "Whether the train stage optimises this model (from `weights` when given: fine-tuning). false needs "
              "`weights`: the stage then saves the given weights as the model's checkpoint, untrained.")

    def __post_init__(self) -> None:
        if self.label is None and isinstance(self.name, str) and self.name and ":" not in self.name:
            object.__setattr__(self, "label", self.name)  # a registered or entry-point name is its own label

    def validate(self, where: str) -> None:
        if not self.name:
            raise ConfigError(f"{where}.name must be a non-empty restorer name")
        if ":" in self.name:
            if not FACTORY_REFERENCE.fullmatch(self.name):
                raise ConfigError(f"{where}.name {self.name!r} must be a registered restorer, an entry point name, or "
                                  "a factory reference 'module:callable' (dotted Python identifiers, e.g. "
                                  "'mypkg.nets:make_net')")
            if self.label is None:
                raise ConfigError(f"{where}.label is required when {where}.name is a factory reference "
                                  f"({self.name!r}): the model's identity in paths and reports, e.g. "
                                  f"{self.name.rpartition(':')[2].rpartition('.')[2]!r}")
        if self.label is not None and self.label != self.name and not NAME_LABEL.fullmatch(self.label):
            raise ConfigError(f"{where}.label {self.label!r} must be letters, digits, '_' and '-' (starting with a "
                              "letter or digit): it names folders and stage units")
        if self.weights is not None and not self.weights.strip():
            raise ConfigError(f"{where}.weights must be a path to a weights file or null, got {self.weights!r}")
        if not self.train and self.weights is None:
            raise ConfigError(f"{where}.train is false but {where}.weights is not set: a model that is not trained "
                              "needs given weights (a .safetensors file or a .pt/.pth state dict)")


@dataclass(frozen=True)
class TrainConfig:
    """Restorer training (Adam, cosine decay): see :func:`udcshield.training.restorer.train_restorer`.

    Every listed model is trained, fine-tuned, attacked, purified and evaluated.
    """

    models: tuple[ModelSpec, ...] = option(
        (ModelSpec("resunet", {"base_channels": 16, "depth": 2}),),
        "Restorers of the study; every one is trained, fine-tuned, attacked and evaluated.")
    iterations: int = option(3000, "Optimizer steps.")
    batch_size: int = option(8, "Crops per step.")
    crop_size: int = option(64, "Side of the random training crops, in pixels (at most `simulate.patch_size`).")
    lr: float = option(1e-3, "Initial Adam learning rate.")
    lr_min: float = option(1e-5, "Final learning rate of the cosine decay (<= `lr`).")
    loss: Literal["l2", "l1"] = option("l2", "Pixel loss.")
    perceptual_weight: float = option(
        0.0, "> 0 adds the VGG-19 relu3_3 + relu4_2 feature loss, in training and fine-tuning; needs "
             "`vgg_weights_path`.")
    vgg_weights_path: str | None = option(
        None, "Local VGG-19 safetensors file for the perceptual loss (nothing is downloaded).")
    flips: bool = option(True, "Random horizontal and vertical flips of the crops.")
    color_jitter: float = option(
        0.05, "Per-channel gains drawn in [1 - j, 1 + j], j in [0, 1), applied to input and target alike (0 = off).")
    seeds: tuple[int, ...] = option(
        (0,), "Training runs per restorer: seed 0 is the restorer itself (`<label>`); every other seed s trains a "
              "replicate `<label>-seed<s>` (own initial weights and batches) that is attacked, purified, fine-tuned "
              "and evaluated like it, and the report adds the spread across runs. Seed 0 keeps the random streams "
              "of a run without replicates.")

    def validate(self, where: str) -> None:
        positive(self, where, "iterations", "batch_size", "crop_size", "lr")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ConfigError(f"{where}.seeds must be a non-empty list of ints >= 0, got {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{where}.seeds lists a seed twice: {list(self.seeds)}")
        non_negative(self, where, "lr_min", "color_jitter", "perceptual_weight")
        lr_range(self, where)
        jitter_range(self, where)
        if self.perceptual_weight > 0 and not self.vgg_weights_path:
            raise ConfigError(f"{where}.vgg_weights_path ({self.vgg_weights_path!r}) is required when "
                              f"{where}.perceptual_weight > 0 ({self.perceptual_weight}): a local VGG-19 safetensors "
                              "file (no weights are downloaded)")
        if not self.models:
            raise ConfigError(f"{where}.models must list at least one restorer")
        for i, spec in enumerate(self.models):
            spec.validate(f"{where}.models[{i}]")
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{where}.models lists a restorer twice (labels {labels}): give each a distinct `label`")
        runs = [m.label for m in self.runs()]
        if len(set(runs)) != len(runs):
            raise ConfigError(f"{where}.seeds: the replicate names {runs} collide with a model's label")

    def runs(self) -> tuple[ModelSpec, ...]:
        """Every training run: each model of ``models`` once per seed of ``seeds`` (model-major), its ``label``
        set to :func:`replicate_name` of the seed. Downstream stages iterate these."""
        return tuple(replace(m, label=replicate_name(str(m.label), s)) for m in self.models for s in self.seeds)

    def run(self, label: str) -> ModelSpec:
        """The training run whose label is ``label`` (KeyError naming it and the known runs if none)."""
        found = {m.label: m for m in self.runs()}
        if label not in found:
            raise KeyError(f"no restorer {label!r} in train.models x train.seeds (runs: {sorted(found)})")
        return found[label]

    def seed_groups(self) -> dict[str, list[str]]:
        """{model label: labels of its runs, one per seed of ``seeds``, in order}."""
        return {str(m.label): [replicate_name(str(m.label), s) for s in self.seeds] for m in self.models}


@dataclass(frozen=True)
class PurifierConfig:
    """Diffusion purifier (diffusers UNet2DModel + DDPMScheduler; Ho et al. 2020) and its training."""

    sample_size: int = option(64, "Nominal training crop side stored in the UNet config (any H, W work).")
    block_out_channels: tuple[int, ...] = option((32, 64), "Output channels of each UNet resolution level.")
    layers_per_block: int = option(1, "ResNet layers per UNet block.")
    attention: bool = option(False, "Self-attention in the lowest-resolution blocks and the middle block.")
    num_train_timesteps: int = option(1000, "Diffusion steps T; every t* must lie in [1, T].")
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = option(
        "linear", "Noise schedule (`linear`: beta from 1e-4 to 0.02, Ho et al. 2020).")
    iterations: int = option(2000, "Optimizer steps of the denoising training.")
    batch_size: int = option(8, "Crops per step.")
    crop_size: int = option(
        32, "Side of the random training crops, in pixels: a multiple of 2^(levels - 1), levels = the length of "
            "`block_out_channels`, and at most `simulate.patch_size`.")
    lr: float = option(1e-3, "Initial Adam learning rate.")
    lr_min: float = option(1e-4, "Final learning rate of the cosine decay (<= `lr`).")
    flips: bool = option(True, "Random horizontal and vertical flips of the crops.")

    def validate(self, where: str) -> None:
        positive(self, where, "sample_size", "layers_per_block", "num_train_timesteps", "iterations",
                 "batch_size", "crop_size", "lr")
        non_negative(self, where, "lr_min")
        lr_range(self, where)
        if not self.block_out_channels or any(c <= 0 for c in self.block_out_channels):
            raise ConfigError(f"{where}.block_out_channels must be positive ints, got {list(self.block_out_channels)}")
        multiple = 2 ** (len(self.block_out_channels) - 1)
        if self.crop_size % multiple:
            raise ConfigError(f"{where}.crop_size ({self.crop_size}) must be a multiple of {multiple} = "
                              f"2^(len({where}.block_out_channels) - 1): the UNet halves the resolution "
                              f"{len(self.block_out_channels) - 1} times")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning of each base restorer, in one of four modes (see :mod:`udcshield.training.robust`).

    ``mode``: ``purified`` (the study, Song et al. arXiv 2402.13629: training inputs purified at varied
    diffusion depth, 50-100 steps in the study), ``adversarial`` (PGD examples crafted on the fly against
    the current model, Madry et al. 2018), ``trades`` (clean loss + ``trades_beta`` x MSE(f(x_adv), f(x)),
    Zhang et al. 2019 adapted to restoration) or ``mixed`` (each batch half purified, half adversarial).
    The inner PGD has L-inf radius ``attack_budget``/256 and ``attack_steps`` steps. ``adversarial_weight``
    w weighs the adversarial term against the benign one: (1 - w) x benign + w x adversarial (benign =
    clean inputs in ``adversarial`` mode, purified ones in ``mixed``; w = 1 is Madry et al.'s objective,
    0.5 Goodfellow et al. 2015's). ``trainable``: ``all`` or a list of parameter-name prefixes (e.g.
    ``[decoders, tail]``); every other parameter is frozen. ``gan_weight`` > 0 adds the study's adversarial
    *loss*: an LSGAN term against a PatchGAN discriminator trained alongside at ``gan_lr``
    (:mod:`udcshield.training.gan`), in every mode.
    """

    mode: Literal["purified", "adversarial", "trades", "mixed"] = option(
        "purified", "`purified` (the study), `adversarial` (Madry PGD training), `trades` or `mixed` "
                    "(half purified, half adversarial).")
    t_stars: tuple[int, ...] = option(
        (30, 50, 70), "Diffusion depths the training inputs are purified at (varied for diversity); "
                      "each in [1, `purifier.num_train_timesteps`].")
    num_steps: int | None = option(
        10, "Strided reverse-chain steps per t* (at most the smallest t*; null = every step).")
    purify_batch_size: int = option(64, "Images per batch when purifying the training inputs.")
    iterations: int = option(800, "Optimizer steps.")
    batch_size: int = option(8, "Crops per step (>= 2 in mode `mixed`).")
    crop_size: int = option(64, "Side of the random training crops, in pixels (at most `simulate.patch_size`).")
    lr: float = option(2e-4, "Initial Adam learning rate.")
    lr_min: float = option(1e-6, "Final learning rate of the cosine decay (<= `lr`).")
    loss: Literal["l2", "l1"] = option("l2", "Pixel loss.")
    flips: bool = option(True, "Random horizontal and vertical flips of the crops.")
    color_jitter: float = option(0.05, "Per-channel gains in [1 - j, 1 + j], j in [0, 1), on input and target "
                                       "(0 = off).")
    include_clean: bool = option(True, "Also train on the unpurified inputs (modes `purified` and `mixed`).")
    attack_budget: int = option(
        8, "Inner PGD of `adversarial` / `trades` / `mixed`: L-inf radius, integer in [1, 256] (units of 1/256).")
    attack_steps: int = option(3, "Inner PGD steps, against the current weights at every training step.")
    trades_beta: float = option(1.0, "`trades`: clean loss + beta * MSE(f(x_adv), f(x)).")
    adversarial_weight: float = option(
        0.5, "`adversarial` / `mixed`: (1 - w) * benign loss + w * adversarial loss, w in [0, 1] (1 = Madry).")
    trainable: str | tuple[str, ...] = option(
        "all", "`all`, or parameter-name prefixes (e.g. `[decoders, tail]`) that learn; the rest is frozen.")
    gan_weight: float = option(
        0.0, "> 0 adds the study's adversarial loss: LSGAN against a PatchGAN discriminator.")
    gan_lr: float = option(1e-4, "Adam learning rate of that discriminator.")

    def validate(self, where: str) -> None:
        positive(self, where, "purify_batch_size", "iterations", "batch_size", "crop_size", "lr", "attack_steps")
        non_negative(self, where, "lr_min", "color_jitter", "trades_beta", "gan_weight")
        positive(self, where, "gan_lr")
        lr_range(self, where)
        jitter_range(self, where)
        if not self.t_stars or any(t <= 0 for t in self.t_stars):
            raise ConfigError(f"{where}.t_stars must be positive diffusion steps, got {list(self.t_stars)}")
        if self.num_steps is not None and self.num_steps <= 0:
            raise ConfigError(f"{where}.num_steps ({self.num_steps}) must be in [1, min({where}.t_stars)] = "
                              f"[1, {min(self.t_stars)}] or null")
        if self.num_steps is not None and self.num_steps > min(self.t_stars):
            raise ConfigError(f"{where}.num_steps ({self.num_steps}) exceeds the smallest of {where}.t_stars "
                              f"({min(self.t_stars)}): strided steps must be in [1, t*] for every t* (the reverse "
                              "chain from t* has at most t* steps), or null")
        check_budget(self.attack_budget, f"{where}.attack_budget")
        if not 0.0 <= self.adversarial_weight <= 1.0:
            raise ConfigError(f"{where}.adversarial_weight must be in [0, 1], got {self.adversarial_weight}")
        if self.mode == "mixed" and self.batch_size < 2:
            raise ConfigError(f"{where}.batch_size must be >= 2 in mode 'mixed' (half purified, half adversarial)")
        if isinstance(self.trainable, str):
            if self.trainable != "all":
                raise ConfigError(f"{where}.trainable must be 'all' or a list of parameter-name prefixes, "
                                  f"got {self.trainable!r}")
        elif not self.trainable or any(not p or p.startswith(".") or p.endswith(".") for p in self.trainable):
            raise ConfigError(f"{where}.trainable must be 'all' or a non-empty list of parameter-name prefixes "
                              f"such as [decoders, tail], got {list(self.trainable)}")
        elif len(set(self.trainable)) != len(self.trainable):
            raise ConfigError(f"{where}.trainable lists a prefix twice: {list(self.trainable)}")
