"""Checkpoint folders: round trip, atomic layout, clear errors, never unpickle."""

import json
import os
import shutil

import pytest
import torch

from udcshield.models import create_restorer, load_checkpoint, read_checkpoint_config, save_checkpoint
from udcshield.store.hashing import file_sha256


def _trained_like(name="resunet_tiny", **kwargs):
    model = create_restorer(name, **kwargs)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def test_round_trip_identical_outputs(tmp_path):
    model = _trained_like("resunet", base_channels=8, depth=2, blocks_per_level=2)
    save_checkpoint(model, tmp_path / "ckpt", extra={"note": "unit test", "psnr": 12.5})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp folders left behind
    config = read_checkpoint_config(tmp_path / "ckpt")
    assert config["architecture"] == "resunet" and config["kind"] == "restorer"
    assert config["kwargs"] == {"base_channels": 8, "depth": 2, "blocks_per_level": 2}
    assert config["extra"] == {"note": "unit test", "psnr": 12.5}
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert not loaded.training and loaded.restorer_name == "resunet"
    x = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_overwrite_replaces_and_refuses_foreign_folder(tmp_path):
    first, second = _trained_like(), create_restorer("resunet_tiny")
    save_checkpoint(first, tmp_path / "c")
    save_checkpoint(second, tmp_path / "c")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(tmp_path / "c")(x), second(x))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="notes.txt"):
        save_checkpoint(first, tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"


def test_unsaveable_model():
    with pytest.raises(TypeError, match="create_restorer"):
        save_checkpoint(torch.nn.Conv2d(3, 3, 1), "unused")


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")


def test_missing_config(tmp_path):
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "c")
    (tmp_path / "c" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_checkpoint(tmp_path / "c")


def test_missing_weights(tmp_path):
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_checkpoint(tmp_path / "c")


def test_pickle_present_instead_is_refused(tmp_path):
    model = create_restorer("resunet_tiny")
    save_checkpoint(model, tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "c" / "model.pt")
    with pytest.raises(ValueError, match="never unpickles"):
        load_checkpoint(tmp_path / "c")


def test_pickle_disguised_as_safetensors_is_refused(tmp_path):
    model = create_restorer("resunet_tiny")
    save_checkpoint(model, tmp_path / "c")
    torch.save(model.state_dict(), tmp_path / "c" / "model.safetensors")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_checkpoint(tmp_path / "c")


def test_unknown_architecture(tmp_path):
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "c")
    path = tmp_path / "c" / "config.json"
    config = json.loads(path.read_text())
    config["architecture"] = "mystery_net"
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="mystery_net"):
        load_checkpoint(tmp_path / "c")


def test_mismatched_weights(tmp_path):
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "c")
    path = tmp_path / "c" / "config.json"
    config = json.loads(path.read_text())
    config["kwargs"]["base_channels"] = 4
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        load_checkpoint(tmp_path / "c")


def test_corrupt_config(tmp_path):
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(tmp_path / "c")


def test_crash_mid_write_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    import udcshield.models.checkpoint as ckpt

    old_model, new_model = create_restorer("resunet_tiny"), _trained_like()
    save_checkpoint(old_model, tmp_path / "kept")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(new_model, tmp_path / "fresh")
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(new_model, tmp_path / "kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]  # no 'fresh', no temp folders
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(tmp_path / "kept")(x), old_model(x))


# ---------------------------------------------------------------------------------- weights digest on load
def test_config_records_digest_of_written_weights(tmp_path):
    save_checkpoint(_trained_like(), tmp_path / "c")
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["weights_sha256"] == file_sha256(tmp_path / "c" / "model.safetensors")


def test_round_trip_loads_bit_identical_weights(tmp_path):
    model = _trained_like("resunet", base_channels=8, depth=2, blocks_per_level=2)
    save_checkpoint(model, tmp_path / "c")
    loaded = load_checkpoint(tmp_path / "c")
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        assert original[name].dtype == restored[name].dtype
        assert torch.equal(original[name], restored[name]), name


def test_tensor_bytes_altered_in_place_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    save_checkpoint(_trained_like(), tmp_path / "c")
    weights = tmp_path / "c" / "model.safetensors"
    size = weights.stat().st_size
    state = load_file(str(weights))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] += 0.5  # finite, same shape: still a valid safetensors file
    save_file(state, str(weights), metadata={"format": "pt"})
    assert weights.stat().st_size == size  # same header, different tensor bytes
    with pytest.raises(ValueError, match="altered or swapped") as info:
        load_checkpoint(tmp_path / "c")
    message = str(info.value)
    assert str(weights) in message and "config.json" in message
    recorded = json.loads((tmp_path / "c" / "config.json").read_text())["weights_sha256"]
    assert recorded[:12] in message and file_sha256(weights)[:12] in message


def test_weights_swapped_from_another_model_are_refused(tmp_path):
    save_checkpoint(_trained_like(), tmp_path / "a")
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "b")  # same architecture, other weights
    shutil.copyfile(tmp_path / "b" / "model.safetensors", tmp_path / "a" / "model.safetensors")
    with pytest.raises(ValueError, match=r"a/model\.safetensors has sha256 .* altered or swapped"):
        load_checkpoint(tmp_path / "a")
    load_checkpoint(tmp_path / "b")  # the donor itself is intact


def test_config_without_digest_is_refused(tmp_path):
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "c")
    path = tmp_path / "c" / "config.json"
    config = json.loads(path.read_text())
    del config["weights_sha256"]
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="records no weights digest") as info:
        load_checkpoint(tmp_path / "c")
    assert str(path) in str(info.value) and "older" in str(info.value) and "re-save" in str(info.value)
    assert read_checkpoint_config(tmp_path / "c")["architecture"] == "resunet_tiny"  # config alone still reads


@pytest.mark.parametrize("digest", ["abc", 12, "G" * 64, "A" * 64])
def test_malformed_digest_is_refused(tmp_path, digest):
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "c")
    path = tmp_path / "c" / "config.json"
    config = json.loads(path.read_text())
    config["weights_sha256"] = digest
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="weights_sha256"):
        load_checkpoint(tmp_path / "c")


def test_weights_replaced_while_loading_are_refused(tmp_path, monkeypatch):
    import udcshield.models.checkpoint as ckpt

    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "c")
    save_checkpoint(_trained_like(), tmp_path / "d")
    weights = tmp_path / "c" / "model.safetensors"
    real_load = ckpt.load_file

    def load_then_swap(path, device="cpu"):
        out = real_load(path, device=device)
        os.replace(tmp_path / "d" / "model.safetensors", weights)  # a new inode after the parse
        return out

    monkeypatch.setattr(ckpt, "load_file", load_then_swap)
    with pytest.raises(ValueError, match="changed while it was being loaded"):
        load_checkpoint(tmp_path / "c")
