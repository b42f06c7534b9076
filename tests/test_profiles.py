"""Parameter profiles (conf/, Hydra, as ``dvc exp run -S profile=<name>`` composes them): every one loads and
passes preflight, ``cpu`` is the committed params.yaml, ``study`` holds the study's settings and runs through
one step of every stage with a tiny override."""

from __future__ import annotations

import json
import time

import pytest
import torch
import yaml

from tests.pipeline_fixtures import ROOT
from udcshield.config import SECTIONS, ConfigError, params_from_dict
from udcshield.models.registry import list_restorers
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import STAGE_NAMES, run_stage
from udcshield.preflight import preflight
from udcshield.profiles import compose_profile, list_profiles

CONF = ROOT / "conf"
#: The seven restorers of the study; the registry holds them, the ResUNets, and test-only registrations (test_*).
STUDY_RESTORERS = {"discnet", "uformer", "dagf", "dwformer", "bnudc", "srudc", "udcunet"}


def test_the_registry_holds_the_study_restorers():
    assert {n for n in list_restorers() if not n.startswith(("resunet", "test_"))} == STUDY_RESTORERS


def test_the_four_profiles_exist_and_dvc_composes_them():
    assert list_profiles(CONF) == ["cpu", "study", "tiny", "zoo"]
    dvc_config = (ROOT / ".dvc" / "config").read_text()
    assert "[hydra]" in dvc_config and "enabled = true" in dvc_config


def test_cpu_is_the_committed_params_yaml():
    assert compose_profile("cpu", conf_dir=CONF) == yaml.safe_load((ROOT / "params.yaml").read_text())
    # the same text, comments included: conf/profile/cpu.yaml is params.yaml under Hydra's package header
    assert (CONF / "profile" / "cpu.yaml").read_text() == "# @package _global_\n" + (ROOT / "params.yaml").read_text()


@pytest.mark.parametrize("name", ["cpu", "study", "tiny", "zoo"])
def test_every_profile_loads_and_passes_preflight(name):
    raw = compose_profile(name, conf_dir=CONF)
    params = params_from_dict(raw, source=f"profile {name}")
    assert params.profile == name
    preflight(params, list(SECTIONS))


def test_study_holds_the_study_settings():
    p = params_from_dict(compose_profile("study", conf_dir=CONF))
    assert p.simulate.patch_size == 256 and p.train.crop_size == 256 and p.train.batch_size == 16
    assert {m.name for m in p.train.models} == STUDY_RESTORERS and len(p.train.models) == 7
    assert all(m.kwargs == {"size": "paper"} for m in p.train.models)
    attacks = {a.name: a for a in p.attack.attacks}
    assert attacks["pgd"].budgets == (1, 2, 4, 8) and attacks["pgd"].kwargs["steps"] == 20
    assert attacks["cw_l2"].kwargs["binary_search_steps"] == 9 and attacks["cw_l2"].kwargs["confidence"] == 0
    assert attacks["simba"].budgets == (4,) and attacks["simba"].kwargs["max_iters"] == 1000
    assert attacks["simba"].kwargs["step"] == 4 / 256
    assert all(50 <= t <= 100 for t in p.finetune.t_stars) and p.finetune.num_steps is None
    assert p.purify.num_steps is None and p.adaptive.strong


def test_zoo_runs_the_seven_restorers_and_the_resunet():
    p = params_from_dict(compose_profile("zoo", conf_dir=CONF))
    assert sorted(m.name for m in p.train.models) == sorted(STUDY_RESTORERS | {"resunet"})
    assert all(m.kwargs == {"size": "tiny"} for m in p.train.models if m.name != "resunet")


def test_overrides_and_unknown_profiles():
    raw = compose_profile("zoo", ["train.iterations=7", "seed=3"], conf_dir=CONF)
    assert (raw["train"]["iterations"], raw["seed"], raw["profile"]) == (7, 3, "zoo")
    with pytest.raises(ConfigError, match=r"profile 'gpu' is not one of \['cpu', 'study', 'tiny', 'zoo'\]"):
        compose_profile("gpu", conf_dir=CONF)
    with pytest.raises(ConfigError, match="profile 'cpu' with overrides"):
        compose_profile("cpu", ["train.no_such_key=1"], conf_dir=CONF)
    with pytest.raises(FileNotFoundError, match="no profile folder"):
        list_profiles(ROOT / "no_such_conf")


#: Shrinks every size and count of ``study`` to one step on 32-px patches, keeping its restorers at their
#: published sizes and its attacks (same names and budgets, one iteration each).
TINY_STUDY = [
    "device=cpu", "simulate.train_photos=[astronaut]", "simulate.test_photos=[chelsea]", "simulate.patch_size=32",
    "simulate.train_patches_per_image=2", "simulate.test_patches_per_image=2", "simulate.scale=0.25",
    "simulate.optics.support_px=9", "simulate.optics.oversample=2",
    "train.iterations=1", "train.batch_size=1", "train.crop_size=32",
    "purifier.sample_size=32", "purifier.block_out_channels=[8,16]", "purifier.layers_per_block=1",
    "purifier.attention=false", "purifier.num_train_timesteps=20", "purifier.iterations=1",
    "purifier.batch_size=1", "purifier.crop_size=32",
    "finetune.t_stars=[2,3]", "finetune.iterations=1", "finetune.batch_size=1", "finetune.crop_size=32",
    "finetune.purify_batch_size=2", "attack.convergence.enabled=false",
    "attack.attacks=[{name: pgd, budgets: [1, 2, 4, 8], kwargs: {steps: 1, random_start: true}},"
    " {name: apgd, budgets: [8], kwargs: {steps: 1, restarts: 1}}, {name: square, budgets: [8], kwargs: {max_queries: 2}},"
    " {name: cw_l2, budgets: [256], kwargs: {binary_search_steps: 1, confidence: 0.0, steps: 1}},"
    " {name: simba, budgets: [4], kwargs: {max_iters: 1, max_queries: 3, step: 0.015625}}]",
    "purify.t_star=2", "adaptive.strong=false", "adaptive.max_images=1", "adaptive.draws=1",
    "adaptive.attacks=[{name: full, algorithm: apgd, gradient: full, eot_samples: 1, steps: 1}]",
    "adaptive.checks.enabled=false", "sweep.t_stars=[2]", "sweep.samplers=[{sampler: ddpm, num_steps: null}]",
    "sweep.max_images=1", "sweep.draws=1",
]


@pytest.mark.slow
def test_study_with_a_tiny_override_runs_one_step_of_every_stage(tmp_path):
    params = params_from_dict(compose_profile("study", TINY_STUDY, conf_dir=CONF), source="study + tiny override")
    assert {m.kwargs["size"] for m in params.train.models} == {"paper"}
    preflight(params, list(SECTIONS))
    layout, cpu, seconds = Layout(tmp_path / "data"), torch.device("cpu"), {}
    for stage in STAGE_NAMES:
        start = time.perf_counter()
        run_stage(stage, params, layout, cpu)
        seconds[stage] = round(time.perf_counter() - start, 1)
    metrics = json.loads(layout.metrics.read_text())
    for model in params.train.models:
        for variant in ("base", "finetuned"):
            assert f"{model.label}:{variant}" in metrics, (model.label, sorted(metrics))
    assert layout.report.is_file(), seconds
