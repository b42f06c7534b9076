"""The whole params file: loading, defaults written once, cross-section checks, round trips."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from udcshield.config import (
    SECTIONS,
    ConfigError,
    Params,
    SweepSampler,
    load_params,
    params_from_dict,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[2]
PARAMS_YAML = ROOT / "params.yaml"


# ------------------------------------------------------------------------------------------ params.yaml
def test_repository_params_load_and_round_trip():
    params = load_params(PARAMS_YAML)
    assert isinstance(params, Params)
    assert params_from_dict(to_dict(params)) == params


def _leaves(raw, prefix=""):
    """(dotted key, value) of every scalar or list-of-scalars leaf of a nested mapping (list entries as [i])."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(raw, list) and any(isinstance(v, dict) for v in raw):
        for i, value in enumerate(raw):
            yield from _leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, raw


def test_params_yaml_is_exactly_the_defaults():
    """params.yaml (the default run) spells out the dataclass defaults (the documented ones), key by key."""
    raw = yaml.safe_load(PARAMS_YAML.read_text())
    defaults = dict(_leaves(to_dict(Params())))
    differing = {key: (value, defaults.get(key, "<no such default>")) for key, value in _leaves(raw)
                 if defaults.get(key, object()) != value}
    assert not differing, differing
    assert params_from_dict({}) == load_params(PARAMS_YAML)


def test_defaults_are_valid():
    assert params_from_dict({}) == Params()
    Params().validate()


def test_params_yaml_sections_match_dataclass():
    raw = yaml.safe_load(PARAMS_YAML.read_text())
    assert set(raw) == set(to_dict(Params()))
    assert set(SECTIONS) == set(raw) - {"profile", "seed", "device"}


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("attack: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(scalar)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_params(empty) == Params()


@pytest.mark.parametrize("raw, culprit", [
    ({"bogus": 1}, "bogus"),
    ({"seed": -1}, "seed"),
    ({"device": "tpu"}, "device"),
    ({"attack": 3}, "attack must be a mapping"),
])
def test_bad_top_level_keys_name_the_culprit(raw, culprit):
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert culprit in str(info.value)


def test_errors_carry_the_source(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("seed: -3\n")
    with pytest.raises(ConfigError, match=rf"^{path}: seed must be >= 0"):
        load_params(path)


# ------------------------------------------------------------------------------------- cross-section checks
@pytest.mark.parametrize("raw, culprit", [
    ({"purify": {"t_star": 101, "num_steps": None}}, "purify.t_star (101)"),
    ({"finetune": {"t_stars": [30, 120], "num_steps": None}}, "finetune.t_stars[1] (120)"),
    ({"sweep": {"t_stars": [20, 50, 101]}}, "sweep.t_stars[2] (101)"),
])
def test_diffusion_depths_within_the_purifier(raw, culprit):
    raw = {"purifier": {"num_train_timesteps": 100}, **raw}
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    message = str(info.value)
    assert culprit in message and "exceeds the purifier's 100 diffusion steps" in message
    assert "[1, purifier.num_train_timesteps] = [1, 100]" in message


def test_diffusion_depths_at_the_limit_are_accepted():
    p = params_from_dict({"purifier": {"num_train_timesteps": 100}, "purify": {"t_star": 100},
                          "finetune": {"t_stars": [100]}, "sweep": {"t_stars": [20, 100]}})
    assert p.purify.t_star == 100 and p.finetune.t_stars == (100,)


def test_sweep_attack_must_be_crafted_by_the_attack_stage():
    with pytest.raises(ConfigError, match=r"sweep.attack 'fgsm' is not crafted by the attack stage "
                                          r"\(attack.attacks: pgd\)"):
        params_from_dict({"attack": {"attacks": [{"name": "pgd"}]}, "sweep": {"attack": "fgsm"}})
    with pytest.raises(ConfigError, match="sweep needs 'base' in attack.models"):
        params_from_dict({"attack": {"models": ["finetuned"]}})
    disabled = params_from_dict({"attack": {"attacks": [{"name": "fgsm"}]}, "sweep": {"enabled": False}})
    assert disabled.sweep.attack == "pgd"


def test_report_grid_attack_is_checked_with_the_attacks():
    with pytest.raises(ConfigError, match="report.grid_attack 'cw'"):
        params_from_dict({"report": {"grid_attack": "cw"}})


# ------------------------------------------------------------------------------------------- round trips
# Subnormals off: a library loaded by other tests may flush them to zero (fast-math), which hypothesis refuses.
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=6),
                    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False))
_KWARGS = st.dictionaries(_NAME, _SCALAR, max_size=3)
_POS_FLOAT = st.floats(min_value=1e-6, max_value=1e3, allow_nan=False, allow_subnormal=False)
_UNIT = st.floats(min_value=0.0, max_value=1.0, allow_subnormal=False)


@st.composite
def raw_params(draw) -> dict:
    """A random valid params mapping: every section, including the cross-section constraints."""
    steps = draw(st.integers(1, 1000))
    depth = st.integers(1, steps)
    purify_t = draw(depth)
    ft_t = draw(st.lists(depth, min_size=1, max_size=3))
    sweep_t = draw(st.lists(depth, min_size=1, max_size=3, unique=True))
    ddim = st.builds(lambda n, eta: {"sampler": "ddim", "num_steps": n, "eta": eta},
                     st.none() | st.integers(1, min(sweep_t)), _UNIT)
    samplers = [{"sampler": "ddpm", "num_steps": None}] + draw(
        st.lists(ddim, max_size=3, unique_by=lambda s: SweepSampler(**s).label))
    attacks = draw(st.lists(_NAME, min_size=1, max_size=3, unique=True))
    models = draw(st.lists(st.sampled_from(["base", "finetuned"]), min_size=1, max_size=2, unique=True))
    sweep_on = "base" in models and draw(st.booleans())
    lr = draw(_POS_FLOAT)
    mode = draw(st.sampled_from(["purified", "adversarial", "trades", "mixed"]))
    trainable = draw(st.just("all") | st.lists(_NAME, min_size=1, max_size=3, unique=True))
    dask = draw(st.booleans())
    return {
        "seed": draw(st.integers(0, 2**31)),
        "device": draw(st.sampled_from(["auto", "cpu", "cuda"])),
        "simulate": {"patch_size": draw(st.integers(1, 256)), "scale": draw(st.floats(1e-3, 1.0)),
                     "train_photos": ["a", "b"], "test_photos": ["c"],
                     "optics": {"mask": draw(st.sampled_from(["toled", "poled", "circle", "open"])),
                                "support_px": 2 * draw(st.integers(1, 40)) + 1,
                                "open_ratio": draw(st.floats(min_value=0.01, max_value=1.0, allow_subnormal=False)),
                                "random_tile_flip": draw(st.booleans())},
                     "hdr": {"light_gain_range": sorted(draw(st.lists(_POS_FLOAT, min_size=2, max_size=2)))},
                     "formation": {"noise": draw(st.sampled_from(["none", "poisson_gaussian"]))}},
        "train": {"models": [{"name": n, "kwargs": draw(_KWARGS)}
                             for n in draw(st.lists(_NAME, min_size=1, max_size=3, unique=True))],
                  "lr": lr, "lr_min": lr * draw(_UNIT), "loss": draw(st.sampled_from(["l1", "l2"]))},
        "purifier": {"num_train_timesteps": steps, "block_out_channels": draw(st.lists(st.integers(1, 64), min_size=1,
                                                                                         max_size=3))},
        "finetune": {"mode": mode, "t_stars": ft_t, "num_steps": draw(st.none() | st.integers(1, min(ft_t))),
                     "batch_size": draw(st.integers(2, 16)), "attack_budget": draw(st.integers(1, 256)),
                     "adversarial_weight": draw(_UNIT), "trainable": trainable},
        "attack": {"models": models, "attacks": [{"name": n, "budgets": draw(st.lists(st.integers(1, 256), min_size=1,
                                                                                       max_size=4, unique=True)),
                                                  "kwargs": draw(_KWARGS)} for n in attacks],
                   "objective": draw(st.sampled_from(["mse", "l1"]))},
        "purify": {"t_star": purify_t, "num_steps": draw(st.none() | st.integers(1, purify_t)), "eta": draw(_UNIT),
                   "sampler": draw(st.sampled_from(["ddpm", "ddim"]))},
        "adaptive": {"budgets": draw(st.lists(st.integers(1, 256), min_size=1, max_size=3)),
                     "attacks": [{"name": n, "gradient": draw(st.sampled_from(["bpda", "full"]))}
                                 for n in draw(st.lists(_NAME.filter(lambda s: s not in ("clean", "pgd")),
                                                        min_size=1, max_size=2, unique=True))]},
        "sweep": {"enabled": sweep_on, "t_stars": sweep_t, "samplers": samplers,
                  "attack": draw(st.sampled_from(attacks))},
        "report": {"grid_attack": draw(st.none() | st.sampled_from(attacks))},
        "runner": {"kind": "dask" if dask else "local", "address": "tcp://h:8786" if dask else None},
        "accel": {"amp": draw(st.sampled_from(["none", "bf16", "auto"])), "amp_tolerance_db": draw(_POS_FLOAT)},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_params())
def test_round_trip_of_generated_params(raw):
    params = params_from_dict(raw)
    assert params_from_dict(to_dict(params)) == params
    assert params_from_dict(yaml.safe_load(yaml.safe_dump(to_dict(params)))) == params


@settings(max_examples=30, deadline=None)
@given(raw_params())
def test_every_field_of_generated_params_is_frozen(raw):
    params = params_from_dict(raw)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.seed = 1  # type: ignore[misc]
    assert hash(params.purify) == hash(params_from_dict(to_dict(params)).purify)
