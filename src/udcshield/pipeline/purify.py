"""Stage ``purify``: diffusion-purify the clean test inputs and every adversarial set.

Non-adaptive setting of Song et al. (arXiv 2402.13629): the attack was crafted on the bare restorer,
then its output is purified (diffuse to t*, reverse to 0; Nie et al., 2022). Output ``purified.zarr``
mirrors ``adversarial.zarr`` names, plus ``clean``; each (N, 3, H, W) float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from udcshield.config import Params, to_dict
from udcshield.defenses.dataset import purify_set
from udcshield.defenses.purifier import load_purifier
from udcshield.pipeline.attack import array_name, conditions
from udcshield.pipeline.common import load_pairs, to_numpy_images
from udcshield.pipeline.layout import Layout
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import read_images, write_store

Progress = Callable[[dict], None] | None
CLEAN = "clean"


def input_sets(params: Params, layout: Layout) -> dict[str, torch.Tensor]:
    """Every set to purify: ``clean`` (the test inputs) and each adversarial set by name."""
    inputs, _, _ = load_pairs(layout.test_store)
    sets = {CLEAN: inputs}
    for source, spec, budget in conditions(params):
        name = array_name(source, spec.name, budget)
        sets[name] = torch.from_numpy(read_images(layout.adversarial, name))
    return sets


def purify_one(params: Params, purifier: torch.nn.Module, name: str, images: torch.Tensor,
               image_ids: list[str], device: torch.device) -> torch.Tensor:
    """Purify one set; noise per image from derive_seed(seed, 'purify/<name>', image_id)."""
    cfg = params.purify
    return purify_set(purifier, images, image_ids, t_star=cfg.t_star, num_steps=cfg.num_steps, seed=params.seed,
                      stage=f"purify/{name}", batch_size=cfg.batch_size, device=device, sampler=cfg.sampler,
                      eta=cfg.eta, guidance_scale=cfg.guidance_scale)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage: purify every set and write ``purified.zarr``."""
    _, _, ids = load_pairs(layout.test_store)
    purifier = load_purifier(layout.purifier)
    purified = {}
    for name, images in input_sets(params, layout).items():
        purified[name] = purify_one(params, purifier, name, images, ids, device)
        if progress:
            progress({"set": name, "images": int(images.shape[0])})
    return write_outputs(params, layout, purified, device)


def write_outputs(params: Params, layout: Layout, purified: dict[str, torch.Tensor],
                  device: torch.device) -> dict[str, Any]:
    """Write all purified sets into one store atomically."""
    prov = make_provenance("purify", to_dict(params.purify),
                           inputs={"test": layout.test_store, "adversarial": layout.adversarial,
                                   "purifier": layout.purifier},
                           seeds={"seed": params.seed, "derivation": "derive_seed(seed, 'purify/<set>', image_id)"},
                           device=str(device), extra={"sets": sorted(purified)})
    with write_store(layout.purified, prov) as w:
        for name, images in purified.items():
            w.add_images(name, to_numpy_images(images), attrs={"t_star": params.purify.t_star,
                                                               "num_steps": params.purify.num_steps})
    return {"sets": len(purified)}
