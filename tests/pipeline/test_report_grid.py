"""The image-grid store written for the report by the evaluate stage (``write_grid``): inputs copied from the
stage stores, restorations by each restorer variant, provenance; clear errors."""

import shutil

import numpy as np
import pytest
import torch

from tests.pipeline.report_layout import build_layout, report_params
from udcshield.pipeline.checkpoints import load_restorer
from udcshield.pipeline.common import apply_batched
from udcshield.pipeline.grid import grid_array, grid_conditions, grid_info, read_grid, write_grid
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import restorers
from udcshield.store.zarr_io import read_images, verify_array

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    params, layout, _ = build_layout(tmp_path_factory.mktemp("grid"))  # runs write_grid
    return params, layout


def test_grid_store_holds_inputs_and_restorations(built):
    params, layout = built
    info = grid_info(layout)
    assert info["stage"] == "evaluate" and info["complete"] is True
    assert info["image_ids"] == ["img/000", "img/001"] and (info["attack"], info["budget"]) == ("pgd", 8)
    assert grid_conditions(params) == ("clean", "pgd_8")
    assert set(info["input_arrays_sha256"]) == {"test.zarr/inputs", "purified.zarr/clean",
                                                 "adversarial.zarr/resunet_tiny/base/pgd/8",
                                                 "purified.zarr/resunet_tiny/base/pgd/8",
                                                 "adversarial.zarr/resunet_tiny/finetuned/pgd/8",
                                                 "purified.zarr/resunet_tiny/finetuned/pgd/8"}
    k = 2
    sources = {("none", "clean"): (layout.test_store, "inputs"), ("purified", "clean"): (layout.purified, "clean")}
    for source in restorers(params):
        model = load_restorer(layout, source).eval()
        name = f"{source}/pgd/8"
        cells = {**sources, ("none", "pgd_8"): (layout.adversarial, name), ("purified", "pgd_8"): (layout.purified, name)}
        for (defense, cond), (store, array) in cells.items():
            x = read_grid(layout, source, defense, cond, "input")
            np.testing.assert_array_equal(x, read_images(store, array)[:k])
            restored = read_grid(layout, source, defense, cond, "restored")
            expected = apply_batched(model, torch.from_numpy(x), params.evaluate.batch_size, CPU).numpy()
            np.testing.assert_array_equal(restored, expected)
            verify_array(layout.grid_store, grid_array(source, defense, cond, "restored"))


def test_the_grid_is_limited_to_the_test_set_and_follows_grid_attack(built, tmp_path):
    _, layout = built
    copy = Layout(tmp_path / "data")
    shutil.copytree(layout.root, copy.root)
    params = report_params(report={"grid_images": 10, "grid_attack": "fgsm"})
    models = {s: load_restorer(copy, s) for s in restorers(params)}
    out = write_grid(params, copy, models, CPU)
    assert out["images"] == 4 and (out["attack"], out["budget"]) == ("fgsm", 8)
    assert "resunet_tiny/finetuned/purified/fgsm_8/restored" in out["arrays"] and len(out["arrays"]) == 16
    assert read_grid(copy, "resunet_tiny/base", "none", "fgsm_8", "input").shape[0] == 4


def test_every_restorer_is_needed_and_names_are_checked(built):
    params, layout = built
    with pytest.raises(KeyError, match="resunet_tiny/finetuned"):
        write_grid(params, layout, {"resunet_tiny/base": load_restorer(layout, "resunet_tiny/base")}, CPU)
    assert grid_array("m/base", "purified", "pgd_8", "input") == "m/base/purified/pgd_8/input"
    with pytest.raises(ValueError, match="defense"):
        grid_array("m/base", "jpeg", "clean", "input")
    with pytest.raises(ValueError, match="restorer variant"):
        grid_array("m", "none", "clean", "input")
