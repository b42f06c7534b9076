"""The per-image worst case over an attack suite, and the convergence flags beside the means.

AutoAttack (Croce & Hein, ICML 2020) reports, per input, the worst outcome over a suite of diverse attacks
(APGD, a second white-box attack, the black-box Square attack), not the worst of the attacks' means:
an image that resists one attack may fall to another. For a restorer the outcome is a distortion, so the
worst case of image i at budget b is min over the suite's attacks a of PSNR(restorer(x_a,b,i), y_i) (and
likewise for SSIM; the max for a distance such as LPIPS, where lower is better), for each restorer variant x
defense. These rows join the evaluation records as attack
``worst_case``, so they get means and intervals like every other condition, and they are the report's
headline number.

The suite is ``evaluate.worst_case``, or by default every attack of ``attack.attacks`` whose threat model
is L-inf (an L2 attack's budget is another ball). Transfer cells (crafted on another restorer) are not
members: they measure transfer, and the white-box attacks on the restorer itself dominate them.
"""

from __future__ import annotations

from typing import Any

from udcshield.attacks.registry import threat_norm
from udcshield.config import Params
from udcshield.evaluation.metrics import worse
from udcshield.pipeline.names import CLEAN, array_name, model_label, restorers
from udcshield.store.zarr_io import StorePath, store_attrs

WORST_CASE = "worst_case"

__all__ = ["WORST_CASE", "attach_convergence", "suite", "worst_case_records"]


def suite(params: Params) -> list[str]:
    """Attack names of the worst case: ``evaluate.worst_case`` or every L-inf attack of ``attack.attacks``."""
    if params.evaluate.worst_case is not None:
        return list(params.evaluate.worst_case)
    return [spec.name for spec in params.attack.attacks if threat_norm(spec.name) == "linf"]


def worst_case_records(params: Params, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``worst_case`` record per (restorer, defense, budget, metric, image): the worst value over the
    suite's attacks at that budget, the lowest (PSNR, SSIM) or, for a metric where lower is better (LPIPS,
    :data:`udcshield.evaluation.metrics.LOWER_IS_BETTER`), the highest (``records``: evaluation rows, one per
    image x metric x cell).

    A budget gets a worst case when at least one member was run at it; every image of such a cell must
    have a value for every member run at that budget (else ValueError: a partial suite is not a worst case).
    """
    members = set(suite(params))
    groups: dict[tuple[str, str, int, str], dict[str, dict[str, float]]] = {}
    for r in records:
        if r["attack"] in members and r["attack"] != CLEAN:
            cell = groups.setdefault((r["model"], r["defense"], int(r["budget"]), r["metric"]), {})
            cell.setdefault(r["attack"], {})[r["image_id"]] = float(r["value"])
    out = []
    for (model, defense, budget, metric), by_attack in sorted(groups.items()):
        images = sorted(set().union(*(v.keys() for v in by_attack.values())))
        for attack, values in by_attack.items():
            if len(values) != len(images):
                raise ValueError(f"worst case of {model}/{defense} at {budget}/256: attack {attack!r} scored "
                                 f"{len(values)} of {len(images)} images")
        pick = worse(metric)
        for image in images:
            value = pick(values[image] for values in by_attack.values())
            out.append({"image_id": image, "model": model, "defense": defense, "attack": WORST_CASE,
                        "budget": budget, "metric": metric, "value": value})
    return out


def attach_convergence(params: Params, adversarial: StorePath, summary: dict[str, Any],
                       records: list[dict[str, Any]]) -> dict[str, Any]:
    """Add ``converged`` (bool) and ``convergence_drop_db`` to the undefended cells of ``summary`` whose
    adversarial set carries a convergence record (:mod:`udcshield.pipeline.convergence`), and to each
    undefended ``worst_case_<b>`` cell with at least one probed member. Returns ``summary``, changed in place.

    The worst case is checked as an ensemble: on the probe images, each image's lowest PSNR over the
    members (``records``, the evaluation rows) is compared with the lowest once the probe reruns (twice the
    steps, one more restart) join the suite; the cell is converged when the mean falls by at most
    ``attack.convergence.tolerance_db``. A member that did not converge but is dominated by another (its
    longer run still does not reach the image's worst case) then does not flag the cell.
    """
    members = set(suite(params))
    tolerance = params.attack.convergence.tolerance_db
    psnr = {(r["model"], r["attack"], int(r["budget"]), r["image_id"]): float(r["value"]) for r in records
            if r["defense"] == "none" and r["metric"] == "psnr"}
    ids = _test_ids(records)
    for source in restorers(params):
        if source.split("/")[1] not in params.attack.models:
            continue
        model = model_label(source)
        cells = summary.get(model, {}).get("none", {})
        probes: dict[int, list[dict[str, Any]]] = {}
        for spec in params.attack.attacks:
            for budget in spec.budgets:
                record = store_attrs(adversarial, array_name(source, spec.name, budget)).get("convergence")
                cell = cells.get(f"{spec.name}_{budget}")
                if record is None or cell is None:
                    continue
                cell["converged"] = bool(record["converged"])
                cell["convergence_drop_db"] = record["drop_db"]
                if spec.name in members:
                    probes.setdefault(budget, []).append(record)
        for budget, found in probes.items():
            cell = cells.get(f"{WORST_CASE}_{budget}")
            if cell is None:
                continue
            n = min(r["probe_images"] for r in found)
            at = [a for a in members if (model, a, budget, ids[0]) in psnr]
            before = [min(psnr[(model, a, budget, i)] for a in at) for i in ids[:n]]
            after = [min(b, *(r["probe_psnr_per_image"][k] for r in found)) for k, b in enumerate(before)]
            drop = round(sum(before) / n - sum(after) / n, 4)
            cell["converged"] = bool(drop <= tolerance)
            cell["convergence_drop_db"] = drop
    return summary


def _test_ids(records: list[dict[str, Any]]) -> list[str]:
    """Test image ids in the order of the test store (the order of the clean, undefended records)."""
    seen: dict[str, None] = {}
    for r in records:
        if r["attack"] == CLEAN and r["defense"] == "none":
            seen.setdefault(r["image_id"], None)
    return list(seen)
