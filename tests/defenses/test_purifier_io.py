"""save_purifier / load_purifier: same folder format and errors as restorer checkpoints."""

import json

import pytest
import torch

from udcshield.defenses import DiffusionPurifier, load_purifier, save_purifier
from udcshield.models import create_restorer, save_checkpoint


def perturbed(**kwargs):
    p = DiffusionPurifier(block_out_channels=(8, 16), num_train_timesteps=50,
                          generator=torch.Generator().manual_seed(0), **kwargs)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for param in p.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=g))
    return p.eval()


def test_round_trip_identical_purification(tmp_path):
    p = perturbed(attention=True, beta_schedule="squaredcos_cap_v2")
    save_purifier(p, tmp_path / "pur", extra={"trained_steps": 0})
    config = json.loads((tmp_path / "pur" / "config.json").read_text())
    assert config["kind"] == "purifier"
    assert config["kwargs"] == {"sample_size": 32, "block_out_channels": [8, 16], "layers_per_block": 1,
                                "attention": True, "num_train_timesteps": 50, "beta_schedule": "squaredcos_cap_v2"}
    loaded = load_purifier(tmp_path / "pur")
    assert not loaded.training and loaded.alpha_bar(20) == p.alpha_bar(20)
    x = torch.rand(2, 3, 11, 14, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = p.purify(x, t_star=6, num_steps=3, generator=torch.Generator().manual_seed(1))
        b = loaded.purify(x, t_star=6, num_steps=3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_restorer_checkpoint_is_not_a_purifier(tmp_path):
    save_checkpoint(create_restorer("resunet_tiny"), tmp_path / "r")
    with pytest.raises(ValueError, match="restorer"):
        load_purifier(tmp_path / "r")


def test_missing_and_pickled(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_purifier(tmp_path / "absent")
    p = perturbed()
    save_purifier(p, tmp_path / "pur")
    (tmp_path / "pur" / "model.safetensors").unlink()
    torch.save(p.state_dict(), tmp_path / "pur" / "diffusion_pytorch_model.bin")
    with pytest.raises(ValueError, match="never unpickles"):
        load_purifier(tmp_path / "pur")


def test_mismatched_weights(tmp_path):
    save_purifier(perturbed(), tmp_path / "pur")
    path = tmp_path / "pur" / "config.json"
    config = json.loads(path.read_text())
    config["kwargs"]["block_out_channels"] = [8, 8]
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        load_purifier(tmp_path / "pur")


def test_purifier_weights_are_verified(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from udcshield.store.hashing import file_sha256

    p = perturbed()
    save_purifier(p, tmp_path / "pur")
    config_path, weights = tmp_path / "pur" / "config.json", tmp_path / "pur" / "model.safetensors"
    assert json.loads(config_path.read_text())["weights_sha256"] == file_sha256(weights)
    loaded = load_purifier(tmp_path / "pur")
    for name, tensor in p.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name

    # (1) one tensor's bytes altered in place, header still valid
    state = load_file(str(weights))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] += 0.25
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="altered or swapped") as info:
        load_purifier(tmp_path / "pur")
    assert str(weights) in str(info.value)

    # (2) another purifier's weights of the same architecture swapped in
    save_purifier(p, tmp_path / "pur")
    other = DiffusionPurifier(block_out_channels=(8, 16), num_train_timesteps=50,
                              generator=torch.Generator().manual_seed(7))
    save_purifier(other, tmp_path / "other")
    shutil.copyfile(tmp_path / "other" / "model.safetensors", weights)
    with pytest.raises(ValueError, match="altered or swapped"):
        load_purifier(tmp_path / "pur")

    # (3) a config.json that records no digest
    save_purifier(p, tmp_path / "pur")
    config = json.loads(config_path.read_text())
    del config["weights_sha256"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="records no weights digest") as info:
        load_purifier(tmp_path / "pur")
    assert str(config_path) in str(info.value)
