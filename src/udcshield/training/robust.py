"""Robust fine-tuning of UDC restorers: purified, adversarial, TRADES-style and mixed objectives.

Four modes, all driven by the shared loop :func:`udcshield.training.restorer.train_loop`:

- ``purified``: supervised fine-tuning on diffusion-purified inputs (Song et al., arXiv 2402.13629); this
  is exactly :func:`udcshield.training.restorer.train_restorer` on the purified pairs.
- ``adversarial``: adversarial training (Madry et al., ICLR 2018). Every step crafts PGD examples against
  the current weights (inner maximisation of the distortion to the ground truth, L-inf radius eps), then
  minimises (1 - w) l(f(x), y) + w l(f(x_adv), y); w = 1 is Madry et al.'s objective, w = 0.5 the mixed
  objective of Goodfellow et al. (ICLR 2015).
- ``trades``: TRADES (Zhang et al., ICML 2019) adapted to restoration: l(f(x), y) + beta MSE(f(x_adv), f(x)),
  the KL divergence between class posteriors replaced by the squared distance between restored images;
  x_adv maximises MSE(f(x'), f(x)) (PGD against the model's own clean output, random start).
- ``mixed``: each batch is half purified pairs and half adversarial examples of clean inputs:
  (1 - w) l(f(x_pur), y_pur) + w l(f(x_adv), y).

l is the pixel loss (L2 or L1) plus the optional VGG-19 perceptual term
(:func:`udcshield.training.perceptual.restoration_loss`). Images are (N, 3, H, W) float in [0, 1]; eps is in
that domain. The inner attack is :class:`udcshield.attacks.pgd.PGD`; it never touches the parameters (it
differentiates with respect to the input only) and restores the model's train/eval flags.

``trainable`` selects the layers that learn: parameters whose dotted name equals a prefix or starts with
``prefix + "."`` stay trainable; all others get ``requires_grad = False`` and are left out of the optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from udcshield.attacks.budget import budget_to_linf
from udcshield.attacks.pgd import PGD
from udcshield.config import ConfigError
from udcshield.training.restorer import LossFn, check_training_pairs, draw_batch, resolve_loss, train_loop, \
    train_restorer

__all__ = ["MODES", "unknown_prefixes", "matches_prefix", "select_trainable", "inner_attack", "craft_adversarial",
           "adversarial_objective", "trades_objective", "finetune_restorer"]

MODES: tuple[str, ...] = ("purified", "adversarial", "trades", "mixed")
Observer = Callable[[torch.Tensor, torch.Tensor], None] | None


def matches_prefix(name: str, prefixes: Sequence[str]) -> bool:
    """True when parameter ``name`` (dotted, e.g. ``decoders.0.0.conv1.weight``) equals a prefix or lies below one."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def unknown_prefixes(names: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    """The prefixes (in their given order) that match none of the parameter ``names``."""
    return [p for p in prefixes if not any(matches_prefix(n, [p]) for n in names)]


def select_trainable(model: nn.Module, trainable: str | Sequence[str] = "all",
                     where: str = "finetune.trainable") -> list[str]:
    """Freeze every parameter of ``model`` outside ``trainable``; returns the names left trainable.

    Args:
        model: the restorer; its parameters' ``requires_grad`` flags are set in place.
        trainable: ``"all"`` (everything trains) or parameter-name prefixes such as ``["decoders", "tail"]``.
        where: the params key named in errors.

    Raises:
        ConfigError: ``trainable`` is another string, an empty list, or holds prefixes matching no
            parameter (the message names them and lists the model's top-level groups).
    """
    names = [name for name, _ in model.named_parameters()]
    if isinstance(trainable, str):
        if trainable != "all":
            raise ConfigError(f"{where} must be 'all' or a list of parameter-name prefixes, got {trainable!r}")
        prefixes: list[str] | None = None
    else:
        prefixes = list(trainable)
        if not prefixes:
            raise ConfigError(f"{where} must be 'all' or a non-empty list of parameter-name prefixes")
        unknown = unknown_prefixes(names, prefixes)
        if unknown:
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(f"{where}: prefixes {unknown} match no parameter of "
                              f"{getattr(model, 'restorer_name', type(model).__name__)} "
                              f"(its top-level parameter groups: {', '.join(tops)})")
    kept = []
    for name, param in model.named_parameters():
        train_it = prefixes is None or matches_prefix(name, prefixes)
        param.requires_grad_(train_it)
        if train_it:
            kept.append(name)
    return kept


def inner_attack(model: nn.Module, *, eps: float, steps: int, objective: str = "mse",
                 reference: str = "target") -> PGD:
    """The inner maximisation of adversarial training: L-inf PGD with random start (Madry et al. 2018).

    ``eps`` in [0, 1] (image domain), ``steps`` >= 1, step size 2.5 eps / steps. ``reference`` "target"
    attacks the distortion to the ground truth (adversarial training), "clean_output" the distance to the
    model's own clean output (TRADES). The attack runs on the device of ``model``'s parameters.
    """
    return PGD(model, eps=eps, steps=steps, random_start=True, objective=objective, reference=reference,
               keep_best=False)


def craft_adversarial(attack: PGD, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Adversarial version of batch ``x`` (B, 3, h, w) in [0, 1] against ``attack.model``'s current weights.

    One random-start seed per image is drawn from ``generator``; the result is detached, in [0, 1] and
    within ``attack.eps`` of ``x`` in L-inf (exact projection of :func:`udcshield.attacks.base.project_linf`).
    """
    seeds = torch.randint(0, 2**62, (x.shape[0],), generator=generator, device=generator.device).tolist()
    return attack(x, y, seeds=seeds).detach()


def adversarial_objective(model: nn.Module, x_benign: torch.Tensor, y_benign: torch.Tensor, x_adv: torch.Tensor,
                          y_adv: torch.Tensor, loss_fn: LossFn, weight: float) -> torch.Tensor:
    """(1 - weight) l(f(x_benign), y_benign) + weight l(f(x_adv), y_adv), a scalar (Madry et al. 2018 for
    weight 1; Goodfellow et al. 2015 for 0.5). One forward pass over both batches (skipped for a zero weight)."""
    if weight >= 1.0:
        return loss_fn(model(x_adv), y_adv)
    if weight <= 0.0:
        return loss_fn(model(x_benign), y_benign)
    out = model(torch.cat([x_benign, x_adv]))
    n = x_benign.shape[0]
    return (1.0 - weight) * loss_fn(out[:n], y_benign) + weight * loss_fn(out[n:], y_adv)


def trades_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, loss_fn: LossFn,
                     beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """TRADES for restoration (Zhang et al. 2019): returns (l(f(x), y) + beta R, R) with
    R = MSE(f(x_adv), f(x)) >= 0, gradients flowing through both outputs. R is 0 when x_adv equals x."""
    out = model(torch.cat([x, x_adv]))
    n = x.shape[0]
    robust = nn.functional.mse_loss(out[n:], out[:n])
    return loss_fn(out[:n], y) + beta * robust, robust


def finetune_restorer(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    mode: str = "purified",
    purified_inputs: torch.Tensor | None = None,
    purified_targets: torch.Tensor | None = None,
    attack_eps: float = budget_to_linf(8),
    attack_steps: int = 3,
    trades_beta: float = 1.0,
    adversarial_weight: float = 0.5,
    objective: str = "mse",
    trainable: str | Sequence[str] = "all",
    iterations: int,
    batch_size: int,
    crop_size: int,
    lr: float,
    lr_min: float,
    loss: str | LossFn = "l2",
    flips: bool = True,
    color_jitter: float = 0.0,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    log_every: int = 10,
    progress: Callable[[dict], None] | None = None,
    on_adversarial: Observer = None,
) -> list[dict]:
    """Fine-tune ``model`` in place in one of :data:`MODES` (see the module docstring); returns the history.

    Args:
        model: restorer (B, 3, h, w) [0, 1] -> same shape; moved to ``device``; parameters outside
            ``trainable`` are frozen (``requires_grad`` False, not in the optimizer, bit-identical after).
        inputs, targets: (N, 3, H, W) clean degraded inputs and ground truth in [0, 1] (adversarial and
            TRADES examples are crafted from these).
        mode: "purified" | "adversarial" | "trades" | "mixed".
        purified_inputs, purified_targets: (M, 3, H, W) purified pairs; required by "purified" and "mixed".
        attack_eps: L-inf radius of the inner PGD in [0, 1] (e.g. 8/256); attack_steps its steps.
        trades_beta: weight beta >= 0 of the TRADES term. adversarial_weight: w in [0, 1] (module docstring).
        objective: distortion the inner attack maximises, "mse" or "l1" (match the pixel loss).
        trainable: "all" or parameter-name prefixes (:func:`select_trainable`).
        iterations, batch_size, crop_size, lr, lr_min, loss, flips, color_jitter, generator, device,
        log_every, progress: as in :func:`udcshield.training.restorer.train_restorer`; in "mixed" mode
            each step takes batch_size // 2 purified pairs and the rest as adversarial examples.
        on_adversarial: called with (x, x_adv) after each inner attack (e.g. to log or check budgets).

    Returns:
        History rows ``{"step", "loss", "lr", "elapsed_s"}``; the model is left in eval mode.

    Raises:
        ConfigError: unknown prefixes in ``trainable``. ValueError: unknown mode, missing purified pairs,
        bad shapes or hyper-parameters. FloatingPointError: NaN/inf loss.
    """
    if mode not in MODES:
        raise ValueError(f"unknown fine-tuning mode {mode!r}; choose one of {list(MODES)}")
    if not 0.0 <= adversarial_weight <= 1.0:
        raise ValueError(f"adversarial_weight must be in [0, 1], got {adversarial_weight!r}")
    if not trades_beta >= 0.0:
        raise ValueError(f"trades_beta must be >= 0, got {trades_beta!r}")
    select_trainable(model, trainable)
    common = dict(iterations=iterations, batch_size=batch_size, crop_size=crop_size, lr=lr, lr_min=lr_min,
                  loss=loss, flips=flips, color_jitter=color_jitter, generator=generator, device=device,
                  log_every=log_every, progress=progress)
    if mode in ("purified", "mixed") and (purified_inputs is None or purified_targets is None):
        raise ValueError(f"fine-tuning mode {mode!r} needs purified_inputs and purified_targets")
    if mode == "purified":
        return train_restorer(model, purified_inputs, purified_targets, **common)
    check_training_pairs(inputs, targets, iterations=iterations, batch_size=batch_size, crop_size=crop_size,
                         lr=lr, lr_min=lr_min, log_every=log_every)
    if mode == "mixed":
        if batch_size < 2:
            raise ValueError("mode 'mixed' needs batch_size >= 2 (half purified, half adversarial)")
        check_training_pairs(purified_inputs, purified_targets, iterations=iterations, batch_size=batch_size,
                             crop_size=crop_size, lr=lr, lr_min=lr_min, log_every=log_every)
    loss_fn = resolve_loss(loss)
    model.to(device)
    attack = inner_attack(model, eps=attack_eps, steps=attack_steps, objective=objective,
                          reference="clean_output" if mode == "trades" else "target")
    n_pur = batch_size // 2 if mode == "mixed" else 0

    def draw(images: torch.Tensor, refs: torch.Tensor, size: int, gen: torch.Generator):
        x, y = draw_batch(images, refs, batch_size=size, crop_size=crop_size, flips=flips,
                          color_jitter=color_jitter, generator=gen)
        return x.to(device), y.to(device)

    def step_loss(gen: torch.Generator) -> torch.Tensor:
        x, y = draw(inputs, targets, batch_size - n_pur, gen)
        x_adv = craft_adversarial(attack, x, y, gen)
        if on_adversarial is not None:
            on_adversarial(x, x_adv)
        if mode == "adversarial":
            return adversarial_objective(model, x, y, x_adv, y, loss_fn, adversarial_weight)
        if mode == "trades":
            return trades_objective(model, x, y, x_adv, loss_fn, trades_beta)[0]
        x_pur, y_pur = draw(purified_inputs, purified_targets, n_pur, gen)
        return adversarial_objective(model, x_pur, y_pur, x_adv, y, loss_fn, adversarial_weight)

    return train_loop(model, step_loss, name=f"finetune[{mode}]", iterations=iterations, lr=lr, lr_min=lr_min,
                      generator=generator, device=device, log_every=log_every, progress=progress)
