"""Errors before work: every check a stage makes on params values at run time is also made at load time.

``ROWS``: one row per runtime check (id, the ``module:function`` refusing the value at run time, an override of
the params.yaml defaults, a fragment of the runtime message, the dotted key, the stage, a runner reaching the
check with tiny inputs). Per row: the runner raises (params built without validation, no training, no data root);
``load_checked`` raises a ConfigError starting with the key; ``udcshield run <stage>`` preflights the catching
section. :func:`test_every_runtime_params_check_is_listed` walks (ast) the stage modules and the library they
call: a raise reading a params value needs a row or an ALLOWLIST reason (why it depends on data, not params).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import udcshield.config as schema
from tests.pipeline_fixtures import ROOT, deep_update
from udcshield.accel import Acceleration
from udcshield.attacks.base import check_eps
from udcshield.attacks.lpips import LPIPS
from udcshield.attacks.registry import attack_kwargs, create_attack, list_attacks
from udcshield.attacks.square import Square
from udcshield.attacks.universal import universal_perturbation
from udcshield.config import ConfigError, Params, params_from_dict
from udcshield.data.datasets import load_dataset
from udcshield.defenses.purifier import DiffusionPurifier
from udcshield.models.registry import _RESTORERS, create_restorer
from udcshield.physics.masks import display_mask
from udcshield.physics.psf import psf_bank
from udcshield.pipeline import adaptive, attack, evaluate, finetune, purify, simulate, sweep, train, train_purifier
from udcshield.pipeline.common import apply_batched, batches, run_batched
from udcshield.pipeline.grid import grid_attack
from udcshield.pipeline.layout import Layout, resolve_device
from udcshield.pipeline.runner import get_stage
from udcshield.pipeline.shards import shard_ranges
from udcshield.preflight import CHECKED_SECTIONS, load_checked, preflight
from udcshield.seeding import derive_seed

DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())
CPU = torch.device("cpu")
BANK = np.full((1, 3, 3, 3), 1 / 9)  # a one-entry 3 x 3 PSF bank


# ------------------------------------------------------------------------------------------ runners
def _x(p: Params, n: int = 1) -> torch.Tensor:
    """``n`` random images of the stored size (simulate.patch_size pixels square)."""
    return torch.rand(n, 3, p.simulate.patch_size, p.simulate.patch_size, generator=torch.Generator().manual_seed(0))


@functools.cache
def _purifier(steps: int) -> DiffusionPurifier:
    """A tiny untrained purifier with ``steps`` diffusion steps."""
    return DiffusionPurifier(sample_size=8, block_out_channels=(8,), num_train_timesteps=steps).eval()


# Each runner reaches one stage-side function with tiny inputs; ``p``: params built without validation.
_ids = lambda n=1: [f"img{i}" for i in range(n)]  # noqa: E731
_m = lambda: nn.Conv2d(3, 3, 1)  # noqa: E731
_pur = lambda p: _purifier(p.purifier.num_train_timesteps)  # noqa: E731
_sim = lambda p: simulate.simulate(p.simulate, BANK, "train", p.seed)  # noqa: E731
_psf = lambda p: simulate.make_psf_bank(p.simulate.optics, p.seed)  # noqa: E731
_fit = lambda p: train.fit_restorer(p, p.train.models[0].label, _x(p), _x(p), CPU)  # noqa: E731
_fit_purifier = lambda p: train_purifier.fit_purifier(p, _x(p), CPU)  # noqa: E731
_ft_purified = lambda p: finetune.purified_training_pairs(p, _pur(p), _x(p), _x(p), _ids(), CPU)  # noqa: E731
_purified = lambda p: purify.purify_one(p, _pur(p), "clean", _x(p), _ids(), CPU)  # noqa: E731
_score = lambda p: evaluate.score(_m(), _x(p), _x(p), p.evaluate.metrics, p.evaluate.batch_size, CPU)  # noqa: E731
_reference = lambda p: sweep.compare_to_reference([{"model": "m", "t_star": t, "setting": s.label}  # noqa: E731
                                                   for t in p.sweep.t_stars for s in p.sweep.samplers], 0.3)


def _finetune(p: Params) -> Any:
    pairs = (_x(p, 2), _x(p, 2))  # the clean pairs double as purified ones
    return finetune.fit_finetuned(p, "resunet", create_restorer("resunet", base_channels=4, depth=1), pairs, pairs, CPU)


def _crafted(p: Params) -> Any:
    """The attack stage building its first attack (:func:`udcshield.pipeline.attack.attack_kwargs`)."""
    spec, shape = p.attack.attacks[0], tuple(_x(p).shape[1:])
    if spec.name == "universal":
        return attack._universal(_m(), spec, max(spec.budgets), _x(p), (_x(p), _x(p)), p, "attack/u", CPU)
    return create_attack(spec.name, _m(), **attack.attack_kwargs(spec, max(spec.budgets), p, shape))


def _sweep_setting(p: Params) -> Any:
    cfg, x = p.sweep, _x(p)[: p.sweep.max_images]
    return sweep.measure_setting(_pur(p), _m(), {"clean": x, "adv": x}, x, _ids(x.shape[0]), t_star=min(cfg.t_stars),
                                 spec=cfg.samplers[0], draws=cfg.draws, seed=0, batch_size=cfg.batch_size, device=CPU)


def _sweep(p: Params) -> Any:
    """:func:`udcshield.pipeline.sweep.measure_sweep` up to its depth check (data loading stubbed out)."""
    with mock.patch.object(sweep, "load_pairs", lambda _: (_x(p), _x(p), _ids())), \
            mock.patch.object(sweep, "load_purifier", lambda *_, **__: _pur(p)):
        return sweep.measure_sweep(p, Layout(Path("unused")), CPU)


def _adaptive(p: Params) -> Any:
    """The adaptive stage crafting its first attack at its first budget on the first ``max_images`` images."""
    x, cfg = _x(p)[: p.adaptive.max_images], p.adaptive
    return adaptive.craft(p, _pur(p), _m(), cfg.attacks[0], cfg.budgets[0], x, x, _ids(len(x)), "m/b", CPU)


def _adaptive_checks(p: Params) -> Any:
    """The adaptive stage's masking checks of one restorer (no records yet: only the check attacks run)."""
    x = _x(p)[: p.adaptive.max_images]
    return adaptive.source_checks(p, _pur(p), _m(), "m/b", x, x, _ids(len(x)), [], CPU)


# ------------------------------------------------------------------------------------------ overrides
def _s(section: str, **values: Any) -> dict:
    """``_s("simulate.optics", support_px=1)`` is ``{"simulate": {"optics": {"support_px": 1}}}``."""
    head, _, rest = section.partition(".")
    return {head: _s(rest, **values) if rest else values}


# Override builders: a restorer; attacks (the sweep purifies the first); an attack; patches and crops of ``side``.
_model = lambda name, **kwargs: {"train": {"models": [{"name": name, "kwargs": kwargs}]}}  # noqa: E731
_own = lambda name, **spec: {"train": {"models": [{"name": name, "label": "own", **spec}]}}  # noqa: E731
_attacks = lambda *specs, **section: {"sweep": {"attack": specs[0]["name"]},  # noqa: E731
                                      "attack": {"attacks": list(specs), **section}}
_atk = lambda name, **kwargs: _attacks({"name": name, "kwargs": kwargs})  # noqa: E731
_small = lambda side, **extra: deep_update({"simulate": {"patch_size": side}, **{  # noqa: E731
    s: {"crop_size": side} for s in ("train", "purifier", "finetune")}}, extra)


def _leaf(value: Any, prefix: str = "") -> str:
    """The dotted key of an override's last leaf, list entries as ``[i]``."""
    if isinstance(value, dict) and value:
        key, last = list(value.items())[-1]
        return _leaf(last, f"{prefix}.{key}" if prefix else key)
    if isinstance(value, list) and value:
        return _leaf(value[-1], f"{prefix}[{len(value) - 1}]")
    return prefix


class Row(NamedTuple):
    id: str
    where: str  # "module:function" (module relative to udcshield) refusing the value at run time
    override: dict
    says: str  # fragment of the runtime error message
    key: str  # the dotted key the load-time ConfigError starts with; stage: the stage hitting the check
    stage: str
    run: Callable[[Params], Any]


def _group(stage: str, run: Callable[[Params], Any], *cases: tuple) -> tuple[Row, ...]:
    """Rows of one stage from (id, where, override, says[, key][, runner]): the key defaults to the override's
    last leaf, the runner to ``run``."""
    rows = []
    for case in cases:
        extra = {type(v) is str: v for v in case[4:]}
        rows.append(Row(*case[:4], extra.get(True) or _leaf(case[2]), stage, extra.get(False, run)))
    return tuple(rows)


# ------------------------------------------------------------------------------------------ the table
CTA, PSF, SPLIT = "training.restorer:check_training_args", "physics.psf:compute_psf", "data.simulate:simulate_split"
RARGS, DPI = "models.registry:restorer_arguments", "defenses.purifier:DiffusionPurifier.__init__"
FTR, PGDI, PHDR = "training.robust:finetune_restorer", "attacks.pgd:PGD.__init__", "physics.hdr:pseudo_hdr"
DEGRADE, LOSS = "physics.formation:degrade", "training.perceptual:restoration_loss"
SELECT, BUDGET = "training.robust:select_trainable", "attacks.budget:check_budget"
SIM, OPT, HDR, FORM = "simulate", "simulate.optics", "simulate.hdr", "simulate.formation"
LPIPS_FILE = {"name": "lpips_pgd", "kwargs": {"lpips": "absent.safetensors"}}
EVAL_LPIPS = {"metrics": ["psnr", "ssim", "lpips"], "lpips_weights_path": "absent.safetensors"}
SCORE = "pipeline.evaluate:score_outputs"
ROWS: tuple[Row, ...] = (
    *_group("simulate", _sim,
            ("scale_above_one", "data.sources:rescale_image", _s(SIM, scale=1.5), "scale must be in (0, 1]"),
            ("photo_twice", SPLIT, _s(SIM, train_photos=["coffee", "a/coffee.png"]), "duplicate photos"),
            ("photo_unknown", "data.simulate:_load_linear", _s(SIM, train_photos=["astronat"]), "neither one of"),
            ("patch_zero", SPLIT, _s(SIM, patch_size=0), "patch_size must be an int >= 1"),
            ("patches_zero", SPLIT, _s(SIM, train_patches_per_image=0), "patches_per_image must be an int >= 1"),
            ("dataset_max_images", "data.datasets:_check_int", _s(SIM, source="mipi", dataset_root="/no", max_images=0),
             "max_images must be None or an int", lambda p: load_dataset(
                 "mipi", "/no", split="train", patch_size=8, patches_per_image=1, seed=0, max_images=0)),
            ("support_one", PSF, _s(OPT, support_px=1), "odd int >= 3", _psf),
            ("oversample_zero", PSF, _s(OPT, oversample=0), "oversample must be an int", _psf),
            ("pitch_zero", "physics.masks:_check_positive", _s(OPT, pitch_um=0.0), "pitch_um must be a positive", _psf),
            ("open_ratio_zero", "physics.masks:_check_positive", _s(OPT, open_ratio=0.0), "positive", _psf),
            ("open_ratio_layout", PSF, _s(OPT, mask="circle", open_ratio=0.9), "exceeds the maximum 0.785", _psf),
            ("open_ratio_cell", "physics.masks:display_mask", _s(OPT, mask="poled", open_ratio=0.6),
             "exceeds the maximum 0.545", lambda p: simulate.unit_cell(p.simulate.optics)),
            ("psf_fft", PSF, _s(OPT, open_ratio=0.02), "> max_fft=4096", "simulate.optics", _psf),
            ("user_mask_unset", "physics.masks:display_mask", _s(OPT, mask="user"), "user_mask is required",
             "simulate.optics.user_mask_path", lambda p: display_mask(
                 "user", pitch_um=1.0, open_ratio=1.0, sample_um=1.0, extent_um=4.0, user_mask=None)),
            ("bank_zero", "physics.psf:psf_bank", _s(OPT, bank_size=0), "k must be an int >= 1",
             lambda p: psf_bank(BANK[0], p.simulate.optics.bank_size, np.random.default_rng(0))),
            ("threshold_one", PHDR, _s(HDR, highlight_threshold=1.0), "must be in (0, 1)"),
            ("gain_below_one", PHDR, _s(HDR, highlight_gain=0.5), "finite and >= 1"),
            ("lights_negative", PHDR, _s(HDR, n_light_sources=-1), "an int >= 0"),
            ("light_range", "physics.hdr:_check_range", _s(HDR, light_radius_px=[3.0, 1.0]), "must satisfy",
             "simulate.hdr.light_radius_px"),
            ("saturation_zero", SPLIT, _s(FORM, saturation=0.0), "saturation must be a pos"),
            ("noise_unknown", SPLIT, _s(FORM, noise="gauss"), "noise must be one of"),
            ("transmission", DEGRADE, _s(FORM, transmission=1.5), "transmission must be a float"),
            ("full_well_zero", DEGRADE, _s(FORM, noise="poisson_gaussian", full_well_e=0.0), "full_well_e must"),
            ("read_noise", DEGRADE, _s(FORM, noise="poisson_gaussian", read_noise_e=-1.0), "read_noise_e must"),
            ("knee_zero", "physics.tonemap:_check_knee", _s(FORM, knee=0.0), "knee must be a positive")),
    *_group("train", _fit,
            ("restorer_unknown", RARGS, _model("mystery"), "unknown restorer", "train.models[0].name"),
            ("factory_import", "models.registry:_import_factory", _own("no_such_module_udc:make_net"),
             "cannot import module", "train.models[0].name"),
            ("factory_not_module", "models.registry:resolve_restorer", _own("json:dumps"),
             "must be an nn.Module subclass", "train.models[0].name"),
            ("weights_missing", "models.checkpoint:read_weights_file", _own("resunet_tiny", weights="absent.pt"),
             "does not exist", "train.models[0].weights"),
            ("untrained_no_weights", "pipeline.train:fit_restorer", _own("resunet_tiny", train=False),
             "no weights are given", "train.models[0].train"),
            ("restorer_kwarg", RARGS, _model("resunet", widht=8), "widht"),
            ("restorer_size", RARGS, _model("resunet", size="huge"), "unknown size"),
            ("resunet_depth", "models.unet:ResUNet.__init__", _model("resunet", depth=-1), "depth must be an int"),
            ("bnudc_width", "models.bnudc:BNUDC.__init__", _model("bnudc", high_channels=0), "high_channels must"),
            ("dagf_eps", "models.dagf:DAGF.__init__", _model("dagf", gf_eps=0.0), "gf_eps must be > 0"),
            ("discnet_kernel", "models.discnet:DISCNet.__init__", _model("discnet", kernel_size=2), "positive odd"),
            ("dwformer_exp", "models.dwformer:DWFormer.__init__", _model("dwformer", expansion=0.0), "expansion"),
            ("srudc_t_min", "models.srudc:SRUDC.__init__", _model("srudc", t_min=1.5), "t_min must lie in (0, 1)"),
            ("srudc_heads", "models.srudc:ChannelSelfAttention.__init__", _model("srudc", heads=5), "by heads 5"),
            ("udcunet_code", "models.udcunet:UDCUNet.__init__", _model("udcunet", code_dim=0), "code_dim must be"),
            ("uformer_window", "models.uformer:Uformer.__init__", _model("uformer", window=0), "window must be"),
            ("train_crop", CTA, _s("train", crop_size=128), "crop_size 128 exceeds"),
            ("train_lr_min", CTA, _s("train", lr=1e-4, lr_min=1e-3), "0 <= lr_min <= lr"),
            ("train_iterations", CTA, _s("train", iterations=0), "positive int"),
            ("train_batch", CTA, _s("train", batch_size=0), "positive int"),
            ("train_jitter", "training.augment:random_crop_flip_jitter", _s("train", color_jitter=1.0), "in [0, 1)"),
            ("train_loss", "training.restorer:resolve_loss", _s("train", loss="l3"), "unknown loss"),
            ("perceptual_path", LOSS, _s("train", perceptual_weight=0.1), "vgg_weights_path", "train.vgg_weights_path"),
            ("perceptual_negative", LOSS, _s("train", perceptual_weight=-0.1), "loss weights must be >= 0"),
            ("device", "pipeline.layout:resolve_device", {"device": "tpu"}, "unknown device",
             lambda p: resolve_device(p.device))),
    *_group("train_purifier", _fit_purifier,
            ("purifier_crop_multiple", "training.diffusion:train_purifier", _s(
                "purifier", block_out_channels=[8, 16, 32], crop_size=30), "multiple of 4"),
            ("purifier_crop", CTA, _s("purifier", crop_size=128), "exceeds"),
            ("purifier_lr_min", CTA, _s("purifier", lr=1e-4, lr_min=1e-3), "lr_min <= lr"),
            ("purifier_channels", DPI, _s("purifier", block_out_channels=[0]), "block_out_channels must be",
             "purifier.block_out_channels"),
            ("purifier_layers", DPI, _s("purifier", layers_per_block=0), "layers_per_block must be"),
            ("purifier_schedule", DPI, _s("purifier", beta_schedule="cos"), "unknown beta_schedule")),
    *_group("finetune", _finetune,
            ("ft_crop", CTA, _s("finetune", crop_size=128), "exceeds"),
            ("ft_lr_min", CTA, _s("finetune", lr=1e-4, lr_min=1e-3), "lr_min <= lr"),
            ("ft_jitter", "training.augment:random_crop_flip_jitter", _s("finetune", color_jitter=2.0), "in [0, 1)"),
            ("ft_mode", FTR, _s("finetune", mode="madry"), "unknown fine-tuning mode"),
            ("ft_weight", FTR, _s("finetune", adversarial_weight=1.5), "in [0, 1]"),
            ("ft_trades", FTR, _s("finetune", trades_beta=-1.0), "trades_beta must"),
            ("ft_mixed_batch", FTR, _s("finetune", mode="mixed", batch_size=1), "needs batch_size >= 2"),
            ("ft_attack_steps", PGDI, _s("finetune", mode="adversarial", attack_steps=0), "steps must be an int >= 1"),
            ("ft_attack_budget", BUDGET, _s("finetune", attack_budget=300), "in [1, 256]"),
            ("ft_gan_lr", "training.gan:GANLoss.__init__", _s("finetune", gan_weight=0.1, gan_lr=0.0), "lr must"),
            ("ft_gan_weight", "training.perceptual:restoration_loss", _s("finetune", gan_weight=-0.1), "must be >= 0"),
            ("ft_trainable", SELECT, _s("finetune", trainable="some"), "must be 'all'"),
            ("ft_prefix", SELECT, _s("finetune", trainable=["decoder"]), "match no param", "finetune.trainable"),
            ("ft_t_star", "defenses.schedule:check_t_star", _s("finetune", num_steps=None, t_stars=[30, 2000]),
             "t_star must be an int in [0, 1000]", _ft_purified),
            ("ft_steps", "defenses.schedule:check_steps", _s("finetune", num_steps=40), "in [1, t_star=30]",
             _ft_purified)),
    *_group("attack", _crafted,
            ("attack_unknown", "attacks.registry:_lookup", _atk("deepfool"), "unknown", "attack.attacks[0].name"),
            ("attack_kwarg", "attacks.registry:create_attack", _atk("pgd", stepz=2), "['stepz']"),
            ("pgd_steps", PGDI, _atk("pgd", steps=0), "steps must be an int"),
            ("pgd_restarts", PGDI, _atk("pgd", random_start=False, restarts=2), "requires random_start"),
            ("pgd_alpha", PGDI, _atk("pgd", alpha=-1.0), "alpha must be"),
            ("bim_steps", "attacks.bim:BIM.__init__", _atk("bim", steps=0), "steps must be an int"),
            ("mifgsm_decay", "attacks.mifgsm:MIFGSM.__init__", _atk("mifgsm", decay=-1.0), "decay must"),
            ("pgd_l2_steps", "attacks.pgd_l2:PGDL2.__init__", _atk("pgd_l2", steps=0), "steps must be"),
            ("apgd_restarts", "attacks.apgd:_APGD.__init__", _atk("apgd", random_start=False, restarts=2), "requires"),
            ("cw_c", "attacks.cw:CW.__init__", _atk("cw", c=0.0), "c must be a finite number > 0"),
            ("cw_objective", "attacks.cw:CW.__init__", _attacks({"name": "cw"}, objective="targeted_mse"), "for CW"),
            ("lpips_missing", "attacks.lpips_attack:LPIPSPGD.__init__", _atk("lpips_pgd"), "lpips is required"),
            ("lpips_file", "attacks.lpips:LPIPS.from_file", _attacks(LPIPS_FILE), "weights not found"),
            ("lpips_small", "attacks.lpips:LPIPS.forward", deep_update(_small(16), _attacks(LPIPS_FILE)),
             "at least 31 x 31", "attack.attacks[0].name", lambda p: LPIPS.random_for_tests()(_x(p), _x(p))),
            ("simba_basis", "attacks.simba:SimBA.__init__", _atk("simba", basis="dct2"), "basis must"),
            ("square_p_init", "attacks.square:Square.__init__", _atk("square", p_init=2.0), "p_init"),
            ("square_small", "attacks.square:Square._attack", deep_update(_small(
                1, purifier={"block_out_channels": [8]}, evaluate={"metrics": ["psnr"]}), _atk("square")),
             "at least 2 x 2", "attack.attacks[0].name", lambda p: Square(_m())(_x(p), _x(p))),
            ("universal_steps", "attacks.universal:universal_perturbation", _atk("universal", steps=0), "steps must"),
            ("universal_lr", "attacks.universal:universal_perturbation", _atk("universal", lr=0.0), "lr must"),
            ("attack_budget", BUDGET, _attacks({"name": "pgd", "budgets": [300]}), "in [1, 256]"),
            ("cw_l2_budget", "attacks.budget:constructor_eps", _attacks({"name": "cw_l2", "budgets": [8]}),
             "takes only budget 256", "attack.attacks[0].budgets"),
            ("attack_eps", "attacks.base:check_eps", _attacks({"name": "pgd", "budgets": [512]}), "eps must lie in",
             lambda p: check_eps(p.attack.attacks[0].budgets[0] / 256)),
            ("attack_reference", "attacks.base:ImageAttack.__init__", _s("attack", reference="mean"), "reference must"),
            ("attack_batch", "pipeline.common:run_batched", _s("attack", batch_size=0), "batch_size must be",
             lambda p: run_batched(lambda s: s, 2, p.attack.batch_size, "attack")),
            ("attack_shard", "pipeline.shards:shard_ranges", _s("attack", shard_size=0), "shard_size must",
             lambda p: shard_ranges(4, p.attack.shard_size)),
            ("accel_amp", "accel:Acceleration.__post_init__", _s("accel", amp="fp16"), "amp must be one of",
             lambda p: Acceleration(amp=p.accel.amp)),
            ("seed_negative", "seeding:derive_seed", {"seed": -1}, "non-negative int",
             lambda p: derive_seed(p.seed, "s", 0))),
    *_group("purify", _purified,
            ("purify_t_star", "defenses.schedule:check_t_star", _s("purify", num_steps=None, t_star=2000), "[0, 1000]"),
            ("purify_steps", "defenses.schedule:check_steps", _s("purify", t_star=30, num_steps=40), "[1, t_star=30]"),
            ("purify_eta", "defenses.ddim:check_eta", _s("purify", sampler="ddim", eta=2.0), "in [0, 1]"),
            ("purify_guidance", "defenses.guidance:check_guidance_scale", _s("purify", guidance_scale=-1.0), ">= 0"),
            ("purify_sampler", "defenses.samplers:SamplerConfig.__post_init__", _s("purify", sampler="euler"),
             "sampler kind must be one of"),
            ("purify_batch", "pipeline.common:run_batched", _s("purify", batch_size=0), "batch_size must be"),
            ("purify_shard", "pipeline.shards:shard_ranges", _s("purify", shard_size=0), "shard_size must",
             lambda p: shard_ranges(4, p.purify.shard_size))),
    *_group("sweep", _sweep_setting,
            ("sweep_t_star", "pipeline.sweep:measure_sweep", _s("sweep", t_stars=[20, 2000]), "exceeds the", _sweep),
            ("sweep_steps", "defenses.schedule:strided_timesteps", _s("sweep", samplers=[
                {"sampler": "ddpm"}, {"sampler": "ddim", "num_steps": 30}]), "[1, t_star=20]",
             lambda p: sweep.expected_nfe(min(p.sweep.t_stars), p.sweep.samplers[1])),
            ("sweep_eta", "defenses.ddim:check_eta", _s("sweep", samplers=[{"sampler": "ddim", "eta": 1.5}]), "[0, 1]"),
            ("sweep_max_images", "defenses.dataset:purify_set", _s("sweep", max_images=0), "non-empty"),
            ("sweep_draws", "pipeline.sweep:measure_setting", _s("sweep", draws=0), "non-empty"),
            ("sweep_batch", "defenses.dataset:purify_set", _s("sweep", batch_size=0), "must not be zero"),
            ("sweep_attack", "pipeline.sweep:check_sweep", _s("sweep", attack="cw"), "not crafted", sweep.check_sweep),
            ("sweep_attack_set", "pipeline.sweep:adversarial_set", _s("sweep", attack="cw"), "",
             lambda p: sweep.adversarial_set(p, "m")),
            ("sweep_needs_base", "pipeline.sweep:check_sweep", _s("attack", models=["finetuned"]), "needs 'base'",
             "sweep", sweep.check_sweep),
            ("sweep_reference", "pipeline.sweep:compare_to_reference", _s("sweep", samplers=[
                {"sampler": "ddim", "num_steps": 2}]), "no full DDPM chain", "sweep.samplers",
             _reference)),
    *_group("adaptive", _adaptive,
            ("adaptive_t_star", "defenses.defended:DefendedRestorer.__init__", _s("purify", num_steps=None,
             t_star=2000), "int in [0, 1000]"),
            ("adaptive_no_gradient", "defenses.adaptive:_check_defended", _s("adaptive", attacks=[
                {"name": "x", "gradient": "none"}]), "blocks gradients"),
            ("adaptive_algorithm", "pipeline.adaptive:make_attack", _s("adaptive", attacks=[
                {"name": "x", "algorithm": "fgsm"}]), "algorithm must be one of"),
            ("adaptive_gradient", "defenses.defended:DefendedRestorer.gradient", _s("adaptive", attacks=[
                {"name": "x", "gradient": "spsa"}]), "must be one of"),
            ("adaptive_steps", PGDI, _s("adaptive", attacks=[{"name": "x", "steps": 0}]), "steps must be an int"),
            ("adaptive_eot", "defenses.adaptive:DefendedEOT._setup_eot", _s("adaptive", attacks=[
                {"name": "x", "eot_samples": 0}]), "eot_samples must be"),
            ("adaptive_restarts", PGDI, _s("adaptive", attacks=[{"name": "x", "restarts": 0}]), "restarts must be"),
            ("adaptive_apgd_steps", "attacks.apgd:_APGD.__init__", _s("adaptive", attacks=[
                {"name": "x", "algorithm": "apgd", "steps": 0}]), "steps must be an int"),
            ("adaptive_apgd_eot", "defenses.adaptive:DefendedEOT._setup_eot", _s("adaptive", attacks=[
                {"name": "x", "algorithm": "apgd", "eot_samples": 0}]), "eot_samples must be"),
            ("adaptive_square_queries", "attacks.square:Square.__init__", _s("adaptive", checks={"square_queries": 0}),
             "max_queries must be", _adaptive_checks),
            ("adaptive_square_eot", "defenses.adaptive:AdaptiveSquare.__init__", _s(
                "adaptive", checks={"square_eot_samples": 0}), "eot_samples must be", _adaptive_checks),
            ("adaptive_large_budget", BUDGET, _s("adaptive", checks={"large_budget": 300}), "in [1, 256]",
             _adaptive_checks),
            ("adaptive_large_budget_attack", "pipeline.adaptive:large_budget_spec", _s(
                "adaptive", checks={"large_budget_attack": "nope"}), "is not one of", _adaptive_checks),
            ("adaptive_check_images", "pipeline.adaptive:run_attack", _s("adaptive", checks={"max_images": 0}),
             "non-empty", _adaptive_checks),
            ("adaptive_budget", BUDGET, _s("adaptive", budgets=[300]), "in [1, 256]"),
            ("adaptive_max_images", "pipeline.adaptive:craft", _s("adaptive", max_images=0), "non-empty"),
            ("adaptive_batch", "pipeline.common:batches", _s("adaptive", batch_size=0), "must not be zero",
             lambda p: list(batches(2, p.adaptive.batch_size))),
            ("adaptive_draws", "pipeline.adaptive:draw_records", _s("adaptive", draws=0), "non-empty",
             lambda p: adaptive.draw_records(p, None, _x(p), _x(p), _ids(), "m/base", "clean", 0, CPU))),
    *_group("evaluate", _score,
            ("ssim_small", "evaluation.metrics:ssim", _small(8), "at least 11x11", "evaluate.metrics[1]"),
            ("metric_unknown", SCORE, _s("evaluate", metrics=["psnr", "vif"]), "unknown metric 'vif'"),
            ("lpips_no_weights", SCORE, _s("evaluate", metrics=["psnr", "lpips"]), "needs an LPIPS network"),
            ("eval_lpips_file", "attacks.lpips:LPIPS.from_file", _s("evaluate", **EVAL_LPIPS), "weights not found",
             lambda p: evaluate.lpips_network(p.evaluate, CPU)),
            ("eval_lpips_small", "attacks.lpips:LPIPS.forward", deep_update(_small(16), _s("evaluate", **EVAL_LPIPS)),
             "at least 31 x 31", "evaluate.metrics[2]", lambda p: evaluate.score(
                 _m(), _x(p), _x(p), p.evaluate.metrics, p.evaluate.batch_size, CPU, LPIPS.random_for_tests())),
            ("evaluate_batch", "pipeline.common:run_batched", _s("evaluate", batch_size=0), "batch_size must be"),
            ("grid_attack", "pipeline.grid:grid_attack", _s("report", grid_attack="cw"), "", grid_attack),
            ("grid_images", "pipeline.common:apply_batched", _s("report", grid_images=0), "non-empty",
             lambda p: apply_batched(_m(), _x(p)[: p.report.grid_images], 1, CPU))),
)


IDS = [row.id for row in ROWS]


_raw = lambda row: deep_update(DEFAULTS, row.override)  # noqa: E731 - the params.yaml defaults, overridden


def _unchecked(tp: Any, raw: Any) -> Any:
    """``raw`` as type ``tp`` without coercion or validation: nested dataclasses built, lists made tuples."""
    if dataclasses.is_dataclass(tp) and isinstance(raw, dict):
        hints = typing.get_type_hints(tp)
        return tp(**{name: _unchecked(hints[name], value) for name, value in raw.items()})
    if isinstance(raw, list):
        args = typing.get_args(tp) if typing.get_origin(tp) is tuple else ()
        return tuple(_unchecked(args[0] if args else Any, v) for v in raw)
    return raw


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_runtime_check_is_real(row: Row) -> None:
    with pytest.raises(Exception) as info:  # noqa: PT011 - any error the stage would raise; `says` pins which
        row.run(_unchecked(Params, _raw(row)))
    assert row.says in str(info.value), f"{row.where}: {info.value!r}"


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_load_checked_names_the_key(row: Row, tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(_raw(row), sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_checked(path)
    assert str(info.value).startswith(f"{path}: {row.key}"), str(info.value)


def _refuses(params: Params, section: str) -> bool:
    try:
        preflight(params, [section])
    except ConfigError:
        return True
    return False


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_failing_stage_runs_the_catching_check(row: Row) -> None:
    """``udcshield run <stage>`` loads the schema and preflights STAGE.sections: one of them refuses the row."""
    try:
        params = params_from_dict(_raw(row))
    except ConfigError:
        return  # the schema: every stage loads it
    catching = {section for section in CHECKED_SECTIONS if _refuses(params, section)}
    declared = set(get_stage(row.stage).sections)
    assert catching & declared, f"{row.stage} preflights {sorted(declared)}; {row.id} is caught by {sorted(catching)}"



# ------------------------------------------------------------------------------------------ the walk
#: What the stages run: the stage modules, their helpers, and the library they hand params values to.
SCANNED = tuple(f"{package}.{m}" for package, modules in (
    ("pipeline", "simulate train train_purifier finetune attack purify sweep adaptive adaptive_checks evaluate report "
                 "common grid names layout shards"),
    ("defenses", "samplers schedule dataset adaptive purifier defended ddim guidance"),
    ("attacks", "registry budget base objectives fgsm pgd apgd bim mifgsm pgd_l2 cw lpips lpips_attack simba "
                "square universal"),
    ("models", "registry sizes unet bnudc dagf discnet dwformer srudc udcunet uformer blocks"),
    ("training", "augment diffusion gan perceptual restorer robust"), ("data", "simulate sources datasets"),
    ("physics", "formation hdr masks psf spectral tonemap")) for m in modules.split()) + (
    "evaluation.metrics", "seeding", "accel")
#: Raises that read a params value but depend on data, files or internal state: why each is not a load-time check.
ALLOWLIST = {
    "pipeline.simulate:make_psf_bank": "channels of the sensor-response file (file content)",
    "pipeline.attack:_norm_attrs": "the crafted perturbation against its budget (a result, not a setting)",
    "pipeline.attack:_universal": "the stage always passes the training pairs (internal)",
    "defenses.adaptive:DefendedEOT.forward": "gradient mode changed after construction (API misuse)",
    "defenses.adaptive:DefendedEOT.get_logits": "called outside an attack call (API misuse)",
    "defenses.adaptive:AdaptiveSquare.get_logits": "called outside an attack call, or on part of the batch (API)",
    "defenses.purifier:DiffusionPurifier.alpha_bar": "timesteps come from the schedule, after check_t_star",
    "defenses.purifier:DiffusionPurifier.reverse_step": "timesteps come from the schedule, after check_t_star",
    "defenses.purifier:save_purifier": "type of its argument (API misuse)",
    "defenses.defended:DefendedRestorer._generators_for": "the noise argument of a call (API)",
    "defenses.defended:DefendedRestorer.generators": "the noise argument of a call (API)",
    "defenses.ddim:ddim_step": "timesteps come from the schedule, after check_t_star",
    "attacks.budget:check_threat_model": "class attributes of the attack code, checked at import",
    "attacks.base:ImageAttack._refuse_label_target": "label-targeted modes are never set from params (API)",
    "attacks.objectives:distortion": "shapes of the output and reference tensors (data)",
    "models.blocks:PSFCoded._code": "shape of the PSF code passed to forward (data)",
    "models.blocks:WindowAttention.__init__": "Uformer derives heads = channels // embed_dim: always divides",
    "training.gan:PatchDiscriminator.__init__": "built with its defaults; no params key sets it",
    "training.gan:GANLoss.__call__": "discriminator output and target shapes agree by construction (internal)",
    "training.restorer:train_loop": "a NaN/inf loss (training dynamics)",
    "training.restorer:trainable_parameters": "nothing trains: finetune.trainable prefixes must match (row ft_prefix)",
    "physics.masks:load_user_mask": "the user mask file's content",
    "accel:accelerate": "bf16 on CPU: the stages call accelerate_restorer_for, which returns early on CPU",
    "accel:accelerate_purifier": "bf16 on CPU: the stages call accelerate_purifier_for, which returns early on CPU",
    "pipeline.shards:ShardCache.read": "a shard's label() in the message (internal), not train.models[i].label",
    "pipeline.shards:ShardCache.write": "a shard's label() in the message (internal), not train.models[i].label",
    "attacks.base:ImageAttack._seed_list": "per-image noise seeds of a call (API), not train.seeds",
    "defenses.defended:_check_seeds": "per-image noise seeds of a call (API), not train.seeds",
}
GENERIC = {"name", "kwargs", "models", "model", "enabled", "device", "kind", "source", "generator", "self"}


def params_words() -> set[str]:
    """Names that hold params values: schema fields, attack and restorer arguments, ``params``, ``cfg``."""
    words = {f.name for cls in vars(schema).values() if dataclasses.is_dataclass(cls) for f in dataclasses.fields(cls)}
    words |= {k for name in list_attacks() for k in attack_kwargs(name)}
    words |= set(inspect.signature(universal_perturbation).parameters)
    words |= {k for factory in _RESTORERS.values() for k in inspect.signature(factory).parameters}
    return (words - GENERIC) | {"params", "cfg"}


def _names(node: ast.AST | None) -> set[str]:
    return set() if node is None else {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
                                       if isinstance(n, (ast.Name, ast.Attribute))}


def params_checks(source: str, words: set[str]) -> set[str]:
    """Qualified names of the functions in ``source`` with a raise or assert reading a params value: it, its ``if``
    test, or the iterable of a loop binding a name it uses mentions one of ``words``; or it raises ConfigError."""
    found: set[str] = set()

    def walk(node: ast.AST, qual: str, guard: ast.AST | None, loops: dict[str, set[str]]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                walk(child, f"{qual}.{child.name}" if qual else child.name, None, {})
                continue
            if isinstance(child, (ast.Raise, ast.Assert)) and qual:
                ids = _names(child) | _names(guard)
                ids |= {w for name in ids & set(loops) for w in loops[name]}
                exc = getattr(child, "exc", None)
                raised = _names(exc.func if isinstance(exc, ast.Call) else exc)
                if ids & words or "ConfigError" in raised:
                    found.add(qual)
            inner = {**loops, **{t: _names(child.iter) for t in _names(child.target)}} \
                if isinstance(child, ast.For) else loops
            walk(child, qual, child.test if isinstance(child, ast.If) else guard, inner)

    walk(ast.parse(source), "", None, {})
    return found


def test_every_runtime_params_check_is_listed() -> None:
    words = params_words()
    src = Path(importlib.import_module("udcshield").__file__).parent
    found = {f"{m}:{q}" for m in SCANNED for q in params_checks((src / f"{m.replace('.', '/')}.py").read_text(), words)}
    covered = {row.where for row in ROWS}
    for where in covered:  # every row names a real function
        module, qualname = where.split(":")
        functools.reduce(getattr, qualname.split("."), importlib.import_module(f"udcshield.{module}"))
    assert sorted(found - covered - set(ALLOWLIST)) == [], "add a row (and a load-time check) or an ALLOWLIST reason"
    assert sorted(set(ALLOWLIST) - (found - covered)) == [], "stale ALLOWLIST entries"


def test_the_walk_flags_a_new_params_check() -> None:
    source = ("def check(params):\n    if params.purify.t_star > 9:\n        raise ValueError('deep')\n"
              "def shape(x):\n    if x.ndim != 4:\n        raise ValueError(f'{x.shape}')\n"
              "class A:\n    def __init__(self, depth):\n        for arg, value in (('depth', depth),):\n"
              "            if value < 0:\n                raise ValueError(arg)\n")
    assert params_checks(source, params_words()) == {"check", "A.__init__"}
