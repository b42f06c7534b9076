"""A restorer from outside the package: built from ``module:callable`` or an entry point, given weights from a
safetensors file or a ``.pt`` state dict (weights_only), saved and rebuilt by reference; clear errors."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest
import torch
from torch import nn

from tests.own_model import assert_state_equal, given_weights, write_own_module, write_weights
from udcshield.models import registry
from udcshield.models.checkpoint import (
    load_checkpoint,
    load_weights_file,
    read_checkpoint_config,
    read_weights_file,
    save_checkpoint,
)
from udcshield.models.registry import create_restorer, restorer_arguments, resolve_restorer


@pytest.fixture
def own(tmp_path, monkeypatch) -> str:
    """Name of a fresh module on sys.path defining ``make_net`` (see tests/own_model.py)."""
    return write_own_module(tmp_path, monkeypatch)


def _x() -> torch.Tensor:
    return torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))


def test_factory_reference_builds_and_stamps_the_reference(own):
    model = create_restorer(f"{own}:make_net", width=5)
    assert type(model).__name__ == "OwnNet" and type(model).__module__ == own
    assert model.restorer_name == f"{own}:make_net"
    assert model.init_kwargs == {"width": 5}
    assert model.inner.out_channels == 5
    assert restorer_arguments(f"{own}:OwnNet") == {"width": 4}  # a class works as well as a function


def test_given_safetensors_weights_round_trip_through_a_checkpoint(own, tmp_path):
    weights = given_weights(width=4)
    path = write_weights(tmp_path / "given.safetensors", weights)
    model = load_weights_file(create_restorer(f"{own}:make_net", width=4), path)
    assert_state_equal(model, weights)
    save_checkpoint(model, tmp_path / "ckpt")
    config = read_checkpoint_config(tmp_path / "ckpt")
    assert config["architecture"] == f"{own}:make_net" and config["kwargs"] == {"width": 4}
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert type(loaded).__module__ == own and loaded.restorer_name == f"{own}:make_net"
    assert_state_equal(loaded, weights)
    with torch.no_grad():
        torch.testing.assert_close(loaded(_x()), model.eval()(_x()), rtol=0, atol=0)


def test_pt_state_dict_is_read_with_weights_only(own, tmp_path):
    weights = given_weights(width=3, seed=2)
    path = write_weights(tmp_path / "given.pt", weights)
    read = read_weights_file(path)
    assert sorted(read) == sorted(weights)
    for key in weights:
        torch.testing.assert_close(read[key], weights[key], rtol=0, atol=0)
    assert_state_equal(load_weights_file(create_restorer(f"{own}:make_net", width=3), path), weights)


class _Payload:
    """Not a tensor: a pickle of it needs code to restore, which weights_only refuses."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pt_with_code_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"inner.weight": _Payload()}, path)
    with pytest.raises(ValueError, match=r"evil\.pth cannot be read"):
        read_weights_file(path)
    assert "unpickled!" not in capsys.readouterr().out


def test_wrapped_state_dict_and_non_tensors_are_named(tmp_path):
    wrapped = write_weights(tmp_path / "wrapped.pt", {"state_dict": given_weights()})
    with pytest.raises(ValueError, match=r"wrapped\.pt: 'state_dict' is a dict, not a tensor .*save the state dict"):
        read_weights_file(wrapped)
    numbers = write_weights(tmp_path / "numbers.pt", {"inner.weight": 3})
    with pytest.raises(ValueError, match=r"numbers\.pt: 'inner\.weight' is a int, not a tensor"):
        read_weights_file(numbers)


def test_missing_file_bad_suffix_and_nan_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"weights file .*absent\.safetensors does not exist"):
        read_weights_file(tmp_path / "absent.safetensors")
    (tmp_path / "w.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match=r"w\.bin: unsupported suffix '\.bin'"):
        read_weights_file(tmp_path / "w.bin")
    weights = given_weights()
    weights["outer.bias"][1] = float("nan")
    path = write_weights(tmp_path / "nan.safetensors", weights)
    with pytest.raises(ValueError, match=r"nan\.safetensors: 'outer\.bias' holds NaN"):
        read_weights_file(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"junk\.safetensors cannot be read"):
        read_weights_file(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_key_mismatch_names_file_and_keys(own, tmp_path, suffix):
    weights = given_weights()
    weights["extra.weight"] = weights.pop("outer.bias")
    path = write_weights(tmp_path / f"keys{suffix}", weights)
    model = create_restorer(f"{own}:make_net")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_weights_file(model, path)
    message = str(info.value)
    assert str(path) in message
    assert "missing ['outer.bias']" in message and "unexpected ['extra.weight']" in message
    assert_state_equal(model, before)  # nothing was loaded


def test_shape_mismatch_names_file_and_key(own, tmp_path):
    path = write_weights(tmp_path / "wide.safetensors", given_weights(width=6))
    with pytest.raises(ValueError) as info:
        load_weights_file(create_restorer(f"{own}:make_net", width=4), path)
    message = str(info.value)
    assert str(path) in message and "shape mismatch" in message
    assert "inner.weight: file (6, 3, 3, 3) vs model (4, 3, 3, 3)" in message


def test_import_errors_name_the_reference(own):
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_pkg_udc\.nets'"):
        resolve_restorer("no_such_pkg_udc.nets:make_net")
    with pytest.raises(ValueError, match=rf"module '{own}' has no attribute 'make_nett'"):
        resolve_restorer(f"{own}:make_nett")


def test_only_declared_factories_are_called(own, tmp_path, monkeypatch):
    """A reference must be an nn.Module subclass or annotated -> nn.Module: a checkpoint's config.json
    naming any other function is refused before the function runs."""
    with pytest.raises(ValueError, match="must be an nn.Module subclass or a function annotated"):
        resolve_restorer(f"{own}:unannotated")
    save_checkpoint(create_restorer(f"{own}:make_net"), tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / "config.json"
    config = json.loads(config_path.read_text())
    marker = tmp_path / "marker"
    config.update(architecture=f"{own}:side_effect", kwargs={"path": str(marker)})
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown architecture"):
        load_checkpoint(tmp_path / "ckpt")
    assert not marker.exists()
    config.update(architecture="subprocess:run", kwargs={"args": ["touch", str(marker)]})
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="must be an nn.Module subclass"):
        load_checkpoint(tmp_path / "ckpt")
    assert not marker.exists()


def _entry_points(own: str):
    declared = [EntryPoint(name="own_ep", value=f"{own}:make_net", group=registry.ENTRY_POINT_GROUP)]

    def entry_points(*, group: str):
        return [ep for ep in declared if ep.group == group]

    return entry_points


def test_entry_point_registers_a_restorer(own, tmp_path, monkeypatch):
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", _entry_points(own))
    assert registry.entry_point_restorers() == {"own_ep": f"{own}:make_net"}
    model = create_restorer("own_ep", width=3)
    assert type(model).__module__ == own and model.restorer_name == "own_ep" and model.init_kwargs == {"width": 3}
    weights = given_weights(width=3)
    load_weights_file(model, write_weights(tmp_path / "w.safetensors", weights))
    save_checkpoint(model, tmp_path / "ckpt")
    assert read_checkpoint_config(tmp_path / "ckpt")["architecture"] == "own_ep"
    assert_state_equal(load_checkpoint(tmp_path / "ckpt"), weights)
    with pytest.raises(ValueError, match=r"unknown restorer 'own_epp'; available: .*resunet.*own_ep"):
        resolve_restorer("own_epp")


def test_registered_names_win_over_entry_points(own, monkeypatch):
    declared = [EntryPoint(name="resunet", value=f"{own}:make_net", group=registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda *, group: declared)
    assert type(create_restorer("resunet_tiny")).__name__ == "ResUNet"
    assert resolve_restorer("resunet") is registry._RESTORERS["resunet"]


def test_factory_returning_no_module_is_refused(tmp_path, monkeypatch):
    name = write_own_module(tmp_path, monkeypatch)
    (tmp_path / f"{name}_bad.py").write_text("from torch import nn\n\n\ndef make() -> nn.Module:\n    return 3\n")
    with pytest.raises(TypeError, match="returned int, not an nn.Module"):
        create_restorer(f"{name}_bad:make")
    assert isinstance(create_restorer(f"{name}:make_net"), nn.Module)
