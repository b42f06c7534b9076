"""Stage ``purify``: diffusion-purify the clean test inputs and every adversarial set.

Non-adaptive setting of Song et al. (arXiv 2402.13629): the attack was crafted on the bare restorer,
then its output is purified (diffuse to t*, reverse to 0; Nie et al., 2022). Output ``purified.zarr``
mirrors ``adversarial.zarr`` names, plus ``clean``; each (N, 3, H, W) float32 in [0, 1]. With
``purify.draws`` > 1 each set is purified that many times with independent noise: draw 0 under the set's
name, draw k under ``draw<k>/<set>`` (the evaluate stage averages the scores over draws per image).

Work is split into shards of ``purify.shard_size`` consecutive images per set, each kept in the shard
cache (:mod:`udcshield.pipeline.shards`) as soon as it is done, so a rerun after a crash recomputes only
the missing ones. Each image's noise comes from ``derive_seed(seed, 'purify/<set>', image_id)``, so the
result does not depend on the shard size, the runner or the order in which shards finish.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udcshield.accel import AccelCache, accelerate_purifier_for
from udcshield.config import Params, to_dict
from udcshield.defenses.dataset import purify_set
from udcshield.defenses.purifier import load_purifier
from udcshield.pipeline.common import run_batched, to_numpy_images
from udcshield.pipeline.checkpoints import verified_checkpoint_digest
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import CLEAN, adversarial_keys, draw_name, split_draw
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.shards import (Shard, ShardCache, ShardedStage, cache_root, code_digest, ids_digest, make_shards,
                                      shard_units, units_by_set)
from udcshield.pipeline.stage import StageContext, Unit
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import read_images, store_attrs, verified_digest, write_store

Progress = Callable[[dict], None] | None


def set_names(params: Params) -> list[str]:
    """Every array to write: ``clean`` first, then each adversarial set by name, for each of ``purify.draws``
    purifier draws (:func:`udcshield.pipeline.names.draw_name`: draw 0 under the set's own name)."""
    names = [CLEAN, *(key.name for key in adversarial_keys(params))]
    return [draw_name(name, k) for k in range(params.purify.draws) for name in names]


def source_of(layout: Layout, name: str) -> tuple[Path, str]:
    """(store, array) holding the un-purified images of array ``name`` (any draw)."""
    name = split_draw(name)[0]
    return (layout.test_store, "inputs") if name == CLEAN else (layout.adversarial, name)


def input_sets(params: Params, layout: Layout) -> dict[str, torch.Tensor]:
    """Every set to purify: ``clean`` (the test inputs) and each adversarial set by name, (N, 3, H, W) in [0, 1]."""
    return {name: torch.from_numpy(read_images(*source_of(layout, name))) for name in set_names(params)}


def purify_one(params: Params, purifier: torch.nn.Module, name: str, images: torch.Tensor,
               image_ids: list[str], device: torch.device, accel_cache: AccelCache | None = None) -> torch.Tensor:
    """Purify one set (or a shard of it): (N, 3, H, W) in [0, 1] -> same shape on CPU, in [0, 1].

    Noise per image from derive_seed(seed, 'purify/<name>', image_id) (``name`` as stored, so each draw
    ``draw<k>/<set>`` has its own noise); a batch that runs out of memory
    is retried at half the size (:func:`udcshield.pipeline.common.run_batched`). ``accel_cache`` keeps
    the accelerated UNet runner (CUDA) across calls.
    """
    cfg = params.purify
    stage = f"purify/{name}"
    noise_predictor, _ = accelerate_purifier_for(params.accel, purifier, device, accel_cache)

    def one_batch(s: slice) -> torch.Tensor:
        return purify_set(purifier, images[s], image_ids[s], t_star=cfg.t_star, num_steps=cfg.num_steps,
                          seed=params.seed, stage=stage, batch_size=s.stop - s.start, device=device,
                          sampler=cfg.sampler, eta=cfg.eta, guidance_scale=cfg.guidance_scale,
                          noise_predictor=noise_predictor)

    return torch.cat(run_batched(one_batch, images.shape[0], cfg.batch_size, stage))


def shard_cache(params: Params, layout: Layout) -> ShardCache:
    """The purify stage's shard cache (``runner.shard_cache`` or ``<data root>/.shards``)."""
    return ShardCache(cache_root(params.runner.shard_cache, layout.root), "purify")


def plan(params: Params, layout: Layout, device: torch.device) -> dict[str, list[Shard]]:
    """Every set's shards (set name -> shards in image order).

    Key material: seed, the whole ``purify`` section, the purifier checkpoint's digest, the content
    digest of the set's input array (recomputed and checked against the recorded one, so an altered or
    non-finite input is refused here, before any work), the image ids, the code digest and the device type.
    """
    ids = list(store_attrs(layout.test_store)["image_ids"])
    common = {"stage": "purify", "seed": params.seed, "purify": to_dict(params.purify),
              "purifier": verified_checkpoint_digest(layout.purifier, "purifier"), "ids": ids_digest(ids),
              "code": code_digest(), "device": device.type, "accel": to_dict(params.accel) if device.type == "cuda" else None}
    return {name: make_shards(name, len(ids), params.purify.shard_size,
                              {**common, "input": verified_digest(*source_of(layout, name))})
            for name in set_names(params)}


def purify_shard(params: Params, layout: Layout, shard: Shard, device: torch.device,
                 purifier: torch.nn.Module | None = None, accel_cache: AccelCache | None = None) -> np.ndarray:
    """Purify one shard: (shard.size, 3, H, W) float32 in [0, 1]; loads the purifier unless given."""
    images = torch.from_numpy(read_images(*source_of(layout, shard.set_name), rows=shard.rows))
    ids = list(store_attrs(layout.test_store)["image_ids"])[shard.rows]
    purifier = load_purifier(layout.purifier) if purifier is None else purifier
    return to_numpy_images(purify_one(params, purifier, shard.set_name, images, ids, device, accel_cache))


def run_shard(params: Params, layout: Layout, shard: Shard, device: torch.device,
              purifier: torch.nn.Module | None = None, accel_cache: AccelCache | None = None) -> dict[str, Any]:
    """Purify ``shard`` unless the cache already holds it; write it to the cache as soon as it is done.

    Returns {"set", "start", "stop", "images", "computed" (False when reused from the cache), "device"}.
    ``accel_cache`` (CUDA runs) keeps the accelerated UNet runner across shards.
    """
    return shard_cache(params, layout).ensure(
        shard, lambda: (purify_shard(params, layout, shard, device, purifier, accel_cache), {}), device)


def assemble(params: Params, layout: Layout, shards: dict[str, list[Shard]], device: torch.device,
             runner: str = "local") -> dict[str, Any]:
    """Concatenate every set's shards from the cache and write ``purified.zarr``; drop the shards after
    unless ``runner.keep_shards``."""
    cache = shard_cache(params, layout)
    purified = {name: torch.from_numpy(np.concatenate([cache.read(s)[0] for s in parts]))
                for name, parts in shards.items()}
    summary = write_outputs(params, layout, purified, device, runner=runner)
    if not params.runner.keep_shards:
        cache.remove(shard for parts in shards.values() for shard in parts)
    return {**summary, "shards": sum(len(parts) for parts in shards.values())}


def write_outputs(params: Params, layout: Layout, purified: dict[str, torch.Tensor],
                  device: torch.device, runner: str = "local") -> dict[str, Any]:
    """Write all purified sets into one store atomically."""
    prov = make_provenance("purify", to_dict(params.purify),
                           inputs={"test": layout.test_store, "adversarial": layout.adversarial,
                                   "purifier": layout.purifier},
                           seeds={"seed": params.seed, "derivation": "derive_seed(seed, 'purify/<set>', image_id)"},
                           device=str(device), extra={"sets": sorted(purified), "runner": runner})
    with write_store(layout.purified, prov) as w:
        for name, images in purified.items():
            w.add_images(name, to_numpy_images(images), attrs={"t_star": params.purify.t_star,
                                                               "num_steps": params.purify.num_steps})
    return {"sets": len(purified)}


class PurifyStage(ShardedStage):
    """Units: shards of the clean test inputs and of every adversarial set; assemble: ``purified.zarr``."""

    def plan(self, ctx: StageContext) -> list[Unit]:
        return shard_units(plan(ctx.params, ctx.layout, ctx.device))

    def prepare(self, ctx: StageContext) -> dict[str, Any]:
        cache = AccelCache() if ctx.device.type == "cuda" else None  # acceleration is a no-op on CPU
        return {"purifier": load_purifier(ctx.layout.purifier), "accel_cache": cache}

    def run_unit(self, ctx: StageContext, unit: Unit, resources: Any) -> dict[str, Any]:
        purifier, cache = (None, None) if resources is None else (resources["purifier"], resources["accel_cache"])
        return run_shard(ctx.params, ctx.layout, unit.payload, ctx.device, purifier, cache)

    def assemble(self, ctx, units, results, resources) -> dict[str, Any]:
        return assemble(ctx.params, ctx.layout, units_by_set(list(units)), ctx.device, ctx.runner)


STAGE = PurifyStage(
    name="purify",
    desc="Diffusion-purify the clean test inputs and every adversarial set (non-adaptive), shard by shard",
    params=("accel", "seed", "attack", "train.models", "train.seeds", "purify"),
    deps=("data/simulated/test.zarr", "data/attack", "data/purifier"),
    outs=("data/purify",),
    distributed=True,
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner: every shard in turn (reusing finished ones), then ``purified.zarr``.

    ``progress`` receives one :class:`~udcshield.progress.ProgressMeter` row per shard.
    """
    return run_stage(STAGE, params, layout, device, progress)
