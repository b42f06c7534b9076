"""Preflight of ``train`` for a user's own model: the factory imports, the given weights exist and fit the
model (keys and shapes), labels are distinct; every error names the key and the file."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from tests.own_model import given_weights, write_own_module, write_weights
from udcshield.config import ConfigError, params_from_dict
from udcshield.models import registry
from udcshield.preflight import preflight


def _params(*models: dict):
    return params_from_dict({"train": {"models": list(models)}})


@pytest.fixture
def own(tmp_path, monkeypatch) -> str:
    return write_own_module(tmp_path, monkeypatch)


def _refusal(params) -> str:
    with pytest.raises(ConfigError) as info:
        preflight(params, ["train"])
    return str(info.value)


def test_own_model_with_matching_weights_passes(own, tmp_path):
    path = write_weights(tmp_path / "w.safetensors", given_weights(width=5))
    preflight(_params({"name": f"{own}:make_net", "label": "mine", "kwargs": {"width": 5}, "weights": str(path),
                       "train": False}), ["train"])


def test_missing_weights_file_names_key_and_file(own, tmp_path):
    path = tmp_path / "absent.safetensors"
    message = _refusal(_params({"name": "resunet_tiny"}, {"name": f"{own}:make_net", "label": "mine",
                                                          "weights": str(path)}))
    assert message.startswith(f"train.models[1].weights ({path})") and "does not exist" in message


def test_weights_of_another_shape_name_key_file_and_tensor(own, tmp_path):
    path = write_weights(tmp_path / "wide.pt", given_weights(width=6))
    message = _refusal(_params({"name": f"{own}:make_net", "label": "mine", "weights": str(path)}))
    assert message.startswith("train.models[0].weights") and str(path) in message
    assert "inner.weight: file (6, 3, 3, 3) vs model (4, 3, 3, 3)" in message


def test_weights_of_another_architecture_name_the_keys(tmp_path):
    path = write_weights(tmp_path / "other.safetensors", given_weights())
    message = _refusal(_params({"name": "resunet_tiny", "label": "res", "weights": str(path)}))
    assert message.startswith("train.models[0].weights") and "unexpected ['inner.bias'" in message


def test_factory_that_does_not_import_names_the_key():
    message = _refusal(_params({"name": "no_such_pkg_udc.nets:make_net", "label": "mine"}))
    assert message.startswith("train.models[0].name: restorer 'no_such_pkg_udc.nets:make_net': cannot import module")


def test_own_kwargs_are_checked_against_the_factory(own):
    message = _refusal(_params({"name": f"{own}:make_net", "label": "mine", "kwargs": {"widht": 3}}))
    assert message.startswith(f"train.models[0].kwargs.widht: restorer '{own}:make_net': got an unexpected keyword")
    assert message.endswith("accepted arguments: ['width']")


def test_labels_must_be_distinct(own):
    with pytest.raises(ConfigError, match=r"train.models lists a restorer twice \(labels \['mine', 'mine'\]\)"):
        _params({"name": "resunet_tiny", "label": "mine"}, {"name": f"{own}:make_net", "label": "mine"})


def test_entry_point_names_pass_preflight(own, monkeypatch):
    declared = [EntryPoint(name="own_ep", value=f"{own}:make_net", group=registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda *, group: declared)
    preflight(_params({"name": "own_ep", "kwargs": {"width": 2}}), ["train"])
    broken = [EntryPoint(name="own_ep", value="no_such_pkg_udc:make", group=registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda *, group: broken)
    message = _refusal(_params({"name": "own_ep"}))
    assert message.startswith("train.models[0].name: restorer 'own_ep' (entry point 'no_such_pkg_udc:make'")
