"""Bad-input matrix: every row is a clear error naming the culprit, a non-zero exit, nothing half-written and
earlier artifacts untouched (docs/pipeline.md, section "Bad input").

Each test copies a small finished data root (simulated stores from two photo files and an untrained restorer
checkpoint), breaks one thing, runs a stage through the command line (``udcshield run`` in-process, or
``python -m flows`` as ``dvc repro`` does) and compares every file's digest before and after. A control
test runs the same stage on the unbroken copy, so each failure comes from the broken input.
"""

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr

from tests.pipeline_fixtures import ROOT, deep_update, env, tiny_params
from udcshield.cli import main
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.store.hashing import file_sha256
from udcshield.store.zarr_io import write_store

MODEL = "resunet_tiny"


def _params(photos: Path) -> dict:
    return deep_update(tiny_params(), {
        "simulate": {"source": "folder", "dataset_root": str(photos), "scale": 1.0},
        "attack": {"models": ["base"], "attacks": [{"name": "fgsm", "budgets": [8]}]},
        "sweep": {"attack": "fgsm"},  # the sweep purifies one of the crafted attacks
    })


def _write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """photos/{train,test}/*.png, params.yaml, data/simulated (by the simulate stage), data/restorers."""
    root = tmp_path_factory.mktemp("bad-inputs")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "photos" / split).mkdir(parents=True)
        from imageio.v3 import imwrite

        imwrite(root / "photos" / split / f"{split}_a.png", (rng.random((72, 80, 3)) * 255).astype(np.uint8))
    params = _write_params(root / "params.yaml", _params(root / "photos"))
    assert main(["run", "simulate", "--params", str(params), "--data", str(root / "data")]) == 0
    model = create_restorer(MODEL, generator=torch.Generator().manual_seed(0))
    save_checkpoint(model, root / "data" / "restorers" / MODEL)
    return root


@pytest.fixture
def case(base, tmp_path):
    """A private copy of ``base`` whose params point at its own photos."""
    case = Path(shutil.copytree(base, tmp_path / "case"))
    _write_params(case / "params.yaml", _params(case / "photos"))
    return case


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (hidden temporary siblings included)."""
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(case: Path, stage: str, capsys) -> tuple[int, str]:
    code = main(["run", stage, "--params", str(case / "params.yaml"), "--data", str(case / "data")])
    return code, capsys.readouterr().err


def run_flow(case: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows", stage, "--params", str(case / "params.yaml"),
                           "--data", str(case / "data")], cwd=ROOT, env=env(ROOT), capture_output=True,
                          text=True, timeout=300)


def assert_clean_failure(case: Path, before: dict[str, str], out: str | None = None) -> None:
    """Every file as before (the broken one included), no temporary leftovers, ``out`` absent or as before."""
    after = snapshot(case / "data")
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:6]
    leftovers = [p.name for p in (case / "data").rglob(".*") if ".tmp-" in p.name or ".old-" in p.name
                 or p.name.startswith((".tmp", ".old"))]
    assert not leftovers, leftovers
    if out is not None:
        assert not (case / "data" / out).exists() or any(k.startswith(out + "/") or k == out for k in before)


def set_params(case: Path, **sections) -> None:
    params = yaml.safe_load((case / "params.yaml").read_text())
    _write_params(case / "params.yaml", deep_update(params, sections))


# ------------------------------------------------------------------------------------------------ control
def test_control_unbroken_copy_runs(case, capsys):
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
    assert code == 0, err
    assert (case / "data/attack/adversarial.zarr/zarr.json").is_file()
    after = snapshot(case / "data")
    assert {k: v for k, v in after.items() if not k.startswith("attack/")} == before


# ------------------------------------------------------------------------------------------ corrupt image
def test_corrupt_image(case, capsys):
    photo = case / "photos" / "train" / "train_a.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    before = snapshot(case / "data")
    code, err = run_cli(case, "simulate", capsys)
    assert code == 1
    assert "cannot decode image file" in err and "train_a.png" in err
    assert_clean_failure(case, before, "simulated")


def test_corrupt_image_through_the_flow(case):
    (case / "photos" / "test" / "test_a.png").write_bytes(b"garbage")
    before = snapshot(case / "data")
    proc = run_flow(case, "simulate")
    assert proc.returncode != 0
    assert "cannot decode image file" in proc.stderr and "test_a.png" in proc.stderr
    assert_clean_failure(case, before, "simulated")


def test_corrupt_user_mask(case, capsys):
    (case / "mask.png").write_bytes(b"garbage")
    set_params(case, simulate={"optics": {"mask": "user", "user_mask_path": str(case / "mask.png")}})
    before = snapshot(case / "data")
    code, err = run_cli(case, "simulate", capsys)
    assert code == 1 and "mask.png" in err
    assert_clean_failure(case, before, "simulated")


# ------------------------------------------------------------------------------------------- missing file
def test_missing_photo_folder(case, capsys):
    shutil.rmtree(case / "photos" / "test")
    before = snapshot(case / "data")
    code, err = run_cli(case, "simulate", capsys)
    assert code == 1 and "photo folder not found" in err and str(case / "photos" / "test") in err
    assert_clean_failure(case, before, "simulated")


def test_missing_input_store(case, capsys):
    shutil.rmtree(case / "data" / "simulated" / "test.zarr")
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
    assert code == 1 and "test.zarr" in err and "not found" in err
    assert_clean_failure(case, before, "attack")


def test_incomplete_input_store(case, capsys):
    group = zarr.open_group(case / "data" / "simulated" / "test.zarr", mode="r+")
    del group.attrs["complete"]
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
    assert code == 1 and "test.zarr is incomplete" in err
    assert_clean_failure(case, before, "attack")


# -------------------------------------------------------------------------------------------- wrong shape
def _replace_store(case: Path, split: str, inputs: np.ndarray) -> None:
    store = case / "data" / "simulated" / f"{split}.zarr"
    shutil.rmtree(store)
    with write_store(store, {"stage": "simulate", "image_ids": [f"x/{i:03d}" for i in range(len(inputs))]}) as w:
        w.add_array("inputs", inputs)
        w.add_array("targets", inputs)


@pytest.mark.parametrize("split, stage, artifact", [("train", "train", "restorers"), ("test", "attack", "attack")])
@pytest.mark.parametrize("shape, message", [((8, 1, 32, 32), "expected RGB images N x 3 x H x W"),
                                            ((8, 32, 32), "expected N x C x H x W float32")])
def test_wrong_shape(case, capsys, split, stage, artifact, shape, message):
    _replace_store(case, split, np.full(shape, 0.5, dtype=np.float32))
    before = snapshot(case / "data")
    code, err = run_cli(case, stage, capsys)
    assert code == 1 and message in err and f"{split}.zarr/inputs" in err
    assert_clean_failure(case, before, artifact)


def _response_csv(path: Path, channels: int, bad: float | None = None) -> Path:
    rows = [[450.0 + 10 * i] + [1.0] * channels for i in range(8)]
    if bad is not None:
        rows[3][1] = bad
    header = ",".join(["wavelength_nm", *"rgbx"[:channels]])
    path.write_text(header + "\n" + "\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    return path


def test_wrong_shape_sensor_response(case, capsys):
    csv = _response_csv(case / "response.csv", channels=2)
    set_params(case, simulate={"optics": {"spectral_response_path": str(csv)}})
    before = snapshot(case / "data")
    code, err = run_cli(case, "simulate", capsys)
    assert code == 1 and "response.csv" in err and "3 channels" in err
    assert_clean_failure(case, before, "simulated")


# ------------------------------------------------------------------------------------------------ NaN/Inf
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_in_a_stored_array(case, capsys, bad):
    arr = zarr.open_array(case / "data" / "simulated" / "train.zarr" / "inputs", mode="r+")
    chunk = np.asarray(arr[1])
    chunk[0, 3, 5] = bad
    arr[1] = chunk
    before = snapshot(case / "data")
    code, err = run_cli(case, "train", capsys)
    assert code == 1 and "train.zarr/inputs: contains NaN or Inf" in err
    assert_clean_failure(case, before, "restorers")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_in_an_input_file(case, capsys, bad):
    csv = _response_csv(case / "response.csv", channels=3, bad=bad)
    set_params(case, simulate={"optics": {"spectral_response_path": str(csv)}})
    before = snapshot(case / "data")
    code, err = run_cli(case, "simulate", capsys)
    assert code == 1 and "response.csv: contains NaN or Inf" in err
    assert_clean_failure(case, before, "simulated")


def test_non_finite_weights(case, capsys):
    from safetensors.torch import load_file, save_file

    weights = case / "data" / "restorers" / MODEL / "model.safetensors"
    state = load_file(str(weights))
    name = next(iter(state))
    state[name][...] = float("nan")
    save_file(state, str(weights))
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
    assert code == 1 and "non-finite" in err and "model.safetensors" in err and name in err
    assert_clean_failure(case, before, "attack")


# ------------------------------------------------------------------------------- unknown key / wrong type
def test_unknown_params_key(case, capsys):
    set_params(case, simulate={"optics": {"pitch": 100.0}})
    before = snapshot(case / "data")
    code, err = run_cli(case, "simulate", capsys)
    assert code == 2 and "simulate.optics.pitch" in err
    proc = run_flow(case, "simulate")
    assert proc.returncode == 2 and "simulate.optics.pitch" in proc.stderr
    assert "Beginning flow run" not in proc.stdout + proc.stderr
    assert_clean_failure(case, before)


def test_wrong_type(case, capsys):
    set_params(case, train={"iterations": "many"})
    before = snapshot(case / "data")
    code, err = run_cli(case, "train", capsys)
    assert code == 2 and "train.iterations must be an integer" in err
    proc = run_flow(case, "train")
    assert proc.returncode == 2 and "train.iterations must be an integer" in proc.stderr
    assert_clean_failure(case, before)


def test_wrong_type_in_a_list(case, capsys):
    set_params(case, simulate={"optics": {"wavelengths_nm": [610.0, "green", 470.0]}})
    before = snapshot(case / "data")
    code, err = run_cli(case, "simulate", capsys)
    assert code == 2 and "simulate.optics.wavelengths_nm[1]" in err
    assert_clean_failure(case, before)


# ------------------------------------------------------------------------------------ missing weights file
def test_missing_weights_file(case, capsys):
    (case / "data" / "restorers" / MODEL / "model.safetensors").unlink()
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
    assert code == 1 and f"restorers/{MODEL} has no model.safetensors" in err
    assert_clean_failure(case, before, "attack")


def test_missing_checkpoint_folder(case, capsys):
    shutil.rmtree(case / "data" / "restorers")
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
    assert code == 1 and str(case / "data" / "restorers" / MODEL) in err and "missing" in err
    assert_clean_failure(case, before, "attack")


def test_checkpoint_that_is_a_file(case, capsys):
    folder = case / "data" / "restorers" / MODEL
    shutil.rmtree(folder)
    folder.write_bytes(b"")
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
    assert code == 1 and str(folder) in err
    assert_clean_failure(case, before, "attack")


def test_missing_vgg_weights(case, capsys):
    set_params(case, train={"perceptual_weight": 0.1, "vgg_weights_path": str(case / "vgg19.safetensors")})
    before = snapshot(case / "data")
    code, err = run_cli(case, "train", capsys)
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
    code, err = run_cli(case, "attack", capsys)
    assert code == 1 and "model.safetensors is not a valid safetensors file" in err and "pickle" in err
    assert not marker.exists()
    assert_clean_failure(case, before, "attack")


def test_pickle_checkpoint_instead_of_safetensors(case, capsys):
    folder = case / "data" / "restorers" / MODEL
    marker = case / "unpickled"
    (folder / "model.safetensors").unlink()
    _pickle_file(folder / "model.pt", marker)
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
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
    code, err = run_cli(case, "train", capsys)
    assert code == 1 and weights.name in err
    assert ("never a pickle" in err) if suffix == ".pt" else ("looks like a pickle" in err)
    assert not marker.exists()
    assert_clean_failure(case, before, "restorers")
