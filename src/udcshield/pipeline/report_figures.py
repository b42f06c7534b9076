"""The report's figures as PNG bytes: bar chart and budget curves drawn from the report data's numbers, image
grids from the grid store (inputs and restorations written by the evaluate stage) and the test store's
targets, the display mask and PSF from the PSF store. No restorer runs here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from udcshield.attacks.registry import attack_label
from udcshield.evaluation.figures import (
    Curve,
    budget_curves_png,
    grouped_bars_png,
    image_grid_png,
    mask_panel,
    perturbation_view,
    png_bytes,
    psf_panel,
)
from udcshield.pipeline.grid import read_grid
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import CLEAN
from udcshield.store.zarr_io import read_array, read_images

Data = Mapping[str, Any]


def bars_png(data: Data) -> bytes:
    """Worst case per restorer: one bar per series of ``data["worst_cases"]["bars"]``."""
    bars = data["worst_cases"]["bars"]
    return grouped_bars_png("Worst case per restorer (mean PSNR over test images)", bars["groups"],
                            {s["label"]: s["values"] for s in bars["series"]})


def curves_png(curve: Mapping[str, Any]) -> bytes:
    """Metric vs budget for one attack of ``data["curves"]``."""
    lines = [Curve(c["label"], curve["budgets"], c["values"], group=c["group"], kind=c["kind"]) for c in curve["lines"]]
    return budget_curves_png(f"{curve['attack']}: metric vs budget", lines)


def _db(values: list[float]) -> list[str]:
    return [f"{v:.2f} dB" for v in values]


def grid_png(data: Data, layout: Layout, panel: Mapping[str, Any]) -> bytes:
    """Image grid of one restorer variant: ground truth, UDC input, adversarial input, amplified perturbation,
    restored clean / attacked, purified attacked, defended output; PSNR (from the data) under the tiles."""
    g = data["grid"]
    source, cond, eps = panel["source"], g["condition"], panel["eps"]
    targets = read_images(layout.test_store, "targets", rows=slice(0, len(g["image_ids"])))
    inputs = read_grid(layout, source, "none", CLEAN, "input")
    adv = read_grid(layout, source, "none", cond, "input")
    adv_title = f"adversarial ({attack_label(g['attack'], g['budget'])})"
    defended = panel["defended_title"]
    cols = [("ground truth", targets), ("UDC input", inputs), (adv_title, adv),
            (f"perturbation x{0.5 / eps:.0f}", perturbation_view(adv, inputs, eps)),
            ("restored (clean input)", read_grid(layout, source, "none", CLEAN, "restored")),
            ("restored (attacked)", read_grid(layout, source, "none", cond, "restored")),
            ("purified (attacked)", read_grid(layout, source, "purified", cond, "input")),
            (defended, read_grid(layout, source, "purified", cond, "restored"))]
    db = panel["psnr"]
    notes = {"UDC input": _db(db["input"]), adv_title: _db(db["adversarial"]),
             "restored (clean input)": _db(db["restored_clean"]), "restored (attacked)": _db(db["restored_attacked"]),
             "purified (attacked)": _db(db["purified_attacked"]), defended: _db(db["defended"])}
    return image_grid_png(cols, list(g["image_ids"]), notes)


def optics_panels(layout: Layout) -> dict[str, Any]:
    """``mask`` and ``psf`` panels (H, W, 3) uint8: display transmission and the centre PSF, log scale."""
    return {"mask": mask_panel(read_array(layout.psf_store, "mask")),
            "psf": psf_panel(read_array(layout.psf_store, "psf")[0])}


def render_figures(data: Data, layout: Layout) -> dict[str, bytes]:
    """Every figure of the HTML view as PNG bytes: ``bars``, ``curves/<attack>``, ``grid/<model>/<variant>``,
    ``mask`` and ``psf`` (the last two are also written beside ``report.md``)."""
    out = {"bars": bars_png(data)}
    out.update({f"curves/{c['attack']}": curves_png(c) for c in data["curves"]})
    out.update({f"grid/{p['source']}": grid_png(data, layout, p) for p in data["grid"]["panels"]})
    out.update({name: png_bytes(panel) for name, panel in optics_panels(layout).items()})
    return out
