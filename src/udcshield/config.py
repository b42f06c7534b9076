"""Typed, frozen configuration for every pipeline stage, read from ``params.yaml``.

One dataclass per ``params.yaml`` section. Loading is strict: unknown keys, missing keys, wrong types
and out-of-range values are errors raised before any work starts, each naming the offending key by its
dotted path (e.g. ``attack.attacks[0].budgets[2]``).

Budgets are integers in units of 1/256 of the tone-mapped [0, 1] image domain, as in Song et al.
(arXiv 2402.13629).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A params file is malformed; the message names the offending key."""


# --------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class OpticsConfig:
    """Display mask and lens: see :func:`udcshield.physics.psf.compute_psf` (DESIGN.md section 3)."""

    mask: Literal["toled", "poled", "circle", "open", "user"] = "toled"
    user_mask_path: str | None = None
    pitch_um: float = 168.0
    open_ratio: float = 0.238
    focal_length_mm: float = 4.67
    f_number: float = 2.0
    wavelengths_nm: tuple[float, ...] = (610.0, 530.0, 470.0)
    spectral_response_path: str | None = None
    sensor_pitch_um: float = 2.0
    support_px: int = 41
    oversample: int = 4
    random_tile_flip: bool = False
    bank_size: int = 9

    def validate(self, where: str) -> None:
        _positive(self, where, "pitch_um", "focal_length_mm", "f_number", "sensor_pitch_um", "support_px",
                  "oversample", "bank_size")
        if not 0.0 < self.open_ratio <= 1.0:
            raise ConfigError(f"{where}.open_ratio must be in (0, 1], got {self.open_ratio}")
        if self.support_px % 2 != 1:
            raise ConfigError(f"{where}.support_px must be odd (PSF centred on a pixel), got {self.support_px}")
        if (self.mask == "user") != (self.user_mask_path is not None):
            raise ConfigError(f"{where}.user_mask_path must be set exactly when {where}.mask is 'user' "
                              f"(mask={self.mask!r}, user_mask_path={self.user_mask_path!r})")
        if len(self.wavelengths_nm) != 3 or any(w <= 0 for w in self.wavelengths_nm):
            raise ConfigError(f"{where}.wavelengths_nm must be three positive numbers (R, G, B), "
                              f"got {list(self.wavelengths_nm)}")


@dataclass(frozen=True)
class HdrConfig:
    """Pseudo-HDR scene synthesis from LDR photos: see :func:`udcshield.physics.hdr.pseudo_hdr`."""

    highlight_threshold: float = 0.95
    highlight_gain: float = 20.0
    n_light_sources: int = 2
    light_gain_range: tuple[float, float] = (8.0, 100.0)
    light_radius_px: tuple[float, float] = (1.0, 3.0)

    def validate(self, where: str) -> None:
        if not 0.0 < self.highlight_threshold <= 1.0:
            raise ConfigError(f"{where}.highlight_threshold must be in (0, 1], got {self.highlight_threshold}")
        _non_negative(self, where, "highlight_gain", "n_light_sources")
        for name in ("light_gain_range", "light_radius_px"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"{where}.{name} must satisfy 0 < low <= high, got {[lo, hi]}")


@dataclass(frozen=True)
class FormationConfig:
    """Image formation y = clip(x * k * transmission + noise, 0, saturation), DISCNet convention."""

    saturation: float = 500.0
    transmission: float = 1.0
    noise: Literal["none", "poisson_gaussian"] = "none"
    full_well_e: float = 15500.0
    read_noise_e: float = 4.9
    white_level: float = 1.0
    knee: float = 0.25

    def validate(self, where: str) -> None:
        _positive(self, where, "saturation", "knee", "full_well_e", "white_level")
        _non_negative(self, where, "read_noise_e")
        if not 0.0 < self.transmission <= 1.0:
            raise ConfigError(f"{where}.transmission must be in (0, 1], got {self.transmission}")


@dataclass(frozen=True)
class SimulateConfig:
    """Where the paired data comes from.

    ``source``: ``embedded`` (photos bundled with scikit-image, or image paths, listed in train_photos /
    test_photos) and ``folder`` (every PNG/JPEG/TIFF photo in ``dataset_root/train`` and
    ``dataset_root/test``) are simulated: pseudo-HDR -> display-diffraction PSF -> pairs. ``discnet_synth``,
    ``mipi``, ``zhou_toled`` and ``zhou_poled`` read the paired dataset of that layout under
    ``dataset_root`` (see :func:`udcshield.data.datasets.load_dataset`).
    """

    source: Literal["embedded", "folder", "discnet_synth", "mipi", "zhou_toled", "zhou_poled"] = "embedded"
    dataset_root: str | None = None
    max_images: int | None = None
    train_photos: tuple[str, ...] = ("astronaut", "coffee", "hubble_deep_field", "immunohistochemistry", "retina")
    test_photos: tuple[str, ...] = ("chelsea", "rocket")
    patch_size: int = 64
    train_patches_per_image: int = 48
    test_patches_per_image: int = 16
    scale: float = 0.5
    optics: OpticsConfig = field(default_factory=OpticsConfig)
    hdr: HdrConfig = field(default_factory=HdrConfig)
    formation: FormationConfig = field(default_factory=FormationConfig)

    def validate(self, where: str) -> None:
        _positive(self, where, "patch_size", "train_patches_per_image", "test_patches_per_image", "scale")
        if not self.train_photos or not self.test_photos:
            raise ConfigError(f"{where}: train_photos and test_photos must both be non-empty")
        if self.source != "embedded" and not self.dataset_root:
            raise ConfigError(f"{where}.dataset_root is required when {where}.source is {self.source!r}")
        if self.max_images is not None and self.max_images <= 0:
            raise ConfigError(f"{where}.max_images must be positive or null, got {self.max_images}")
        overlap = set(self.train_photos) & set(self.test_photos)
        if overlap:
            raise ConfigError(f"{where}: photos {sorted(overlap)} are in both train_photos and test_photos; "
                              "the split is by source image")
        self.optics.validate(f"{where}.optics")
        self.hdr.validate(f"{where}.hdr")
        self.formation.validate(f"{where}.formation")


@dataclass(frozen=True)
class ModelSpec:
    """One restorer to study: a registered architecture name and its constructor kwargs (e.g. ``size``)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        from udcshield.models.registry import list_restorers

        if self.name not in list_restorers():
            raise ConfigError(f"{where}.name {self.name!r} is not a registered restorer "
                              f"(available: {', '.join(list_restorers())})")


@dataclass(frozen=True)
class TrainConfig:
    """Restorer training (Adam, cosine decay): see :func:`udcshield.training.restorer.train_restorer`.

    Every listed model is trained, fine-tuned, attacked, purified and evaluated.
    """

    models: tuple[ModelSpec, ...] = (ModelSpec("resunet", {"base_channels": 16, "depth": 2}),)
    iterations: int = 3000
    batch_size: int = 8
    crop_size: int = 64
    lr: float = 1e-3
    lr_min: float = 1e-5
    loss: Literal["l2", "l1"] = "l2"
    perceptual_weight: float = 0.0
    vgg_weights_path: str | None = None
    flips: bool = True
    color_jitter: float = 0.05

    def validate(self, where: str) -> None:
        _positive(self, where, "iterations", "batch_size", "crop_size", "lr")
        _non_negative(self, where, "lr_min", "color_jitter", "perceptual_weight")
        if self.lr_min > self.lr:
            raise ConfigError(f"{where}.lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        if self.perceptual_weight > 0 and not self.vgg_weights_path:
            raise ConfigError(f"{where}.perceptual_weight > 0 needs {where}.vgg_weights_path (a local VGG-19 "
                              "safetensors file; no weights are downloaded)")
        if not self.models:
            raise ConfigError(f"{where}.models must list at least one restorer")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.models lists a restorer twice: {names}")
        for i, spec in enumerate(self.models):
            spec.validate(f"{where}.models[{i}]")

    def spec(self, name: str) -> ModelSpec:
        """The spec of model ``name``."""
        return next(m for m in self.models if m.name == name)


@dataclass(frozen=True)
class PurifierConfig:
    """Diffusion purifier (diffusers UNet2DModel + DDPMScheduler; Ho et al. 2020) and its training."""

    sample_size: int = 64
    block_out_channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    attention: bool = False
    num_train_timesteps: int = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    iterations: int = 2000
    batch_size: int = 8
    crop_size: int = 32
    lr: float = 1e-3
    lr_min: float = 1e-4
    flips: bool = True

    def validate(self, where: str) -> None:
        _positive(self, where, "sample_size", "layers_per_block", "num_train_timesteps", "iterations",
                  "batch_size", "crop_size", "lr")
        _non_negative(self, where, "lr_min")
        if not self.block_out_channels or any(c <= 0 for c in self.block_out_channels):
            raise ConfigError(f"{where}.block_out_channels must be positive ints, got {list(self.block_out_channels)}")


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

    mode: Literal["purified", "adversarial", "trades", "mixed"] = "purified"
    t_stars: tuple[int, ...] = (30, 50, 70)
    num_steps: int | None = 10
    purify_batch_size: int = 32
    iterations: int = 800
    batch_size: int = 8
    crop_size: int = 64
    lr: float = 2e-4
    lr_min: float = 1e-6
    loss: Literal["l2", "l1"] = "l2"
    flips: bool = True
    color_jitter: float = 0.05
    include_clean: bool = True
    attack_budget: int = 8
    attack_steps: int = 3
    trades_beta: float = 1.0
    adversarial_weight: float = 0.5
    trainable: str | tuple[str, ...] = "all"
    gan_weight: float = 0.0
    gan_lr: float = 1e-4

    def validate(self, where: str) -> None:
        _positive(self, where, "purify_batch_size", "iterations", "batch_size", "crop_size", "lr", "attack_steps")
        _non_negative(self, where, "lr_min", "color_jitter", "attack_budget", "trades_beta", "gan_weight")
        _positive(self, where, "gan_lr")
        if not self.t_stars or any(t <= 0 for t in self.t_stars):
            raise ConfigError(f"{where}.t_stars must be positive diffusion steps, got {list(self.t_stars)}")
        if self.num_steps is not None and self.num_steps <= 0:
            raise ConfigError(f"{where}.num_steps must be positive or null, got {self.num_steps}")
        if self.attack_budget > 256:
            raise ConfigError(f"{where}.attack_budget must be at most 256 (units of 1/256), got {self.attack_budget}")
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

    def check_models(self, models: tuple[ModelSpec, ...], where: str) -> None:
        """ConfigError naming ``<where>.trainable`` when a prefix matches no parameter of some restorer.

        Each restorer is built on the meta device (no memory, no initialisation cost) to list its names.
        """
        if isinstance(self.trainable, str):
            return
        import torch

        from udcshield.models.registry import create_restorer
        from udcshield.training.robust import unknown_prefixes

        for spec in models:
            with torch.device("meta"):
                model = create_restorer(spec.name, **spec.kwargs)
            names = [name for name, _ in model.named_parameters()]
            unknown = unknown_prefixes(names, self.trainable)
            if unknown:
                tops = sorted({name.split(".")[0] for name in names})
                raise ConfigError(f"{where}.trainable: prefixes {unknown} match no parameter of restorer "
                                  f"{spec.name!r} (its top-level parameter groups: {', '.join(tops)})")


ATTACK_NAMES = ("fgsm", "pgd", "bim", "mifgsm", "pgd_l2", "cw", "lpips_pgd", "simba", "square", "universal")
# keyword arguments the attack stage sets itself from the budget and the attack section
_STAGE_SET_KWARGS = ("eps", "objective", "reference", "seed", "model", "generator", "loader_or_tensors")


@dataclass(frozen=True)
class AttackSpec:
    """One attack at several budgets (integers, units of 1/256 of the [0, 1] domain).

    The budget is the L-inf radius eps = budget / 256 for every attack except ``pgd_l2``, whose L2 radius
    is the same RMS level, eps_2 = budget / 256 * sqrt(3 H W), and ``cw`` (minimum-norm), whose result is
    projected onto the L-inf ball afterwards. ``kwargs`` go to the attack's constructor (e.g. ``steps``,
    ``random_start``, ``max_queries``); for ``universal`` to
    :func:`udcshield.attacks.universal.universal_perturbation` (``steps``, ``lr``, ``batch_size``).
    """

    name: Literal["fgsm", "pgd", "bim", "mifgsm", "pgd_l2", "cw", "lpips_pgd", "simba", "square", "universal"]
    budgets: tuple[int, ...] = (1, 2, 4, 8)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if not self.budgets:
            raise ConfigError(f"{where}.budgets must list at least one budget")
        for i, b in enumerate(self.budgets):
            if b <= 0:
                raise ConfigError(f"{where}.budgets[{i}] must be a positive number of 1/256 steps, got {b}")
        if len(set(self.budgets)) != len(self.budgets):
            raise ConfigError(f"{where}.budgets has duplicates: {list(self.budgets)}")
        valid = _attack_parameters(self.name)
        for key in self.kwargs:
            if key in _STAGE_SET_KWARGS or key not in valid:
                allowed = sorted(set(valid) - set(_STAGE_SET_KWARGS))
                raise ConfigError(f"{where}.kwargs.{key} is not a parameter of attack {self.name!r} that params may "
                                  f"set (allowed: {', '.join(allowed)}; eps comes from budgets)")


def _attack_parameters(name: str) -> list[str]:
    """Constructor (or function) parameters of attack ``name``."""
    import inspect

    if name == "universal":
        from udcshield.attacks.universal import universal_perturbation

        return list(inspect.signature(universal_perturbation).parameters)
    from udcshield.attacks.registry import attack_kwargs

    return attack_kwargs(name)


@dataclass(frozen=True)
class AttackConfig:
    """White-box attacks crafted on each bare restorer (DESIGN.md section 5)."""

    models: tuple[Literal["base", "finetuned"], ...] = ("base", "finetuned")
    attacks: tuple[AttackSpec, ...] = (AttackSpec(name="pgd", kwargs={"steps": 20, "random_start": True}),
                                       AttackSpec(name="fgsm"))
    objective: Literal["mse", "l1"] = "mse"
    reference: Literal["target", "clean_output"] = "target"
    batch_size: int = 16
    shard_size: int = 16              # images per shard (unit of scheduling and of resume); see RunnerConfig

    def validate(self, where: str) -> None:
        _positive(self, where, "batch_size", "shard_size")
        if not self.models:
            raise ConfigError(f"{where}.models must list at least one of base, finetuned")
        names = [a.name for a in self.attacks]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.attacks lists an attack twice: {names}")
        for i, spec in enumerate(self.attacks):
            spec.validate(f"{where}.attacks[{i}]")


@dataclass(frozen=True)
class PurifyConfig:
    """Purification of every evaluated input set: diffuse to t_star, reverse to 0 (Nie et al. 2022).

    ``sampler``: DDPM ancestral steps (Ho et al. 2020) or DDIM (Song, Meng & Ermon 2021; ``eta`` 0 =
    deterministic reverse chain); ``guidance_scale`` > 0 guides each step toward the input (GDMP,
    Wang et al. 2022).
    """

    t_star: int = 50
    num_steps: int | None = 10
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    eta: float = 0.0
    guidance_scale: float = 0.0
    batch_size: int = 32
    shard_size: int = 32              # images per shard (unit of scheduling and of resume); see RunnerConfig

    def validate(self, where: str) -> None:
        _positive(self, where, "t_star", "batch_size", "shard_size")
        _non_negative(self, where, "guidance_scale")
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"{where}.eta must be in [0, 1], got {self.eta}")
        if self.num_steps is not None and not 0 < self.num_steps <= self.t_star:
            raise ConfigError(f"{where}.num_steps must be in [1, t_star] or null, got {self.num_steps}")


@dataclass(frozen=True)
class AdaptiveSpec:
    """One adaptive attack through the purifier: PGD with ``gradient`` "bpda" or "full", EOT over draws."""

    name: str
    gradient: Literal["bpda", "full"] = "bpda"
    eot_samples: int = 4
    steps: int = 10
    checkpoint: bool = True

    def validate(self, where: str) -> None:
        _positive(self, where, "eot_samples", "steps")
        if not self.name or "/" in self.name or "@" in self.name:
            raise ConfigError(f"{where}.name must be a non-empty label without '/' or '@', got {self.name!r}")


@dataclass(frozen=True)
class AdaptiveConfig:
    """Adaptive attacks on the defended system (purify -> restore), evaluated over stochastic draws.

    Each attack is crafted through the purifier (BPDA: Athalye et al. 2018; EOT over the purifier's noise;
    or full gradients through the reverse chain with checkpointing) on the first ``max_images`` test
    images, for each restorer variant; then the defended system is run ``draws`` times with fresh seeds,
    on these adversarial inputs and, for comparison, on the non-adaptive PGD set at the same budget.
    """

    enabled: bool = True
    attacks: tuple[AdaptiveSpec, ...] = (AdaptiveSpec(name="bpda_eot"),
                                         AdaptiveSpec(name="full", gradient="full", eot_samples=1, steps=5))
    budgets: tuple[int, ...] = (8,)
    max_images: int = 8
    draws: int = 4
    batch_size: int = 8

    def validate(self, where: str) -> None:
        _positive(self, where, "max_images", "draws", "batch_size")
        if any(b <= 0 for b in self.budgets) or not self.budgets:
            raise ConfigError(f"{where}.budgets must be positive numbers of 1/256 steps, got {list(self.budgets)}")
        names = [a.name for a in self.attacks]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.attacks lists a name twice: {names}")
        for i, spec in enumerate(self.attacks):
            spec.validate(f"{where}.attacks[{i}]")


@dataclass(frozen=True)
class SweepSampler:
    """One reverse-chain setting of the sweep: ``sampler`` with ``num_steps`` network evaluations (null:
    every step from t* to 1) and DDIM's ``eta``."""

    sampler: Literal["ddpm", "ddim"] = "ddpm"
    num_steps: int | None = None
    eta: float = 0.0

    @property
    def label(self) -> str:
        """Short name, e.g. ``ddpm-all``, ``ddpm-10``, ``ddim-5`` (``-eta0.5`` appended for DDIM with eta > 0)."""
        steps = "all" if self.num_steps is None else str(self.num_steps)
        eta = f"-eta{self.eta:g}" if self.sampler == "ddim" and self.eta > 0 else ""
        return f"{self.sampler}-{steps}{eta}"

    def validate(self, where: str) -> None:
        if self.num_steps is not None and self.num_steps <= 0:
            raise ConfigError(f"{where}.num_steps must be positive or null, got {self.num_steps}")
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"{where}.eta must be in [0, 1], got {self.eta}")


@dataclass(frozen=True)
class SweepConfig:
    """t* x sampler sweep of the purifier on the first ``max_images`` test images (DDPM vs few-step DDIM).

    For every t* and sampler setting: network evaluations per image, wall time, images/s, and the base
    restorer's PSNR on purified clean inputs and on purified adversarial inputs (the attack stage's
    ``attack`` set at its largest budget), averaged over ``draws`` purifier draws. The setting
    ``ddpm`` with ``num_steps: null`` (the full chain) is the reference each few-step setting is compared
    with; ``tolerance_db`` is the allowed loss of defended PSNR (the issue's target: 0.3 dB).
    """

    enabled: bool = True
    t_stars: tuple[int, ...] = (20, 50, 100)
    samplers: tuple[SweepSampler, ...] = (SweepSampler("ddpm", None), SweepSampler("ddpm", 10),
                                          SweepSampler("ddim", 2), SweepSampler("ddim", 5),
                                          SweepSampler("ddim", 10))
    max_images: int = 4
    draws: int = 2
    attack: str = "pgd"
    batch_size: int = 32
    tolerance_db: float = 0.3

    def validate(self, where: str) -> None:
        _positive(self, where, "max_images", "draws", "batch_size")
        _non_negative(self, where, "tolerance_db")
        if not self.t_stars or any(t <= 0 for t in self.t_stars) or len(set(self.t_stars)) != len(self.t_stars):
            raise ConfigError(f"{where}.t_stars must be distinct positive diffusion steps, got {list(self.t_stars)}")
        if not self.samplers:
            raise ConfigError(f"{where}.samplers must list at least one setting")
        for i, spec in enumerate(self.samplers):
            spec.validate(f"{where}.samplers[{i}]")
            if spec.num_steps is not None and spec.num_steps > min(self.t_stars):
                raise ConfigError(f"{where}.samplers[{i}].num_steps ({spec.num_steps}) exceeds the smallest t* "
                                  f"({min(self.t_stars)})")
        labels = [s.label for s in self.samplers]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{where}.samplers lists a setting twice: {labels}")
        if "ddpm-all" not in labels:
            raise ConfigError(f"{where}.samplers must include the full DDPM chain {{sampler: ddpm, num_steps: null}}, "
                              "the reference of the comparison")

    def check_attack(self, attack: AttackConfig, where: str) -> None:
        """ConfigError naming ``<where>.attack`` unless the attack stage crafts that attack on base restorers."""
        if not self.enabled:
            return
        names = [a.name for a in attack.attacks]
        if self.attack not in names:
            raise ConfigError(f"{where}.attack {self.attack!r} is not crafted by the attack stage "
                              f"(attack.attacks: {', '.join(names)})")
        if "base" not in attack.models:
            raise ConfigError(f"{where} needs 'base' in attack.models (it scores the base restorer)")


@dataclass(frozen=True)
class EvaluateConfig:
    """Per-image metrics under the SYNTH convention (DESIGN.md section 4)."""

    metrics: tuple[Literal["psnr", "ssim"], ...] = ("psnr", "ssim")
    batch_size: int = 32

    def validate(self, where: str) -> None:
        _positive(self, where, "batch_size")
        if "psnr" not in self.metrics:
            raise ConfigError(f"{where}.metrics must include psnr (the headline metric)")


@dataclass(frozen=True)
class ReportConfig:
    """Report rendering (``report.md`` and the self-contained ``report.html``).

    ``grid_images``: the first N test images shown in the HTML image grids. ``grid_attack``: the attack
    shown there, at its largest budget (null = the first of ``attack.attacks``).
    """

    table_metric: Literal["psnr", "ssim"] = "psnr"
    grid_images: int = 3
    grid_attack: str | None = None

    def validate(self, where: str) -> None:
        _positive(self, where, "grid_images")

    def check_attack(self, attack: "AttackConfig", where: str) -> None:
        """``grid_attack`` must name one of the configured attacks."""
        names = [a.name for a in attack.attacks]
        if self.grid_attack is not None and self.grid_attack not in names:
            raise ConfigError(f"{where}.grid_attack {self.grid_attack!r} is not one of attack.attacks ({', '.join(names)})")


@dataclass(frozen=True)
class RunnerConfig:
    """Where the sharded stages (``attack``, ``purify``) run; results are bit-identical on either runner.

    ``kind``: ``local`` runs shards one after another in the flow's process; ``dask`` submits them
    through prefect-dask's DaskTaskRunner to a dask.distributed cluster: the scheduler at ``address``
    (e.g. ``tcp://10.0.0.5:8786``; also read from the environment variable UDCSHIELD_DASK_ADDRESS
    when null), or else a LocalCluster of ``n_workers`` workers with ``threads_per_worker`` threads each,
    in threads of the flow's process (``processes: false``) or in separate processes.
    ``shard_cache``: folder or fsspec URL for finished shards (null: ``<data root>/.shards``); a killed
    stage reruns only the missing shards. ``keep_shards``: keep them after the stage's store is written.
    Not a DVC parameter of any stage: changing the runner does not change a result.
    """

    kind: Literal["local", "dask"] = "local"
    address: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1
    processes: bool = False
    shard_cache: str | None = None
    keep_shards: bool = False

    def validate(self, where: str) -> None:
        _positive(self, where, "n_workers", "threads_per_worker")
        if self.address is not None and self.kind != "dask":
            raise ConfigError(f"{where}.address is set ({self.address!r}) but {where}.kind is {self.kind!r}; "
                              f"set {where}.kind to dask")
        if self.shard_cache is not None and not self.shard_cache.strip():
            raise ConfigError(f"{where}.shard_cache must be a folder, a URL or null, got an empty string")


@dataclass(frozen=True)
class AccelConfig:
    """How the attack and purify stages execute networks on CUDA (:mod:`udcshield.accel`); ignored on CPU.

    ``amp``: ``none`` (float32), ``bf16`` (autocast) or ``auto`` (bf16 for a restorer only when its PSNR on
    the first test images stays within ``amp_tolerance_db`` of float32; the measurement is stored with the
    attack's cost). The purifier follows ``bf16``; with ``auto`` it stays float32.
    ``channels_last``: NHWC convolutions. ``compile``: ``none`` or a torch.compile mode; the purifier's UNet
    uses ``reduce-overhead`` (CUDA graphs) whenever compile is not ``none``.
    Accelerated runs differ from float32 runs by rounding, so these keys are DVC parameters of the stages.
    """

    amp: Literal["none", "bf16", "auto"] = "none"
    channels_last: bool = False
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none"
    amp_tolerance_db: float = 0.05

    def validate(self, where: str) -> None:
        if not self.amp_tolerance_db > 0:
            raise ConfigError(f"{where}.amp_tolerance_db must be > 0, got {self.amp_tolerance_db}")


@dataclass(frozen=True)
class Params:
    """The whole ``params.yaml``."""

    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    purifier: PurifierConfig = field(default_factory=PurifierConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    purify: PurifyConfig = field(default_factory=PurifyConfig)
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    accel: AccelConfig = field(default_factory=AccelConfig)

    def validate(self, where: str = "params") -> None:
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value.validate(f.name)
        self.report.check_attack(self.attack, "report")
        self.finetune.check_models(self.train.models, "finetune")


# --------------------------------------------------------------------------------------------- loading
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
    """Build and validate :class:`Params` from a plain mapping. Raises ConfigError naming the key."""
    params = _build(Params, raw, "")
    try:
        params.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return params


def to_dict(obj: Any) -> Any:
    """Resolved config as plain JSON-compatible data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def _build(cls: type, raw: Any, where: str) -> Any:
    label = where or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(_join(where, k) for k in unknown)}"
                          f" (valid keys: {', '.join(sorted(names))})")
    kwargs = {name: _coerce(hints[name], value, _join(where, name)) for name, value in raw.items()}
    return cls(**kwargs)


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where} must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {options}")
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {type(value).__name__} {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {type(value).__name__} {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _positive(obj: Any, where: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{where}.{name} must be > 0, got {getattr(obj, name)}")


def _non_negative(obj: Any, where: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{where}.{name} must be >= 0, got {getattr(obj, name)}")
