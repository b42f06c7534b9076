"""Convergence of the iterative attacks, measured rather than assumed.

An attack that has not converged overstates robustness. The evaluation checklist of Carlini et al.
("On Evaluating Adversarial Robustness", arXiv 1902.06705, Sec. 4.4) asks that more iterations and more
random restarts leave the result unchanged, and APGD was built for that (Croce & Hein, ICML 2020). So
for every iterative set (restorer variant x attack x budget) the attack stage:

- keeps the objective per iteration of the real run: the best distortion after each scored iterate,
  averaged over the set's images, one curve per restart (:func:`history_sums`, :func:`add_history`,
  :func:`mean_objective`);
- reruns the attack on a probe subset (the first ``attack.convergence.probe_images`` test images, the
  same per-image seeds) with twice the steps and one more restart (:func:`probe_spec`);
- flags the set ``converged: false`` when the restorer's mean PSNR on the probe images falls by more
  than ``tolerance_db`` from the stored set to the longer rerun (:func:`convergence_record`).

Non-iterative attacks (FGSM), black-box query attacks (their length is a query budget, not steps) and the
universal perturbation have no probe; their sets carry no convergence record.
"""

from __future__ import annotations

from typing import Any

import torch

from udcshield.attacks.base import ImageAttack
from udcshield.attacks.budget import RADIUS
from udcshield.attacks.registry import attack_kwargs as accepted_kwargs
from udcshield.attacks.registry import budget_mode
from udcshield.config import AttackSpec
from udcshield.evaluation.metrics import psnr

__all__ = ["add_history", "convergence_record", "history_sums", "mean_objective", "probe_spec"]


def probe_spec(spec: AttackSpec, atk: ImageAttack) -> AttackSpec | None:
    """The probe's spec: ``spec`` with twice ``atk.steps`` and, where the attack takes restarts and starts
    at random, one more restart; None when the attack has no ``steps`` (one-step or query attacks), is
    the universal perturbation, or is a minimum-norm attack (C&W): its PSNR is fixed by its success rule,
    and what more steps change is the norm it needs, reported as the set's realised L2."""
    steps = getattr(atk, "steps", None)
    if spec.name == "universal" or isinstance(steps, bool) or not isinstance(steps, int):
        return None
    if budget_mode(spec.name) != RADIUS:
        return None
    kwargs = {**spec.kwargs, "steps": 2 * steps}
    if "restarts" in accepted_kwargs(spec.name) and getattr(atk, "random_start", False):
        kwargs["restarts"] = int(getattr(atk, "restarts", 1)) + 1
    return AttackSpec(name=spec.name, budgets=spec.budgets, kwargs=kwargs)


def history_sums(atk: ImageAttack) -> dict[str, Any] | None:
    """The last call's objective history summed over its images: {"sum": (runs, iterates) nested lists,
    "images": B}, or None for an attack that records none (``last_history`` empty)."""
    history = atk.last_history
    if history.ndim != 3 or history.numel() == 0:
        return None
    return {"sum": history.double().sum(dim=2).tolist(), "images": int(history.shape[2])}


def add_history(acc: dict[str, Any] | None, part: dict[str, Any] | None) -> dict[str, Any] | None:
    """Sum of two :func:`history_sums` (either may be None)."""
    if part is None:
        return acc
    if acc is None:
        return {"sum": [list(row) for row in part["sum"]], "images": part["images"]}
    summed = torch.tensor(acc["sum"], dtype=torch.float64) + torch.tensor(part["sum"], dtype=torch.float64)
    return {"sum": summed.tolist(), "images": acc["images"] + part["images"]}


def mean_objective(acc: dict[str, Any] | None) -> list[list[float]] | None:
    """Mean objective per restart and scored iterate over a set's images, (runs, iterates) nested lists,
    from the sum of its batches' :func:`history_sums`; None when none was recorded."""
    if not acc:
        return None
    mean = torch.tensor(acc["sum"], dtype=torch.float64) / int(acc["images"])
    return [[round(v, 8) for v in row] for row in mean.tolist()]


def convergence_record(spec: AttackSpec, probe: AttackSpec, restored: torch.Tensor, restored_probe: torch.Tensor,
                       targets: torch.Tensor, tolerance_db: float, atk: ImageAttack) -> dict[str, Any]:
    """Compare the stored set with the longer probe run on the same images.

    Args:
        spec, probe: the set's attack spec and the probe's (:func:`probe_spec`).
        restored: the restorer's output on the stored adversarial inputs of the probe images,
            (n, 3, H, W) in [0, 1]; ``restored_probe``: on the probe's; ``targets``: ground truth, same shape.
        tolerance_db: allowed PSNR drop (dB, >= 0).
        atk: the set's attack instance (for its steps and restarts).

    Returns:
        {"probe_images", "steps", "probe_steps", "probe_psnr_per_image", "restarts", "probe_restarts", "psnr",
        "probe_psnr", "drop_db", "tolerance_db", "converged"}; PSNR in the SYNTH convention, means over the
        probe images (the first ``probe_images`` test images, in order).
    """
    per_image, per_image_probe = psnr(restored, targets), psnr(restored_probe, targets)
    base, longer = per_image.mean(), per_image_probe.mean()
    drop = float(base - longer)
    return {"probe_images": int(targets.shape[0]), "steps": int(atk.steps), "probe_steps": int(probe.kwargs["steps"]),
            "probe_psnr_per_image": [round(float(v), 4) for v in per_image_probe.tolist()],
            "restarts": int(getattr(atk, "restarts", 1)),
            "probe_restarts": int(probe.kwargs.get("restarts", getattr(atk, "restarts", 1))),
            "psnr": round(float(base), 4), "probe_psnr": round(float(longer), 4), "drop_db": round(drop, 4),
            "tolerance_db": tolerance_db, "converged": bool(drop <= tolerance_db)}
