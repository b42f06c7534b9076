"""scripts/write_discnet_layout.py writes the DISCNet release layout that the discnet_synth reader reads."""

from __future__ import annotations

import numpy as np
import yaml

from scripts.write_discnet_layout import main
from tests.pipeline_fixtures import tiny_params
from udcshield.data.datasets import load_dataset, load_psf_bank
from udcshield.data.discnet_release import is_release_layout, release_codes


def test_layout_round_trips_through_the_reader(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params()))  # train astronaut + coffee, test chelsea; 15-px PSFs
    out = tmp_path / "release"
    assert main(["--out", str(out), "--params", str(params), "--size", "48"]) == 0
    assert is_release_layout(out)
    gt = np.load(out / "synthetic_data" / "GT" / "train" / "astronaut.npy")
    assert gt.shape == (48, 48, 3) and gt.dtype == np.float32 and gt.min() >= 0 and gt.max() > 1  # linear HDR
    bank = load_psf_bank(out)
    assert bank.shape == (9, 3, 15, 15)
    np.testing.assert_allclose(bank.sum(axis=(2, 3)), 1.0, atol=1e-5)
    assert release_codes(out).shape == (9, 5)
    pairs = load_dataset("discnet_synth", out, split="test", patch_size=16, patches_per_image=1, seed=0)
    assert pairs.inputs.shape == (9, 3, 16, 16) and list(pairs.psf_index) == list(range(9))
    assert main(["--out", str(out), "--params", str(params)]) == 1  # refuses a folder that is not empty
