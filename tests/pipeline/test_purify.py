"""Sharded purify stage: result independent of shard size, resumable, keyed on its inputs, OOM retry."""

import numpy as np
import pytest
import torch

from tests.pipeline_fixtures import deep_update
from tests.shard_workspace import build_data, sharded_params
from udcshield.config import params_from_dict
from udcshield.pipeline import attack, purify
from udcshield.store.zarr_io import read_images, store_attrs

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    raw = sharded_params(attack={"attacks": [{"name": "fgsm", "budgets": [8]}]}, sweep={"attack": "fgsm"},
                         purify={"draws": 2})
    params, layout = build_data(tmp_path_factory.mktemp("purify"), raw)
    attack.run(params, layout, CPU)
    purify.run(params, layout, CPU)
    return raw, layout, _read(layout)


def _read(layout):
    return {n: read_images(layout.purified, n) for n in store_attrs(layout.purified)["sets"]}


def test_every_set_purified_and_cache_cleared(data):
    _, layout, ref = data
    assert set(ref) == {"clean", "resunet_tiny/base/fgsm/8", "draw1/clean", "draw1/resunet_tiny/base/fgsm/8"}
    assert all(a.shape == (4, 3, 32, 32) and 0 <= a.min() and a.max() <= 1 for a in ref.values())
    assert not (layout.root / ".shards").exists()


def test_draws_are_independent_and_draw_zero_is_the_single_draw(data, tmp_path):
    """purify.draws 2: a second, independently seeded purification of every set; draw 0 is
    bit-identical to a run with one draw."""
    raw, layout, ref = data
    assert not np.array_equal(ref["clean"], ref["draw1/clean"])
    single = params_from_dict(deep_update(raw, {"purify": {"draws": 1}}))
    purify.run(single, layout, CPU)
    one = _read(layout)
    assert set(one) == {"clean", "resunet_tiny/base/fgsm/8"}
    for name, images in one.items():
        assert np.array_equal(images, ref[name])
    purify.run(params_from_dict(raw), layout, CPU)  # restore the module's store for the other tests


def test_result_does_not_depend_on_shard_size(data):
    raw, layout, ref = data
    for shard_size in (1, 4):
        purify.run(params_from_dict(deep_update(raw, {"purify": {"shard_size": shard_size}})), layout, CPU)
        for name, expected in ref.items():
            np.testing.assert_allclose(read_images(layout.purified, name), expected, rtol=0, atol=1e-6)


def test_resume_reuses_finished_shards_bit_for_bit(data, monkeypatch):
    raw, layout, ref = data
    params = params_from_dict(raw)
    original, done = purify.purify_shard, []

    def dies_after_two(params_, layout_, shard, device, purifier=None, accel_cache=None):
        if len(done) == 2:
            raise KeyboardInterrupt("killed")
        done.append(shard)
        return original(params_, layout_, shard, device, purifier, accel_cache)

    monkeypatch.setattr(purify, "purify_shard", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        purify.run(params, layout, CPU)
    monkeypatch.setattr(purify, "purify_shard", original)
    rows = []
    purify.run(params, layout, CPU, progress=rows.append)
    assert [r["computed"] for r in rows] == [False, False] + [True] * 6  # 2 sets x 2 shards x 2 draws
    assert rows[-1]["done"] == rows[-1]["total"] == 16
    for name, expected in ref.items():
        np.testing.assert_array_equal(read_images(layout.purified, name), expected)


def test_keys_follow_params_and_inputs(data):
    raw, layout, _ = data
    params = params_from_dict(raw)
    keys = {s.key for parts in purify.plan(params, layout, CPU).values() for s in parts}
    deeper = params_from_dict(deep_update(raw, {"purify": {"t_star": 4}}))
    assert not keys & {s.key for parts in purify.plan(deeper, layout, CPU).values() for s in parts}
    reseeded = params_from_dict({**raw, "seed": 1})
    assert not keys & {s.key for parts in purify.plan(reseeded, layout, CPU).values() for s in parts}
    plan = purify.plan(params, layout, CPU)
    assert plan["clean"][0].key != plan["resunet_tiny/base/fgsm/8"][0].key


def test_purify_one_retries_out_of_memory(data):
    raw, layout, ref = data
    params = params_from_dict(raw)
    from udcshield.defenses.purifier import load_purifier

    purifier = load_purifier(layout.purifier)
    real, sizes = purifier.predict_noise, []

    def small_batches_only(z, t):
        sizes.append(z.shape[0])
        if z.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(z, t)

    purifier.predict_noise = small_batches_only
    images = torch.from_numpy(read_images(layout.test_store, "inputs"))
    ids = list(store_attrs(layout.test_store)["image_ids"])
    out = purify.purify_one(params, purifier, "clean", images, ids, CPU)
    np.testing.assert_allclose(out.numpy(), ref["clean"], rtol=0, atol=1e-6)
    assert sizes[0] == 2 and max(sizes[1:]) == 1
