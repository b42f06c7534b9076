"""A tiny but real data/ layout for the report tests, built in seconds with the library's own stage code.

Hand-made: the simulated test store (smooth 16 x 16 images), the PSF store, two tiny restorer checkpoints and
a tiny purifier. Then the real ``attack``, ``purify``, ``adaptive`` and ``evaluate`` stage functions run on
them, and :func:`udcshield.pipeline.grid.write_grid` writes the image-grid store, so the report reads exactly
what the pipeline writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.pipeline_fixtures import deep_update, tiny_params
from udcshield.config import Params, params_from_dict
from udcshield.defenses.purifier import DiffusionPurifier, save_purifier
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.pipeline import adaptive, attack, evaluate, purify
from udcshield.pipeline.checkpoints import load_restorer
from udcshield.pipeline.grid import write_grid
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import restorers
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import write_store

N_IMAGES, SIZE = 4, 16

OVERRIDES = {
    "device": "cpu",
    "train": {"models": [{"name": "resunet_tiny"}]},
    "attack": {"models": ["base", "finetuned"],
               "attacks": [{"name": "pgd", "budgets": [2, 8], "kwargs": {"steps": 2, "random_start": True}},
                           {"name": "fgsm", "budgets": [8]},
                           {"name": "cw_l2", "budgets": [256], "kwargs": {"binary_search_steps": 2, "steps": 2,
                                                                          "c": 1000.0, "tau_db": 1.0}}]},
    "purify": {"t_star": 4, "num_steps": None, "sampler": "ddpm", "guidance_scale": 0.0, "batch_size": 8},
    "adaptive": {"enabled": True, "budgets": [8], "max_images": 2, "draws": 2, "batch_size": 4,
                 "attacks": [{"name": "bpda_eot", "gradient": "bpda", "eot_samples": 1, "steps": 1,
                              "checkpoint": False}]},
    "evaluate": {"metrics": ["psnr", "ssim"], "batch_size": 8},
    "report": {"grid_images": 2},
}


def report_params(**overrides) -> Params:
    """Tiny params for the layout below (extra ``overrides`` merged on top)."""
    return params_from_dict(deep_update(deep_update(tiny_params(), OVERRIDES), overrides))


def smooth_images(seed: int) -> np.ndarray:
    """(N, 3, SIZE, SIZE) float32 in [0.1, 0.9]: low-frequency colour fields."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    out = np.empty((N_IMAGES, 3, SIZE, SIZE), np.float32)
    for i in range(N_IMAGES):
        for c in range(3):
            a, b, p = rng.uniform(0.5, 3.0, 3)
            out[i, c] = 0.5 + 0.4 * np.sin(2 * np.pi * (a * x + b * y) + p)
    return out


def write_simulated(layout: Layout) -> None:
    """test.zarr (targets, blurred + dimmed inputs) and psf.zarr (Gaussian PSF bank, stripe mask)."""
    targets = smooth_images(0)
    inputs = (0.8 * targets + 0.1 * targets.mean(axis=(2, 3), keepdims=True)).astype(np.float32)
    prov = make_provenance("simulate", {}, device="cpu")
    ids = [f"img/{i:03d}" for i in range(N_IMAGES)]
    with write_store(layout.test_store, {**prov, "image_ids": ids, "split": "test"}) as w:
        w.add_images("inputs", inputs)
        w.add_images("targets", targets)
    r = np.arange(9) - 4
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / np.array([2.0, 3.0, 4.0])[:, None, None])
    psf = (g / g.sum(axis=(1, 2), keepdims=True)).astype(np.float32)[None]
    mask = np.zeros((12, 12), np.float32)
    mask[:, 4:7] = 1.0
    with write_store(layout.psf_store, prov) as w:
        w.add_array("psf", psf)
        w.add_array("mask", mask)


def write_models(layout: Layout) -> None:
    """Two slightly different tiny restorers (base, finetuned) and a tiny purifier."""
    for variant, seed in (("base", 0), ("finetuned", 1)):
        model = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(seed))
        stage = "train" if variant == "base" else "finetune"
        save_checkpoint(model, layout.checkpoint("resunet_tiny", variant),
                        extra={"provenance": make_provenance(stage, {}, device="cpu")})
    purifier = DiffusionPurifier(sample_size=SIZE, block_out_channels=(8, 16), num_train_timesteps=100,
                                 generator=torch.Generator().manual_seed(0))
    save_purifier(purifier, layout.purifier, extra={"provenance": make_provenance("train_purifier", {})})


def build_layout(root: Path, params: Params | None = None) -> tuple[Params, Layout, dict[str, list[dict]]]:
    """Write the whole layout under ``root/data``; returns (params, layout, progress rows per stage)."""
    params = params or report_params()
    layout = Layout(root / "data")
    device = torch.device("cpu")
    write_simulated(layout)
    write_models(layout)
    rows: dict[str, list[dict]] = {"adaptive": [], "evaluate": []}
    attack.run(params, layout, device)
    purify.run(params, layout, device)
    adaptive.run(params, layout, device, rows["adaptive"].append)
    evaluate.run(params, layout, device, rows["evaluate"].append)
    write_grid(params, layout, {source: load_restorer(layout, source) for source in restorers(params)}, device)
    return params, layout, rows
