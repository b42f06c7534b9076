"""The report's input baseline: the raw UDC input beside each restorer on the clean test images.

The evaluate stage scores the identity "restorer" (model :data:`~udcshield.pipeline.names.INPUT_MODEL`: each raw
UDC test input against its ground truth, with the restorers' metric functions and convention). Here each
restorer variant x defense on the clean test images stands beside it, with its PSNR gain over the input:
the mean per-image difference restorer - input in dB with its 95 % percentile bootstrap interval over the
images (a paired comparison, Efron & Tibshirani 1993; :func:`udcshield.evaluation.statistics.paired_difference`).
When ``lpips`` is not among ``evaluate.metrics`` the section says so in one line (:data:`LPIPS_NOTE`).

:func:`input_baseline` builds the data (part of ``report.json``); :func:`input_lines` and :func:`input_section`
render it as markdown and HTML from that data alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from udcshield.config import Params
from udcshield.evaluation import html as H
from udcshield.evaluation.metrics import LOWER_IS_BETTER
from udcshield.evaluation.statistics import LEVEL, RESAMPLES, cell_seed, paired_difference, per_image
from udcshield.evaluation.tables import ci_text, signed_db
from udcshield.pipeline.names import CLEAN, DEFENSES, INPUT_MODEL, model_label, restorers
from udcshield.pipeline.summary import interval

INPUT_LABEL = "input (no restorer)"
GAIN_METRIC = "psnr"
LPIPS_NOTE = ("LPIPS: not computed — set evaluate.lpips_weights_path to a local LPIPS-AlexNet weights file (and "
              "list lpips in evaluate.metrics).")
MISSING = ("input (no restorer): not in the evaluation records (written by an older evaluate stage); rerun the "
           "evaluate stage.")
TITLE = "Clean test images: restorers vs the raw input"


def metric_header(metric: str) -> str:
    """Column title of a metric: ``PSNR (dB)``, ``SSIM``, ``LPIPS (lower is better)``."""
    if metric == "psnr":
        return "PSNR (dB)"
    return metric.upper() + (" (lower is better)" if metric in LOWER_IS_BETTER else "")


def _values(cell: Mapping[str, Any] | None, metrics: list[str]) -> dict[str, dict[str, Any]] | None:
    if cell is None:
        return None
    return {m: {"mean": cell.get(m), "ci": interval(cell, m)} for m in metrics}


def input_baseline(params: Params, summary: Mapping[str, Any], records: list[dict[str, Any]],
                   label: Callable[[str, str], str]) -> dict[str, Any]:
    """The input baseline and every restorer variant x defense on the clean test images.

    Args:
        params: the run's params (``evaluate.metrics``, the restorers, ``seed``).
        summary: evaluation means (:func:`udcshield.pipeline.summary.means`), with the input cell
            ``summary["input"]["none"]["clean"]`` when the evaluate stage scored it.
        records: evaluation rows (image_id, model, defense, attack, budget, metric, value).
        label: reader-facing name of (restorer ``<model>/<variant>``, defense).

    Returns:
        ``{"label", "metrics", "lpips", "gain_metric", "level", "resamples", "input", "rows"}``: ``input`` maps
        each metric to ``{"mean", "ci"}`` (None when the records have no input rows); one row per restorer
        variant x defense with its clean ``values`` (same form) and ``gain``: the paired per-image difference
        restorer - input of PSNR (dB), ``{"mean", "ci_low", "ci_high", "n", "excludes_zero"}`` rounded to 4
        decimals (None without input rows). Seeds: :func:`~udcshield.evaluation.statistics.cell_seed` of
        ``params.seed`` and ``input-gain|<model>|<defense>|clean|psnr``.

    Raises:
        ValueError naming both cells when the input and a restorer were scored on different images.
    """
    metrics = list(params.evaluate.metrics)
    clean: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for r in records:
        if r["attack"] == CLEAN and r["metric"] == GAIN_METRIC:
            clean[(r["model"], r["defense"])].append((r["image_id"], r["value"]))
    base = clean.get((INPUT_MODEL, "none"))
    rows = []
    for source in restorers(params):
        model = model_label(source)
        for defense in DEFENSES:
            gain = None
            if base and clean.get((model, defense)):
                (ids_r, r_values), (ids_i, i_values) = per_image(clean[(model, defense)]), per_image(base)
                if ids_r != ids_i:
                    raise ValueError(f"input baseline: cells ({model}, {defense}, clean) and ({INPUT_MODEL}, none, "
                                     "clean) hold different images")
                stats = paired_difference(r_values, i_values,
                                          cell_seed(params.seed, f"input-gain|{model}|{defense}|{CLEAN}|{GAIN_METRIC}"))
                low, high = round(stats["ci_low"], 4), round(stats["ci_high"], 4)
                gain = {"mean": round(stats["mean"], 4), "ci_low": low, "ci_high": high, "n": stats["n"],
                        "excludes_zero": low > 0 or high < 0}
            rows.append({"source": source, "model": model, "defense": defense, "defense_label": label(source, defense),
                         "values": _values(summary.get(model, {}).get(defense, {}).get(CLEAN), metrics),
                         "gain": gain})
    return {"label": INPUT_LABEL, "metrics": metrics, "lpips": "lpips" in metrics, "gain_metric": GAIN_METRIC,
            "level": LEVEL, "resamples": RESAMPLES,
            "input": _values(summary.get(INPUT_MODEL, {}).get("none", {}).get(CLEAN), metrics), "rows": rows}


def gain_text(gain: Mapping[str, Any] | None) -> str:
    """``+3.412 [+3.201, +3.630]`` (dB, paired 95 % interval); ``-`` without a gain."""
    if gain is None:
        return "-"
    return f"{signed_db(gain['mean'])} [{signed_db(gain['ci_low'])}, {signed_db(gain['ci_high'])}]"


def _cells(values: Mapping[str, Any] | None, metrics: list[str]) -> list[str]:
    return [ci_text(m, (values or {}).get(m, {}).get("mean"), (values or {}).get(m, {}).get("ci")) for m in metrics]


def intro(b: Mapping[str, Any]) -> str:
    """The method sentences of the section."""
    return (f"Mean over the test images [{100 * b['level']:g} % percentile bootstrap interval]. *{b['label']}*: the "
            "raw UDC input scored against the ground truth with the same metrics (tone-mapped, clamped to [0, 1], "
            "8-bit, RGB), what every restorer starts from. Gain: the paired per-image PSNR difference restorer - "
            f"input (dB) with its {100 * b['level']:g} % percentile bootstrap interval ({b['resamples']} resamples "
            "of the images).")


def header(b: Mapping[str, Any]) -> list[str]:
    """Columns of the table: restorer, defense, one per metric, the PSNR gain."""
    return ["restorer", "defense", *map(metric_header, b["metrics"]),
            f"PSNR gain over input (dB) [{100 * b['level']:g} % CI, paired]"]


def table_rows(b: Mapping[str, Any], source_key: str = "model") -> list[list[str]]:
    """The input row first, then one row per restorer variant x defense (``source_key``: ``model`` for the
    ``<model>:<variant>`` label, ``source`` for ``<model>/<variant>``)."""
    rows = [[b["label"], "-", *_cells(b["input"], b["metrics"]), "-"]]
    return rows + [[r[source_key], r["defense"] if source_key == "model" else r["defense_label"],
                    *_cells(r["values"], b["metrics"]), gain_text(r["gain"])] for r in b["rows"]]


def _notes(b: Mapping[str, Any]) -> list[str]:
    return ([] if b["input"] is not None else [MISSING]) + ([] if b["lpips"] else [LPIPS_NOTE])


def input_lines(data: Mapping[str, Any]) -> list[str]:
    """``## Clean test images: restorers vs the raw input``: the input row, each restorer's clean numbers and
    PSNR gain, and the LPIPS line when LPIPS was not computed; nothing for report data without the section."""
    b = data.get("input_baseline")
    if not b:
        return []
    cols = header(b)
    lines = [f"## {TITLE}", "", intro(b), "", "| " + " | ".join(cols) + " |",
             "|---|---|" + "---:|" * (len(cols) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(b)]
    return lines + [""] + [line for note in _notes(b) for line in (note, "")]


def input_section(data: Mapping[str, Any]) -> H.Section | None:
    """The same table as :func:`input_lines`, for the HTML view; None for report data without it."""
    b = data.get("input_baseline")
    if not b:
        return None
    body = H.paragraph(intro(b)) + H.table(header(b), table_rows(b, "source"), left_columns=2,
                                          table_id="input-baseline")
    return H.Section("input-baseline", TITLE, body + "".join(H.paragraph(n) for n in _notes(b)))
