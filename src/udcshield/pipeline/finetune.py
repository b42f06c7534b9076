"""Stage ``finetune``: fine-tune the restorer on purified training inputs (Song et al., arXiv 2402.13629).

The training inputs are purified at several diffusion depths t* (the study varied 50-100 steps for
diversity), optionally alongside the clean inputs, and the base restorer is trained further on
(purified input, ground truth) pairs with a smaller learning rate and cosine decay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from udcshield.config import Params, to_dict
from udcshield.defenses.dataset import purify_set
from udcshield.defenses.purifier import DiffusionPurifier, load_purifier
from udcshield.models.checkpoint import load_checkpoint, save_checkpoint
from udcshield.pipeline.common import load_pairs, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.seeding import torch_generator
from udcshield.store.provenance import make_provenance
from udcshield.training.perceptual import restoration_loss
from udcshield.training.restorer import train_restorer

Progress = Callable[[dict], None] | None


def purified_training_pairs(params: Params, purifier: DiffusionPurifier, inputs: torch.Tensor,
                            targets: torch.Tensor, image_ids: list[str],
                            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs purified at each configured t* (plus the clean inputs if configured), with matching targets.

    Shapes: inputs/targets (N, 3, H, W) -> (M, 3, H, W), M = N * (len(t_stars) + include_clean).
    """
    cfg = params.finetune
    sets, refs = [], []
    for t_star in cfg.t_stars:
        sets.append(purify_set(purifier, inputs, image_ids, t_star=t_star, num_steps=cfg.num_steps,
                               seed=params.seed, stage=f"finetune/purify/t{t_star}",
                               batch_size=cfg.purify_batch_size, device=device))
        refs.append(targets)
    if cfg.include_clean:
        sets.append(inputs)
        refs.append(targets)
    return torch.cat(sets), torch.cat(refs)


def fit_finetuned(params: Params, name: str, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                  device: torch.device, progress: Progress = None) -> list[dict]:
    """Fine-tune restorer ``name`` (``model``, in place) on (inputs, targets); returns the training history."""
    cfg = params.finetune
    gen = torch_generator(params.seed, f"finetune/{name}/batches")
    return train_restorer(model, inputs, targets, iterations=cfg.iterations, batch_size=cfg.batch_size,
                          crop_size=cfg.crop_size, lr=cfg.lr, lr_min=cfg.lr_min,
                          loss=restoration_loss(cfg.loss, params.train.perceptual_weight,
                                                params.train.vgg_weights_path), flips=cfg.flips,
                          color_jitter=cfg.color_jitter, generator=gen, device=device, log_every=50,
                          progress=progress)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage: purify the training inputs once, fine-tune every base restorer on them, save each."""
    inputs, targets, ids = load_pairs(layout.train_store)
    purifier = load_purifier(layout.purifier)
    ft_inputs, ft_targets = purified_training_pairs(params, purifier, inputs, targets, ids, device)
    out = {}
    for spec in params.train.models:
        model = load_checkpoint(layout.restorer(spec.name))
        history = fit_finetuned(params, spec.name, model, ft_inputs, ft_targets, device, progress)
        out[spec.name] = save_outputs(params, layout, spec.name, model, history, int(ft_inputs.shape[0]), device)
    return out


def save_outputs(params: Params, layout: Layout, name: str, model: torch.nn.Module, history: list[dict], pairs: int,
                 device: torch.device) -> dict[str, Any]:
    """Write the fine-tuned checkpoint of ``name`` (provenance in config.json) and its training curve."""
    prov = make_provenance("finetune", to_dict(params.finetune),
                           inputs={"train": layout.train_store, "restorer": layout.restorer(name),
                                   "purifier": layout.purifier},
                           seeds={"seed": params.seed, "purify": "finetune/purify/t<t_star>/<image_id>",
                                  "batches": f"finetune/{name}/batches"}, device=str(device))
    save_checkpoint(model.cpu(), layout.finetuned(name), extra={"provenance": prov})
    write_rows_csv(history, layout.log("finetune", name))
    return {"pairs": pairs, "final_loss": history[-1]["loss"]}
