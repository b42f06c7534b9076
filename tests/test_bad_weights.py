"""Bad-input matrix, weights: missing, corrupt, altered or pickled checkpoints and VGG weights are refused by
name through both command lines, nothing is unpickled and nothing is left behind (harness:
:mod:`tests.bad_input_matrix`)."""

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from tests.bad_input_matrix import MODEL, assert_clean_failure, base, case, run_both, set_params, snapshot  # noqa: F401
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer


def test_non_finite_weights(case, capsys):
    from safetensors.torch import load_file, save_file

    weights = case / "data" / "restorers" / MODEL / "model.safetensors"
    state = load_file(str(weights))
    name = next(iter(state))
    state[name][...] = float("nan")
    save_file(state, str(weights))
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "non-finite" in err and "model.safetensors" in err and name in err
    assert_clean_failure(case, before, "attack")



# ---------------------------------------------------------------------------------- altered weights file
def test_weights_altered_after_the_checkpoint_was_written(case, capsys):
    """Still a valid safetensors file of the same shapes, but not the bytes the checkpoint recorded."""
    from safetensors.torch import load_file, save_file

    weights = case / "data" / "restorers" / MODEL / "model.safetensors"
    state = load_file(str(weights))
    name = next(iter(state))
    state[name].view(-1)[0] += 1.0
    save_file(state, str(weights))
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "model.safetensors" in err and "altered or swapped" in err
    assert_clean_failure(case, before, "attack")


def test_weights_swapped_from_another_checkpoint(case, capsys):
    other = case / "other"
    save_checkpoint(create_restorer(MODEL, generator=torch.Generator().manual_seed(1)), other)
    shutil.copy2(other / "model.safetensors", case / "data" / "restorers" / MODEL / "model.safetensors")
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "model.safetensors" in err and "altered or swapped" in err
    assert_clean_failure(case, before, "attack")


# ------------------------------------------------------------------------------------ missing weights file
def test_missing_weights_file(case, capsys):
    (case / "data" / "restorers" / MODEL / "model.safetensors").unlink()
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and f"restorers/{MODEL} has no model.safetensors" in err
    assert_clean_failure(case, before, "attack")


def test_missing_checkpoint_folder(case, capsys):
    shutil.rmtree(case / "data" / "restorers")
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and str(case / "data" / "restorers" / MODEL) in err and "missing" in err
    assert_clean_failure(case, before, "attack")


def test_checkpoint_that_is_a_file(case, capsys):
    folder = case / "data" / "restorers" / MODEL
    shutil.rmtree(folder)
    folder.write_bytes(b"")
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and str(folder) in err
    assert_clean_failure(case, before, "attack")


def test_missing_vgg_weights(case, capsys):
    set_params(case, train={"perceptual_weight": 0.1, "vgg_weights_path": str(case / "vgg19.safetensors")})
    before = snapshot(case / "data")
    code, err = run_both(case, "train", capsys)
    assert code == 1 and "VGG-19 weights not found" in err and "vgg19.safetensors" in err
    assert_clean_failure(case, before, "restorers")


# --------------------------------------------------------------------------- pickle instead of safetensors
class _Trap:
    """Unpickling this creates ``marker``: the tests assert it never exists (nothing was unpickled)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _pickle_file(path: Path, marker: Path) -> None:
    torch.save({"weights": torch.zeros(2), "trap": _Trap(marker)}, path)


def test_pickle_renamed_model_safetensors(case, capsys):
    marker = case / "unpickled"
    _pickle_file(case / "data" / "restorers" / MODEL / "model.safetensors", marker)
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "model.safetensors is not a valid safetensors file" in err and "pickle" in err
    assert not marker.exists()
    assert_clean_failure(case, before, "attack")


def test_pickle_checkpoint_instead_of_safetensors(case, capsys):
    folder = case / "data" / "restorers" / MODEL
    marker = case / "unpickled"
    (folder / "model.safetensors").unlink()
    _pickle_file(folder / "model.pt", marker)
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "['model.pt']" in err and "never unpickles" in err
    assert not marker.exists()
    assert_clean_failure(case, before, "attack")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_pickle_as_vgg_weights(case, capsys, suffix):
    marker = case / "unpickled"
    weights = case / f"vgg19{suffix}"
    with open(weights, "wb") as fh:
        pickle.dump(_Trap(marker), fh)
    set_params(case, train={"perceptual_weight": 0.1, "vgg_weights_path": str(weights)})
    before = snapshot(case / "data")
    code, err = run_both(case, "train", capsys)
    assert code == 1 and weights.name in err
    assert ("never a pickle" in err) if suffix == ".pt" else ("looks like a pickle" in err)
    assert not marker.exists()
    assert_clean_failure(case, before, "restorers")
