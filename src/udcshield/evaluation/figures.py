"""Figure renderers for the report: PSF and mask panels (numpy), and matplotlib plots rendered to PNG bytes
in memory (budget curves, worst-case bars, image grids). Nothing touches pyplot's global state: each plot
is a standalone :class:`matplotlib.figure.Figure` on the Agg canvas.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from udcshield.store.atomic import atomic_file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D")

_CHANNEL_TINT = np.array([[1.0, 0.25, 0.25], [0.25, 1.0, 0.25], [0.35, 0.45, 1.0]])


def psf_panel(psf: np.ndarray, *, decades: float = 5.0, zoom: int = 4) -> np.ndarray:
    """Log-scale view of a PSF, one tinted panel per channel side by side.

    Args:
        psf: (C, s, s) non-negative, each channel summing to 1.
        decades: dynamic range shown; values below max * 10**-decades are black.
        zoom: nearest-neighbour magnification.

    Returns:
        (zoom*s, C*zoom*s + (C-1)*zoom, 3) uint8 image.
    """
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 3 or not np.isfinite(psf).all() or (psf < 0).any():
        raise ValueError(f"psf must be (C, s, s), finite and non-negative, got shape {psf.shape}")
    panels = []
    for c, channel in enumerate(psf):
        log = np.log10(np.maximum(channel / channel.max(), 10.0 ** -decades))
        unit = (log + decades) / decades
        tint = _CHANNEL_TINT[c % len(_CHANNEL_TINT)]
        panels.append(np.kron(unit[..., None] * tint, np.ones((zoom, zoom, 1))))
        panels.append(np.zeros((panels[-1].shape[0], zoom, 3)))
    return (np.clip(np.concatenate(panels[:-1], axis=1), 0, 1) * 255).round().astype(np.uint8)


def mask_panel(mask: np.ndarray, *, zoom: int = 2) -> np.ndarray:
    """Display transmission (Y, X) in [0, 1] as a grey (zoom*Y, zoom*X, 3) uint8 image."""
    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2 or not np.isfinite(mask).all():
        raise ValueError(f"mask must be a finite 2-D array, got shape {mask.shape}")
    grey = np.kron(np.clip(mask, 0, 1), np.ones((zoom, zoom)))
    return (np.repeat(grey[..., None], 3, axis=2) * 255).round().astype(np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write an (H, W, 3) uint8 image as PNG atomically."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, image, extension=".png")


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 image as PNG bytes."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    return iio.imwrite("<bytes>", image, extension=".png")


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a matplotlib Figure to PNG bytes (Agg canvas, no file, no pyplot state)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


@dataclass(frozen=True)
class Curve:
    """One line of a budget plot: ``values[metric][i]`` measured at ``budgets[i]`` (units of 1/256; 0 = clean).

    Lines sharing ``group`` (a restorer) share a colour; ``kind`` (a defense) picks the line style.
    """

    label: str
    budgets: Sequence[int]
    values: Mapping[str, Sequence[float]]
    group: str = ""
    kind: str = ""


@dataclass
class _StyleBook:
    colors: dict[str, str] = field(default_factory=dict)
    styles: dict[str, int] = field(default_factory=dict)

    def style(self, curve: Curve) -> dict:
        color = self.colors.setdefault(curve.group, _COLORS[len(self.colors) % len(_COLORS)])
        k = self.styles.setdefault(curve.kind, len(self.styles))
        return {"color": color, "linestyle": _STYLES[k % len(_STYLES)], "marker": _MARKERS[k % len(_MARKERS)]}


def budget_curves_png(title: str, curves: Sequence[Curve], metrics: Sequence[str] = ("psnr", "ssim")) -> bytes:
    """Metric vs budget, one panel per metric present in the curves, one line per :class:`Curve`.

    Args:
        title: figure title (e.g. the attack).
        curves: non-empty; every value finite; budgets ascending integers >= 0.
        metrics: panels in this order; a metric no curve has is skipped.

    Returns:
        PNG bytes.
    """
    if not curves:
        raise ValueError(f"{title}: no curves to plot")
    for c in curves:
        if list(c.budgets) != sorted(c.budgets) or any(b < 0 for b in c.budgets):
            raise ValueError(f"{title}/{c.label}: budgets must ascend and be >= 0, got {list(c.budgets)}")
        for m, vals in c.values.items():
            if len(vals) != len(c.budgets) or not all(math.isfinite(v) for v in vals):
                raise ValueError(f"{title}/{c.label}/{m}: need {len(c.budgets)} finite values, got {list(vals)}")
    panels = [m for m in metrics if any(m in c.values for c in curves)]
    if not panels:
        raise ValueError(f"{title}: curves hold none of the metrics {list(metrics)}")
    fig = Figure(figsize=(5.2 * len(panels), 3.6))
    book = _StyleBook()
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, metric in zip(axes, panels):
        for c in curves:
            if metric in c.values:
                ax.plot(list(c.budgets), list(c.values[metric]), label=c.label, linewidth=1.6, markersize=4,
                        **book.style(c))
        ax.set_xlabel("budget (x/256; 0 = clean)")
        ax.set_ylabel("PSNR (dB)" if metric == "psnr" else metric.upper())
        ax.grid(True, alpha=0.3)
        ax.set_xticks(sorted({b for c in curves for b in c.budgets}))
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return figure_png(fig)


def grouped_bars_png(title: str, groups: Sequence[str], bars: Mapping[str, Sequence[float | None]],
                     xlabel: str = "PSNR (dB)") -> bytes:
    """Horizontal bar chart: for each group (e.g. a restorer) one bar per series in ``bars``; None = no bar.

    Bars are labelled on the axis (``series`` or ``group: series`` with several groups) and annotated with
    their value; each series keeps one colour across groups.

    Args:
        groups: group names, non-empty.
        bars: series label -> one value per group (finite or None).

    Returns:
        PNG bytes.
    """
    if not groups or not bars:
        raise ValueError(f"{title}: need at least one group and one series")
    for label, vals in bars.items():
        if len(vals) != len(groups) or any(v is not None and not math.isfinite(v) for v in vals):
            raise ValueError(f"{title}/{label}: need {len(groups)} finite values (or None), got {list(vals)}")
    items = []  # (y label, value, colour), top to bottom
    for g, group in enumerate(groups):
        for k, (label, vals) in enumerate(bars.items()):
            if vals[g] is not None:
                items.append((label if len(groups) == 1 else f"{group}: {label}", float(vals[g]),
                              _COLORS[k % len(_COLORS)]))
    if not items:
        raise ValueError(f"{title}: every value is None")
    fig = Figure(figsize=(7.0, 0.9 + 0.32 * len(items)))
    ax = fig.subplots()
    ys = list(range(len(items)))[::-1]
    values = [v for _, v, _ in items]
    rects = ax.barh(ys, values, 0.75, color=[c for _, _, c in items])
    ax.bar_label(rects, fmt="%.2f", fontsize=8, padding=2)
    ax.set_yticks(ys, [lab for lab, _, _ in items], fontsize=8)
    low, high = min(values), max(values)
    ax.set_xlim(left=max(0.0, low - max(2.0, 0.5 * (high - low))) if low > 0 else None,
                right=high + max(1.0, 0.15 * (high - low)))
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig)


def perturbation_view(adversarial: np.ndarray, clean: np.ndarray, eps: float) -> np.ndarray:
    """Amplified perturbation ``0.5 + 0.5 * (adversarial - clean) / eps`` clipped to [0, 1]: mid-grey is zero,
    black and white are -eps and +eps. Arrays (..., H, W), same shape; eps > 0."""
    adversarial, clean = np.asarray(adversarial, np.float32), np.asarray(clean, np.float32)
    if adversarial.shape != clean.shape:
        raise ValueError(f"perturbation: shapes {adversarial.shape} and {clean.shape} differ")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"perturbation: eps must be finite and > 0, got {eps}")
    return np.clip(0.5 + 0.5 * (adversarial - clean) / eps, 0.0, 1.0)


def image_grid_png(columns: Sequence[tuple[str, np.ndarray]], row_labels: Sequence[str],
                   notes: Mapping[str, Sequence[str]] | None = None, tile_inches: float = 1.45) -> bytes:
    """A grid of images: one column per ``(title, images)`` with images (N, 3, H, W) float in [0, 1],
    one row per image (labelled ``row_labels``). ``notes[title][i]`` is written under tile (i, title).

    Returns:
        PNG bytes; tiles are shown with nearest-neighbour interpolation (pixels stay visible).
    """
    if not columns:
        raise ValueError("image grid: no columns")
    n = len(row_labels)
    for title, imgs in columns:
        imgs = np.asarray(imgs)
        if imgs.ndim != 4 or imgs.shape[0] != n or imgs.shape[1] != 3:
            raise ValueError(f"image grid column {title!r}: expected ({n}, 3, H, W), got {imgs.shape}")
        if not np.isfinite(imgs).all():
            raise ValueError(f"image grid column {title!r}: contains NaN or Inf")
    notes = notes or {}
    fig = Figure(figsize=(tile_inches * len(columns), tile_inches * n + 0.5))
    axes = fig.subplots(n, len(columns), squeeze=False)
    for j, (title, imgs) in enumerate(columns):
        for i in range(n):
            ax = axes[i][j]
            ax.imshow(np.clip(np.asarray(imgs[i], np.float32).transpose(1, 2, 0), 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
            if title in notes:
                ax.set_xlabel(notes[title][i], fontsize=7)
    fig.tight_layout(pad=0.4)
    return figure_png(fig)
