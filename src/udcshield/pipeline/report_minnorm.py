"""The report's minimum-norm rows: C&W-L2 as published (Carlini & Wagner, IEEE S&P 2017) and as the study runs
it (9 binary-search steps, confidence 0; Song et al., arXiv 2402.13629), unbounded, so that its number is the
L2 norm it needed for its success rule, not a PSNR inside an L-inf ball.

One row per unbounded set (``budget_mode: unbounded``, e.g. ``cw_l2`` at budget 256): the success rule
(PSNR at least ``tau_db`` below the clean output's), how many images met it, the realised L2 norm (mean over
images, and as the root-mean-square change per value in units of 1/256, comparable with an L-inf budget),
and the PSNR reached undefended and purified with 95 % bootstrap intervals. :func:`minimum_norm` builds the
data (part of ``report.json``); :func:`minimum_norm_lines` and :func:`minimum_norm_section` render it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from udcshield.attacks.budget import BUDGET_UNIT, UNBOUNDED
from udcshield.attacks.registry import attack_class, budget_mode
from udcshield.config import Params
from udcshield.evaluation import html as H
from udcshield.evaluation.tables import ci_text
from udcshield.pipeline.names import DEFENSES, array_name, model_label, restorers
from udcshield.pipeline.summary import interval

INTRO = ("Minimum-norm attacks, unbounded (not clipped to any L-inf ball): each image's smallest perturbation "
         "found whose restored PSNR falls at least tau dB below the clean output's. The measurement is the norm: "
         "mean L2 over images, and the same as a root-mean-square change per value in units of 1/256 (an L-inf "
         "budget of b/256 allows at most b/256 RMS). Images that never met the rule keep their most distorting "
         "iterate.")


def _settings(spec_kwargs: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The attack's binary-search steps, steps per search step, tau_db and confidence (defaults filled in)."""
    defaults = {k: p.default for k, p in inspect.signature(attack_class(name).__init__).parameters.items()}
    return {key: spec_kwargs.get(key, defaults.get(key))
            for key in ("binary_search_steps", "steps", "tau_db", "confidence")}


def minimum_norm(params: Params, summary: dict[str, Any], attack_attrs: dict[str, dict],
                 n_images: int) -> list[dict[str, Any]]:
    """Rows {set, source, attack, settings, successes, images, l2_mean, rms_256, psnr: {defense: {mean, ci}}}
    for every unbounded attack set. ``summary``: evaluation means; ``attack_attrs``: the sets' store attributes
    (``l2_mean``, ``eps`` = sqrt(C H W) at budget 256, ``cost.successes``); ``n_images``: test images."""
    rows = []
    for spec in params.attack.attacks:
        if budget_mode(spec.name) != UNBOUNDED:
            continue
        for source in restorers(params):
            for budget in sorted(spec.budgets):
                name = array_name(source, spec.name, budget)
                attrs = attack_attrs[name]
                cells = summary.get(model_label(source), {})
                cond = f"{spec.name}_{budget}"
                psnr = {d: {"mean": cells[d][cond]["psnr"], "ci": interval(cells[d][cond], "psnr")}
                        for d in DEFENSES if cond in cells.get(d, {})}
                rows.append({"set": name, "source": source, "attack": spec.name,
                             "settings": _settings(spec.kwargs, spec.name),
                             "successes": attrs["cost"].get("successes"), "images": n_images,
                             "l2_mean": attrs["l2_mean"], "rms_256": attrs["l2_mean"] / attrs["eps"] * BUDGET_UNIT,
                             "psnr": psnr})
    return rows


def _cells(row: Mapping[str, Any]) -> list[str]:
    s = row["settings"]
    rule = (f"PSNR <= clean - {s['tau_db']:g} dB (kappa {s['confidence']:g}; {s['binary_search_steps']} binary-search "
            f"steps x {s['steps']})")
    met = "" if row["successes"] is None else f"{row['successes']}" + (f"/{row['images']}" if row["images"] else "")
    psnr = [ci_text("psnr", row["psnr"][d]["mean"], row["psnr"][d]["ci"]) if d in row["psnr"] else "-"
            for d in DEFENSES]
    return [row["source"], row["attack"], rule, met, f"{row['l2_mean']:.4f}", f"{row['rms_256']:.2f}/256", *psnr]


HEADER = ["restorer", "attack", "success rule", "met", "mean L2", "RMS per value", "PSNR undefended",
          "PSNR purified"]


def minimum_norm_lines(data: Mapping[str, Any]) -> list[str]:
    """``## Minimum-norm attacks (C&W-L2, unbounded)``: one markdown row per set; nothing when there is none."""
    rows = data.get("minimum_norm") or []
    if not rows:
        return []
    lines = ["## Minimum-norm attacks (C&W-L2, unbounded)", "", INTRO, "", "| " + " | ".join(HEADER) + " |",
             "|" + "---|" * len(HEADER)]
    return lines + ["| " + " | ".join(_cells(r)) + " |" for r in rows] + [""]


def minimum_norm_section(data: Mapping[str, Any]) -> H.Section | None:
    """The same table as :func:`minimum_norm_lines`, for the HTML view; None when there is no such set."""
    rows = data.get("minimum_norm") or []
    if not rows:
        return None
    body = H.paragraph(INTRO) + H.table(HEADER, [_cells(r) for r in rows], left_columns=3, table_id="minimum-norm")
    return H.Section("minimum-norm", "Minimum-norm attacks (C&W-L2, unbounded)", body)
