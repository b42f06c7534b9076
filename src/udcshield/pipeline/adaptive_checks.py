"""Gradient-masking checks of the adaptive evaluation: the entries of ``data/adaptive/checks.json``.

A robustness number is only as good as the attack behind it. Athalye, Carlini & Wagner (ICML 2018, Sec. 3.1)
and Carlini et al. ("On Evaluating Adversarial Robustness", arXiv 1902.06705) list the symptoms of masked or
obfuscated gradients; the adaptive stage tests four of them on the defended system (purify -> restore),
per restorer variant and budget:

* ``full_vs_bpda``: exact gradients through the reverse chain are at least as strong as BPDA, the
  identity approximation of the purifier's Jacobian: PSNR_full <= PSNR_bpda + tol;
* ``full_vs_transfer`` / ``bpda_vs_transfer``: an adaptive attack is at least as strong as transfer, the
  non-adaptive PGD set crafted on the bare restorer and then purified (attack label ``pgd``):
  PSNR_adaptive <= PSNR_pgd + tol;
* ``square_vs_whitebox``: the black-box Square attack (Andriushchenko et al., ECCV 2020) on the defended
  system is not stronger than the white-box attacks (per image the strongest of them):
  PSNR_square >= PSNR_whitebox - tol;
* ``large_budget_floor`` (budget ``checks.large_budget``, 64/256 by default): a very large budget breaks the
  system, i.e. the attack's PSNR comes within ``floor_tolerance_db`` of the floor, the defended PSNR of
  uniform-random input images: PSNR_large <= PSNR_floor + floor_tol.

PSNR is the mean over images of the per-image mean over the ``adaptive.draws`` evaluation draws (the same
draws for every set, so the comparisons are paired). A check whose inputs are missing (no BPDA attack, no
``pgd`` set at that budget) has no entry. Each entry: ``restorer``, ``model``, ``budget``, ``check``,
``status`` ("pass" or "FAIL"), ``compared`` (label -> PSNR dB), ``threshold_db`` (the bound the first
value is held to), ``tolerance_db``, ``images`` and a one-line ``explanation``; check attacks add ``cost``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from udcshield.pipeline.names import model_label

__all__ = ["CHECKS", "FAIL", "PASS", "SCHEMA", "checks_document", "entry", "floor_check", "ordering_checks",
           "square_check", "strongest"]

#: Schema version of checks.json.
SCHEMA = 1
PASS, FAIL = "pass", "FAIL"
#: Every check, in the order of checks.json.
CHECKS: tuple[str, ...] = ("full_vs_bpda", "full_vs_transfer", "bpda_vs_transfer", "square_vs_whitebox",
                           "large_budget_floor")
#: Label of the transfer (non-adaptive PGD) set in the adaptive records.
TRANSFER = "pgd"


def entry(source: str, budget: int, check: str, passed: bool, compared: dict[str, float], threshold: float,
          tolerance: float, images: int, explanation: str, **extra: Any) -> dict[str, Any]:
    """One checks.json entry (see the module docstring); numbers rounded to 4 decimals."""
    return {"restorer": source, "model": model_label(source), "budget": int(budget), "check": check,
            "status": PASS if passed else FAIL, "compared": {k: round(float(v), 4) for k, v in compared.items()},
            "threshold_db": round(float(threshold), 4), "tolerance_db": float(tolerance), "images": int(images),
            "explanation": explanation, **extra}


def strongest(psnr: dict[str, float], names: Iterable[str]) -> tuple[str, float] | None:
    """(name, PSNR) of the lowest mean PSNR among ``names`` present in ``psnr``; None if none is."""
    found = [(psnr[n], n) for n in names if n in psnr]
    if not found:
        return None
    value, name = min(found)
    return name, value


def ordering_checks(source: str, budget: int, psnr: dict[str, float], gradients: dict[str, str],
                    tolerance: float, images: int) -> list[dict[str, Any]]:
    """``full_vs_bpda``, ``full_vs_transfer`` and ``bpda_vs_transfer`` at one budget.

    Args:
        source: restorer variant ``<model>/<variant>``.
        budget: integer budget (units of 1/256).
        psnr: attack label -> defended PSNR (dB, mean over draws and images) at this budget; ``pgd`` is the
            transfer set.
        gradients: adaptive attack name -> its gradient mode ("full" or "bpda").
        tolerance: slack in dB (>= 0).
        images: images behind each mean.
    """
    out = []
    full = strongest(psnr, [n for n, g in gradients.items() if g == "full"])
    bpda = strongest(psnr, [n for n, g in gradients.items() if g == "bpda"])
    if full is not None and bpda is not None:
        (fn, fv), (bn, bv) = full, bpda
        ok = fv <= bv + tolerance
        text = (f"full-gradient {fn} ({fv:.2f} dB) is at least as strong as BPDA {bn} ({bv:.2f} dB) within "
                f"{tolerance:g} dB" if ok else
                f"BPDA {bn} ({bv:.2f} dB) beats full-gradient {fn} ({fv:.2f} dB) by more than {tolerance:g} dB: "
                "exact gradients through the reverse chain look masked (vanishing or noisy) or under-converged")
        out.append(entry(source, budget, "full_vs_bpda", ok, {fn: fv, bn: bv}, bv + tolerance, tolerance, images, text))
    if TRANSFER in psnr:
        tv = psnr[TRANSFER]
        for check, found, kind in (("full_vs_transfer", full, "full-gradient"), ("bpda_vs_transfer", bpda, "BPDA")):
            if found is None:
                continue
            name, value = found
            ok = value <= tv + tolerance
            text = (f"{kind} {name} ({value:.2f} dB) is at least as strong as transfer {TRANSFER} ({tv:.2f} dB) "
                    f"within {tolerance:g} dB" if ok else
                    f"transfer {TRANSFER} ({tv:.2f} dB), crafted without seeing the purifier, beats {kind} {name} "
                    f"({value:.2f} dB) by more than {tolerance:g} dB: the adaptive gradients look masked")
            out.append(entry(source, budget, check, ok, {name: value, TRANSFER: tv}, tv + tolerance, tolerance,
                             images, text))
    return out


def square_check(source: str, budget: int, square: Sequence[float], whitebox: Sequence[float], tolerance: float,
                 queries: int, eot_samples: int, cost: dict[str, Any] | None = None) -> dict[str, Any]:
    """``square_vs_whitebox``: per-image defended PSNR (dB) of Square and of the strongest white-box attack of
    each image, on the same images; FAIL if Square's mean is more than ``tolerance`` below the white-box one."""
    if len(square) != len(whitebox) or not square:
        raise ValueError(f"square and whitebox need the same non-zero number of images, got {len(square)} "
                         f"and {len(whitebox)}")
    sv, wv = sum(square) / len(square), sum(whitebox) / len(whitebox)
    ok = sv >= wv - tolerance
    text = (f"black-box Square ({queries} queries x {eot_samples} draws, {sv:.2f} dB) is not stronger than the "
            f"best white-box attack per image ({wv:.2f} dB) by more than {tolerance:g} dB" if ok else
            f"black-box Square ({sv:.2f} dB) beats the best white-box attack per image ({wv:.2f} dB) by more than "
            f"{tolerance:g} dB: the white-box gradients are masked")
    extra = {"cost": cost} if cost is not None else {}
    return entry(source, budget, "square_vs_whitebox", ok, {"square": sv, "whitebox": wv}, wv - tolerance,
                 tolerance, len(square), text, **extra)


def floor_check(source: str, budget: int, attack: str, attacked: float, floor: float, tolerance: float,
                images: int, cost: dict[str, Any] | None = None) -> dict[str, Any]:
    """``large_budget_floor``: the defended PSNR of ``attack`` at a large ``budget`` against the random-image
    floor; FAIL if it stays more than ``tolerance`` dB above it."""
    ok = attacked <= floor + tolerance
    text = (f"at {budget}/256, {attack} brings the defended PSNR to {attacked:.2f} dB, within {tolerance:g} dB of "
            f"the random-image floor {floor:.2f} dB" if ok else
            f"at {budget}/256, {attack} leaves the defended PSNR at {attacked:.2f} dB, more than {tolerance:g} dB "
            f"above the random-image floor {floor:.2f} dB: even a huge budget does not break the system "
            "(masked gradients or a broken attack)")
    extra = {"cost": cost} if cost is not None else {}
    return entry(source, budget, "large_budget_floor", ok, {attack: attacked, "random_floor": floor},
                 floor + tolerance, tolerance, images, text, **extra)


def checks_document(entries: list[dict[str, Any]], settings: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """The whole checks.json: ``schema``, ``enabled``, ``status`` ("pass" when no entry fails, "FAIL"
    otherwise), ``passed`` / ``failed`` counts, ``metric``, the ``settings`` used and the ``checks`` entries
    (sorted by restorer, budget and :data:`CHECKS` order)."""
    order = {c: i for i, c in enumerate(CHECKS)}
    entries = sorted(entries, key=lambda e: (e["restorer"], e["budget"], order.get(e["check"], len(order))))
    failed = sum(e["status"] == FAIL for e in entries)
    return {"schema": SCHEMA, "enabled": bool(enabled), "status": FAIL if failed else PASS,
            "passed": len(entries) - failed, "failed": failed, "metric": "psnr_mean_draws",
            "settings": settings, "checks": entries}
