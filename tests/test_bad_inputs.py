"""Bad-input matrix, files and stores: every row is one clear error naming the culprit, the same line and
exit status through ``udcshield run`` and ``python -m flows`` (the ``dvc repro`` path), nothing
half-written, the shard cache included, and earlier artifacts untouched (docs/pipeline.md, "Bad input").

The harness is :mod:`tests.bad_input_matrix`; rows about weights and params are in
``test_bad_weights.py`` and ``test_bad_params.py``. A control test runs a stage on the unbroken copy, so
each failure comes from the broken input.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.bad_input_matrix import assert_clean_failure, base, case, run_both, run_cli, set_params, snapshot  # noqa: F401
from udcshield.store.hashing import array_sha256
from udcshield.store.zarr_io import write_store


# ------------------------------------------------------------------------------------------------ control
def test_control_unbroken_copy_runs(case, capsys):
    before = snapshot(case / "data")
    code, err = run_cli(case, "attack", capsys)
    assert code == 0, err
    assert (case / "data/attack/adversarial.zarr/zarr.json").is_file()
    after = snapshot(case / "data")
    assert {k: v for k, v in after.items() if not k.startswith("attack/")} == before


# ------------------------------------------------------------------------------------------ corrupt image
@pytest.mark.parametrize("content, message", [(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8, "cannot decode image file"),
                                              (b"", "the file is empty")], ids=["garbage", "zero-bytes"])
def test_corrupt_image(case, capsys, content, message):
    photo = case / "photos" / "train" / "train_a.png"
    photo.write_bytes(content)
    before = snapshot(case / "data")
    code, err = run_both(case, "simulate", capsys)
    assert code == 1 and message in err and "train_a.png" in err
    assert "pyav" not in err.lower() and "opencv" not in err.lower()
    assert_clean_failure(case, before, "simulated")


def test_corrupt_user_mask(case, capsys):
    (case / "mask.png").write_bytes(b"garbage")
    set_params(case, simulate={"optics": {"mask": "user", "user_mask_path": str(case / "mask.png")}})
    before = snapshot(case / "data")
    code, err = run_both(case, "simulate", capsys)
    assert code == 1 and "mask.png" in err
    assert_clean_failure(case, before, "simulated")


# ------------------------------------------------------------------------------------------- missing file
def test_missing_photo_folder(case, capsys):
    shutil.rmtree(case / "photos" / "test")
    before = snapshot(case / "data")
    code, err = run_both(case, "simulate", capsys)
    assert code == 1 and "photo folder not found" in err and str(case / "photos" / "test") in err
    assert_clean_failure(case, before, "simulated")


def test_missing_input_store(case, capsys):
    shutil.rmtree(case / "data" / "simulated" / "test.zarr")
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "test.zarr" in err and "not found" in err
    assert_clean_failure(case, before, "attack")


def test_input_store_without_zarr_json(case, capsys):
    (case / "data" / "simulated" / "test.zarr" / "zarr.json").unlink()
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "test.zarr is not a zarr store: the folder has no zarr.json" in err
    assert_clean_failure(case, before, "attack")


@pytest.mark.parametrize("mark, message", [(None, "no 'complete' attribute"), (False, "'complete' is False, not true")],
                         ids=["absent", "false"])
def test_incomplete_input_store(case, capsys, mark, message):
    group = zarr.open_group(case / "data" / "simulated" / "test.zarr", mode="r+")
    if mark is None:
        del group.attrs["complete"]
    else:
        group.attrs["complete"] = mark
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "test.zarr is incomplete" in err and message in err
    assert_clean_failure(case, before, "attack")


# ---------------------------------------------------------------------------------- altered or corrupt data
def _first_chunk(store: Path, array: str) -> Path:
    return next(p for p in sorted((store / array / "c").rglob("*")) if p.is_file())


def test_input_array_altered_after_it_was_written(case, capsys):
    """Defect 1 of the shard cache: content that no longer matches its recorded digest is refused."""
    arr = zarr.open_array(case / "data" / "simulated" / "test.zarr" / "targets", mode="r+")
    arr[0] = 1.0 - np.asarray(arr[0])
    before = snapshot(case / "data")
    code, err = run_both(case, "attack", capsys)
    assert code == 1 and "test.zarr/targets: content digest" in err and "differs from recorded" in err
    assert_clean_failure(case, before, "attack")


def test_truncated_chunk_in_an_input_store(case, capsys):
    chunk = _first_chunk(case / "data" / "simulated" / "train.zarr", "inputs")
    chunk.write_bytes(chunk.read_bytes()[:20])
    before = snapshot(case / "data")
    code, err = run_both(case, "train", capsys)
    assert code == 1 and "train.zarr/inputs: cannot decode its stored data" in err
    assert_clean_failure(case, before, "restorers")


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
    code, err = run_both(case, stage, capsys)
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
    code, err = run_both(case, "simulate", capsys)
    assert code == 1 and "response.csv" in err and "3 channels" in err
    assert_clean_failure(case, before, "simulated")


# ------------------------------------------------------------------------------------------------ NaN/Inf
@pytest.mark.parametrize("split, stage, artifact", [("train", "train", "restorers"), ("test", "attack", "attack")])
@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_non_finite_values_in_a_stored_array(case, capsys, bad, split, stage, artifact):
    """NaN in one image of the last shard: refused before any shard is written (defect 3)."""
    arr = zarr.open_array(case / "data" / "simulated" / f"{split}.zarr" / "inputs", mode="r+")
    chunk = np.asarray(arr[-1])
    chunk[0, 3, 5] = bad
    arr[-1] = chunk
    before = snapshot(case / "data")
    code, err = run_both(case, stage, capsys)
    assert code == 1 and f"{split}.zarr/inputs: contains NaN or Inf" in err
    assert_clean_failure(case, before, artifact)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_in_an_input_file(case, capsys, bad):
    csv = _response_csv(case / "response.csv", channels=3, bad=bad)
    set_params(case, simulate={"optics": {"spectral_response_path": str(csv)}})
    before = snapshot(case / "data")
    code, err = run_both(case, "simulate", capsys)
    assert code == 1 and "response.csv: contains NaN or Inf" in err
    assert_clean_failure(case, before, "simulated")


def test_digest_check_is_on_the_content_not_the_files(case, capsys):
    """Control for the altered-array row: rewriting an array and its recorded digest consistently is accepted."""
    group = zarr.open_group(case / "data" / "simulated" / "test.zarr", mode="r+")
    targets = 1.0 - np.asarray(group["targets"][...])
    group["targets"][...] = targets
    group.attrs["array_sha256"] = {**group.attrs["array_sha256"], "targets": array_sha256(targets)}
    code, err = run_cli(case, "attack", capsys)
    assert code == 0, err
