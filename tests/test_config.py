from pathlib import Path

import pytest
import yaml

from udcshield.config import ConfigError, Params, load_params, params_from_dict, to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_load_and_round_trip():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    again = params_from_dict(to_dict(params))
    assert again == params


def test_defaults_are_valid():
    assert params_from_dict({}) == Params()


@pytest.mark.parametrize(
    "raw, culprit",
    [
        ({"attack": {"batchsize": 4}}, "attack.batchsize"),
        ({"bogus": 1}, "bogus"),
        ({"attack": {"attacks": [{"name": "pgd", "budgets": [1, -2]}]}}, "attack.attacks[0].budgets[1]"),
        ({"attack": {"attacks": [{"name": "pgd", "budgets": [1, "4"]}]}}, "attack.attacks[0].budgets[1]"),
        ({"attack": {"attacks": [{"name": "deepfool"}]}}, "attack.attacks[0].name"),
        ({"train": {"iterations": 1.5}}, "train.iterations"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"train": {"flips": "yes"}}, "train.flips"),
        ({"simulate": {"optics": {"support_px": 32}}}, "simulate.optics.support_px"),
        ({"simulate": {"test_photos": ["astronaut"]}}, "astronaut"),
        ({"purify": {"t_star": 0}}, "purify.t_star"),
        ({"purify": {"t_star": 10, "num_steps": 20}}, "purify.num_steps"),
        ({"seed": -1}, "seed"),
        ({"device": "tpu"}, "device"),
        ({"train": {"lr": float("nan")}}, "train.lr"),
        ({"finetune": {"gan_weight": -0.1}}, "finetune.gan_weight"),
        ({"finetune": {"gan_lr": 0}}, "finetune.gan_lr"),
    ],
)
def test_bad_params_name_the_culprit(raw, culprit):
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert culprit in str(info.value)


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


def test_params_yaml_sections_match_dataclass():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw) == set(to_dict(Params()))
