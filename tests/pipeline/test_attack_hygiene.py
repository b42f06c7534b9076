"""Attack stage options of the threat model: 8-bit quantised sets and the objective on the clamped output."""

import numpy as np
import zarr
import torch

from tests.shard_workspace import build_data, sharded_params
from udcshield.pipeline import attack
from udcshield.store.zarr_io import read_images, store_attrs

CPU = torch.device("cpu")
SET = "resunet_tiny/base/pgd/8"


def test_quantized_sets_hold_8bit_levels_and_options_key_the_shards(tmp_path):
    raw = sharded_params(attack={"quantize": True, "convergence": {"enabled": False}})
    params, layout = build_data(tmp_path, raw)
    attack.run(params, layout, CPU)
    adv = read_images(layout.adversarial, SET)
    x = read_images(layout.test_store, "inputs")
    assert np.array_equal(adv, np.rint(adv * 255).astype(np.float32) / np.float32(255))
    assert float(np.abs(adv.astype(np.float64) - x).max()) <= 8 / 256
    attrs = store_attrs(layout.adversarial, SET)
    assert attrs["quantized"] is True and attrs["output"] == "clamped" and attrs["encoding"] == "uint8/255"
    assert zarr.open_group(str(layout.adversarial), mode="r")[SET].dtype == np.uint8
    keys = {s.key for s in attack.plan(params, layout, CPU)[SET]}
    for override in ({"quantize": False}, {"output": "raw"}):
        other = attack.plan(_with(raw, override), layout, CPU)[SET]
        assert keys.isdisjoint(s.key for s in other), override


def _with(raw, override):
    from tests.pipeline_fixtures import deep_update
    from udcshield.config import params_from_dict
    return params_from_dict(deep_update(raw, {"attack": override}))
