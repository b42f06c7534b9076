"""The ``attack``, ``purify``, ``adaptive`` and ``sweep`` sections: threat models and the purifying defense.

Budgets are integers in units of 1/256 of the tone-mapped [0, 1] image domain, in [1, 256], as in
Song et al. (arXiv 2402.13629). Attack names are plain strings here; :func:`udcshield.preflight.preflight`
checks them, and their kwargs, against the attack registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from udcshield.config.base import (
    ConfigError,
    check_budget,
    check_budgets,
    non_negative,
    option,
    positive,
)

__all__ = [
    "STRONG_ATTACKS",
    "STRONG_BUDGETS",
    "STRONG_CHECKS",
    "STRONG_DRAWS",
    "AdaptiveChecks",
    "AdaptiveConfig",
    "AdaptiveSpec",
    "AttackConfig",
    "AttackSpec",
    "ConvergenceConfig",
    "PurifyConfig",
    "SweepConfig",
    "SweepSampler",
]


@dataclass(frozen=True)
class AttackSpec:
    """One attack at several budgets (integers, units of 1/256 of the [0, 1] domain).

    The budget is the L-inf radius eps = budget / 256 for every attack except ``pgd_l2`` and ``apgd_l2``,
    whose L2 radius is the same RMS level, eps_2 = budget / 256 * sqrt(3 H W), ``cw`` (minimum-norm),
    whose result is projected onto the L-inf ball afterwards, and ``cw_l2`` (the same, unbounded: budget 256
    only, reported with its realised L2 norm). ``kwargs`` go to the attack's constructor (e.g.
    ``steps``, ``random_start``, ``max_queries``); for ``universal`` to
    :func:`udcshield.attacks.universal.universal_perturbation` (``steps``, ``lr``, ``batch_size``).
    """

    name: str = option(doc="A registered attack (`fgsm`, `pgd`, `apgd`, `bim`, `mifgsm`, `pgd_l2`, `apgd_l2`, `cw`, "
                           "`lpips_pgd`, `simba`, `square`, ...) or `universal`.")
    budgets: tuple[int, ...] = option(
        (1, 2, 4, 8), "Distinct budgets, integers in [1, 256] (units of 1/256; 256 = the whole [0, 1] range).")
    kwargs: dict[str, Any] = option(
        factory=dict, doc="Constructor arguments of the attack (e.g. `steps`, `random_start`, `max_queries`); "
                          "never `eps`, which comes from `budgets`.")

    def validate(self, where: str) -> None:
        if not self.name:
            raise ConfigError(f"{where}.name must be a non-empty attack name")
        check_budgets(self.budgets, f"{where}.budgets")


@dataclass(frozen=True)
class ConvergenceConfig:
    """Convergence check of every iterative attack (pipeline/convergence.py): the attack reruns on the
    first ``probe_images`` test images with twice the steps and one more restart; a set whose mean PSNR
    there falls by more than ``tolerance_db`` is flagged ``converged: false``."""

    enabled: bool = option(True, "Run the convergence probe of every iterative attack.")
    probe_images: int = option(4, "First N test images of the probe rerun.")
    tolerance_db: float = option(0.1, "Largest PSNR drop (dB) of the longer rerun for a converged set.")

    def validate(self, where: str) -> None:
        positive(self, where, "probe_images")
        non_negative(self, where, "tolerance_db")


@dataclass(frozen=True)
class AttackConfig:
    """White-box and black-box attacks crafted on each bare restorer, at every budget."""

    models: tuple[Literal["base", "finetuned"], ...] = option(
        ("base", "finetuned"), "Restorer variants every attack is crafted on.")
    attacks: tuple[AttackSpec, ...] = option(
        (AttackSpec(name="pgd", kwargs={"steps": 20, "random_start": True}),
         AttackSpec(name="apgd", kwargs={"steps": 100, "restarts": 1}),
         AttackSpec(name="square", budgets=(8,), kwargs={"max_queries": 200}), AttackSpec(name="fgsm"),
         AttackSpec(name="cw_l2", budgets=(256,),
                    kwargs={"binary_search_steps": 9, "steps": 20, "c": 1000.0, "tau_db": 10.0})),
        "Attacks, each at its budgets (the default: PGD-Linf, 20 iterations, random start; APGD, 100 iterations; "
        "Square, 200 queries at 8/256; FGSM; C&W-L2 unbounded, 9 binary-search steps of 20, for a 10 dB drop).")
    objective: Literal["mse", "l1"] = option("mse", "Distortion of the restored output that the attacks raise.")
    reference: Literal["target", "clean_output"] = option(
        "target", "What the distortion is measured against: the ground truth (strongest for PSNR) or the "
                  "restorer's output on the clean input.")
    output: Literal["clamped", "raw"] = option(
        "clamped", "Restorer output the distortion is measured on: `clamped` to [0, 1], as PSNR scores it, or "
                   "`raw` (unclamped).")
    quantize: bool = option(
        False, "Round every L-inf adversarial set to 8-bit levels k/255 inside its budget, as an attacker's image "
               "file would be (L2 sets stay float); stored as uint8.")
    batch_size: int = option(16, "Images per attack batch.")
    shard_size: int = option(16, "Images per shard: the unit of scheduling (runner) and of resume.")
    convergence: ConvergenceConfig = option(
        factory=ConvergenceConfig, doc="Convergence probe of the iterative attacks (twice the steps, one more "
                                       "restart).")

    def validate(self, where: str) -> None:
        positive(self, where, "batch_size", "shard_size")
        self.convergence.validate(f"{where}.convergence")
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

    t_star: int = option(50, "Diffusion depth of test-time purification, in [1, `purifier.num_train_timesteps`].")
    num_steps: int | None = option(
        10, "Network evaluations of the strided reverse chain, in [1, `t_star`]; null = every step.")
    sampler: Literal["ddpm", "ddim"] = option("ddpm", "`ddpm` ancestral steps, or few-step `ddim`.")
    eta: float = option(0.0, "DDIM stochasticity in [0, 1] (0 = deterministic reverse chain).")
    guidance_scale: float = option(0.0, "> 0: GDMP guidance of each reverse step toward the input.")
    draws: int = option(
        1, "Independent purifier draws of every set; the evaluate stage scores each image by its mean over them.")
    batch_size: int = option(32, "Images per purification batch.")
    shard_size: int = option(32, "Images per shard: the unit of scheduling (runner) and of resume.")

    def validate(self, where: str) -> None:
        positive(self, where, "t_star", "draws", "batch_size", "shard_size")
        non_negative(self, where, "guidance_scale")
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"{where}.eta ({self.eta}) must be in [0, 1] (DDIM stochasticity)")
        if self.num_steps is not None and self.num_steps > self.t_star:
            raise ConfigError(f"{where}.num_steps ({self.num_steps}) exceeds {where}.t_star ({self.t_star}): strided "
                              "steps must be in [1, t*] or null")
        if self.num_steps is not None and self.num_steps <= 0:
            raise ConfigError(f"{where}.num_steps ({self.num_steps}) must be in [1, {where}.t_star] = "
                              f"[1, {self.t_star}] or null")


#: Labels the adaptive stage gives its comparison records (clean inputs, the non-adaptive PGD set).
RESERVED_ADAPTIVE_NAMES = ("clean", "pgd")


@dataclass(frozen=True)
class AdaptiveSpec:
    """One adaptive attack through the purifier: PGD (Madry et al. 2018) or APGD (Croce & Hein 2020) with
    ``gradient`` "bpda" or "full", EOT over the purifier's noise (Athalye et al. 2018)."""

    name: str = option(doc="Label of the attack in stores and reports (no `/` or `@`; not `clean` or `pgd`, the "
                           "labels of the clean and non-adaptive records beside it).")
    algorithm: Literal["pgd", "apgd"] = option(
        "pgd", "`pgd`: PGD-Linf, step 2.5 eps / steps, random start (Madry et al. 2018); `apgd`: Auto-PGD, "
               "step-size schedule and momentum (Croce & Hein 2020). Both keep each image's best iterate of the "
               "EOT-mean objective.")
    gradient: Literal["bpda", "full"] = option(
        "bpda", "`bpda`: identity gradient through the purifier (Athalye et al. 2018); `full`: exact "
                "gradient through the reverse chain.")
    eot_samples: int = option(4, "Purifier draws averaged per gradient (expectation over transformation).")
    steps: int = option(10, "Iterations (gradient steps) per restart.")
    restarts: int = option(1, "Random restarts; each image keeps its best (EOT-mean objective) over them.")
    checkpoint: bool = option(True, "Gradient checkpointing of the reverse chain (`full`: less memory, about 1.6x "
                                    "the time of a gradient).")

    def validate(self, where: str) -> None:
        positive(self, where, "eot_samples", "steps", "restarts")
        if not self.name or "/" in self.name or "@" in self.name:
            raise ConfigError(f"{where}.name must be a non-empty label without '/' or '@', got {self.name!r}")
        if self.name in RESERVED_ADAPTIVE_NAMES:
            raise ConfigError(f"{where}.name ({self.name!r}) is reserved: the adaptive records label the clean and "
                              f"the non-adaptive PGD inputs {' and '.join(map(repr, RESERVED_ADAPTIVE_NAMES))}")


@dataclass(frozen=True)
class AdaptiveChecks:
    """Gradient-masking checks of the adaptive evaluation (Athalye et al. 2018, Sec. 3.1; Carlini et al.,
    arXiv 1902.06705), written to ``data/adaptive/checks.json``; comparisons use the PSNR mean over draws.

    Per restorer variant and budget: the strongest full-gradient attack is at least as strong as the strongest
    BPDA one, and both at least as strong as transfer (the non-adaptive ``pgd`` set, purified), within
    ``tolerance_db``; the black-box Square attack (Andriushchenko et al. 2020) on the defended system, on
    the first ``max_images`` images, is not stronger than the per-image best white-box attack by more
    than ``tolerance_db``. Per variant: the attack ``large_budget_attack`` at ``large_budget``/256 gets within
    ``floor_tolerance_db`` of the floor, the defended PSNR of uniform-random input images.
    """

    enabled: bool = option(True, "Run the gradient-masking checks (needs `adaptive.enabled`).")
    tolerance_db: float = option(0.5, "Slack (dB) of the attack-ordering checks (full vs BPDA vs transfer, Square "
                                      "vs white-box).")
    max_images: int = option(2, "First N of the adaptive images for Square and the large-budget check (all of "
                                "them when `adaptive.max_images` is smaller).")
    square_queries: int = option(40, "Square queries per image (the stripe initialization included).")
    square_eot_samples: int = option(1, "Fixed purifier draws per Square query; the objective is the mean "
                                        "distortion over them (common random numbers).")
    large_budget: int = option(64, "Budget (units of 1/256) of the large-budget check; 64 = eps 0.25.")
    large_budget_attack: str | None = option(
        None, "Attack of `adaptive.attacks` run at `large_budget`; null = the first with `gradient: full` (else "
              "the first).")
    floor_tolerance_db: float = option(
        3.0, "The large-budget attack passes when its defended PSNR is within this many dB of the random-image "
             "floor.")

    def validate(self, where: str) -> None:
        positive(self, where, "max_images", "square_queries", "square_eot_samples")
        non_negative(self, where, "tolerance_db", "floor_tolerance_db")
        check_budget(self.large_budget, f"{where}.large_budget")


#: ``adaptive.strong: true``: the full protocol, sized for a GPU (Athalye et al. 2018; Croce & Hein 2020; Lee &
#: Kim, ICCV 2023): full-gradient APGD and PGD and BPDA, each 100 iterations with EOT over 8 purifier draws per
#: step, at every budget of the study, scored over 16 draws, with the masking checks (Square with 1000 queries
#: of 4 fixed draws). It replaces ``attacks``, ``budgets``, ``draws`` and ``checks``; ``max_images`` and
#: ``batch_size`` stay as set.
STRONG_ATTACKS: tuple[AdaptiveSpec, ...] = (
    AdaptiveSpec(name="full", algorithm="apgd", gradient="full", eot_samples=8, steps=100, checkpoint=True),
    AdaptiveSpec(name="full_pgd", algorithm="pgd", gradient="full", eot_samples=8, steps=100, checkpoint=True),
    AdaptiveSpec(name="bpda_eot", algorithm="pgd", gradient="bpda", eot_samples=8, steps=100, checkpoint=False),
)
STRONG_BUDGETS: tuple[int, ...] = (1, 2, 4, 8)
STRONG_DRAWS = 16
STRONG_CHECKS = AdaptiveChecks(max_images=8, square_queries=1000, square_eot_samples=4, large_budget_attack="full")


@dataclass(frozen=True)
class AdaptiveConfig:
    """Adaptive attacks on the defended system (purify -> restore), evaluated over stochastic draws.

    Each attack is crafted through the purifier (BPDA: Athalye et al. 2018; or full gradients through the
    reverse chain, optionally checkpointed; PGD or APGD, EOT over the purifier's noise) on the first
    ``max_images`` test images, for each restorer variant; then the defended system is run ``draws`` times
    with fresh seeds, on these adversarial inputs and, for comparison, on the non-adaptive PGD set at the
    same budget: per image the mean over draws and the worst draw (DiffHammer, NeurIPS 2024, scores the
    worst of N draws). ``checks`` tests the evaluation for gradient masking. The purifier runs at
    ``purify.t_star`` with ``purify``'s sampler. ``strong: true`` swaps in the GPU protocol
    (:data:`STRONG_ATTACKS`, :data:`STRONG_BUDGETS`, :data:`STRONG_DRAWS`, :data:`STRONG_CHECKS`).
    """

    enabled: bool = option(True, "Run the adaptive attacks (the defense's honest number).")
    strong: bool = option(
        False, "true: the full protocol for a GPU, replacing `attacks`, `budgets`, `draws` and `checks` (full-gradient "
               "APGD and PGD and BPDA, 100 iterations, EOT 8, every budget, 16 draws, Square with 1000 queries); "
               "e.g. `dvc exp run -S adaptive.strong=true`.")
    attacks: tuple[AdaptiveSpec, ...] = option(
        (AdaptiveSpec(name="bpda_eot", algorithm="apgd", gradient="bpda", eot_samples=2, steps=10, checkpoint=False),
         AdaptiveSpec(name="full", algorithm="apgd", gradient="full", eot_samples=2, steps=10, checkpoint=False)),
        "Adaptive attacks through the purifier (the default: APGD, 10 iterations, EOT 2, with BPDA and with full "
        "gradients; sized for a 2-core CPU, see `strong`).")
    budgets: tuple[int, ...] = option(
        (8,), "L-inf budgets, integers in [1, 256] (units of 1/256); the CPU default runs the largest of the study.")
    max_images: int = option(4, "First N test images (the chain is costly on CPU).")
    draws: int = option(8, "Runs of the stochastic defense: mean, worst of N draws, PSNR of the averaged output.")
    batch_size: int = option(8, "Images per batch.")
    checks: AdaptiveChecks = option(factory=AdaptiveChecks, doc="Gradient-masking checks (`data/adaptive/checks.json`).")

    def __post_init__(self) -> None:
        if self.strong is True:
            for key, value in (("attacks", STRONG_ATTACKS), ("budgets", STRONG_BUDGETS), ("draws", STRONG_DRAWS),
                               ("checks", STRONG_CHECKS)):
                object.__setattr__(self, key, value)

    def validate(self, where: str) -> None:
        positive(self, where, "max_images", "draws", "batch_size")
        check_budgets(self.budgets, f"{where}.budgets", distinct=False)
        names = [a.name for a in self.attacks]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.attacks lists a name twice: {names}")
        for i, spec in enumerate(self.attacks):
            spec.validate(f"{where}.attacks[{i}]")
        self.checks.validate(f"{where}.checks")
        if self.enabled and self.checks.enabled and not self.attacks:
            raise ConfigError(f"{where}.attacks must list at least one attack when {where}.checks.enabled is true "
                              "(the checks compare the adaptive attacks)")
        attack = self.checks.large_budget_attack
        if attack is not None and attack not in names:
            raise ConfigError(f"{where}.checks.large_budget_attack {attack!r} is not one of {where}.attacks "
                              f"({', '.join(names)})")

    def large_budget_spec(self) -> AdaptiveSpec | None:
        """The attack of the large-budget check: ``checks.large_budget_attack``, else the first full-gradient
        attack, else the first; None without attacks."""
        if self.checks.large_budget_attack is not None:
            return next((a for a in self.attacks if a.name == self.checks.large_budget_attack), None)
        return next((a for a in self.attacks if a.gradient == "full"), self.attacks[0] if self.attacks else None)


@dataclass(frozen=True)
class SweepSampler:
    """One reverse-chain setting of the sweep: ``sampler`` with ``num_steps`` network evaluations (null:
    every step from t* to 1) and DDIM's ``eta``."""

    sampler: Literal["ddpm", "ddim"] = option("ddpm", "Reverse-chain sampler.")
    num_steps: int | None = option(
        None, "Network evaluations (at most the smallest of `sweep.t_stars`); null = every step from t* to 1.")
    eta: float = option(0.0, "DDIM stochasticity in [0, 1].")

    @property
    def label(self) -> str:
        """Short name, e.g. ``ddpm-all``, ``ddpm-10``, ``ddim-5`` (``-eta0.5`` appended for DDIM with eta > 0)."""
        steps = "all" if self.num_steps is None else str(self.num_steps)
        eta = f"-eta{self.eta:g}" if self.sampler == "ddim" and self.eta > 0 else ""
        return f"{self.sampler}-{steps}{eta}"

    def validate(self, where: str) -> None:
        if self.num_steps is not None and self.num_steps <= 0:
            raise ConfigError(f"{where}.num_steps ({self.num_steps}) must be in [1, t*] or null")
        if not 0.0 <= self.eta <= 1.0:
            raise ConfigError(f"{where}.eta ({self.eta}) must be in [0, 1] (DDIM stochasticity)")


@dataclass(frozen=True)
class SweepConfig:
    """t* x sampler sweep of the purifier on the first ``max_images`` test images (DDPM vs few-step DDIM).

    For every t* and sampler setting: network evaluations per image, wall time, images/s, and the base
    restorer's PSNR on purified clean inputs and on purified adversarial inputs (the attack stage's
    ``attack`` set at its largest budget), averaged over ``draws`` purifier draws. The setting
    ``ddpm`` with ``num_steps: null`` (the full chain) is the reference each few-step setting is compared
    with; ``tolerance_db`` is the allowed loss of defended PSNR (the issue's target: 0.3 dB).
    """

    enabled: bool = option(True, "Run the purifier benchmark.")
    t_stars: tuple[int, ...] = option(
        (20, 50, 100), "Distinct diffusion depths, each in [1, `purifier.num_train_timesteps`].")
    samplers: tuple[SweepSampler, ...] = option(
        (SweepSampler("ddpm", None), SweepSampler("ddpm", 10), SweepSampler("ddim", 2), SweepSampler("ddim", 5),
         SweepSampler("ddim", 10)),
        "Reverse-chain settings; must include the full DDPM chain `{sampler: ddpm, num_steps: null}`, the "
        "reference.")
    max_images: int = option(4, "First N test images.")
    draws: int = option(2, "Purifier draws per setting; PSNR averaged over them.")
    attack: str = option(
        "pgd", "Adversarial inputs: this attack's stored set (one of `attack.attacks`) at its largest budget, "
               "base restorer.")
    batch_size: int = option(32, "Images per batch.")
    tolerance_db: float = option(
        0.3, "A few-step setting matches the full chain when its defended PSNR is within this many dB.")

    def validate(self, where: str) -> None:
        positive(self, where, "max_images", "draws", "batch_size")
        non_negative(self, where, "tolerance_db")
        if not self.t_stars or any(t <= 0 for t in self.t_stars) or len(set(self.t_stars)) != len(self.t_stars):
            raise ConfigError(f"{where}.t_stars must be distinct positive diffusion steps, got {list(self.t_stars)}")
        if not self.samplers:
            raise ConfigError(f"{where}.samplers must list at least one setting")
        for i, spec in enumerate(self.samplers):
            spec.validate(f"{where}.samplers[{i}]")
            if spec.num_steps is not None and spec.num_steps > min(self.t_stars):
                raise ConfigError(f"{where}.samplers[{i}].num_steps ({spec.num_steps}) exceeds the smallest t* "
                                  f"({min(self.t_stars)}) of {where}.t_stars: strided steps must be in [1, t*] "
                                  "for every t*, or null")
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
