"""Sharded attack stage: shard plan and keys, resumable cache, OOM retry, device pinning."""

import uuid

import numpy as np
import pytest
import torch

from tests.shard_workspace import build_data, sharded_params
from tests.tiny import TinyRestorer, mid_images
from udcshield.config import params_from_dict
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.pipeline import attack
from udcshield.pipeline.common import BatchOutOfMemoryError, apply_batched, is_out_of_memory, pin_device, run_batched
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.shards import ShardCache, make_shards, shard_key, shard_ranges
from udcshield.store.zarr_io import read_images, store_attrs

CPU = torch.device("cpu")


# ------------------------------------------------------------------------------ plan and keys
def test_shard_ranges_cover_every_image_once():
    assert shard_ranges(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert shard_ranges(4, 8) == [(0, 4)] and shard_ranges(0, 2) == []
    with pytest.raises(ValueError, match="shard_size"):
        shard_ranges(4, 0)


def test_keys_differ_per_shard_and_per_dependency():
    base = {"seed": 0, "restorer": "a" * 64, "inputs": "b" * 64, "spec": {"name": "pgd"}}
    keys = [s.key for s in make_shards("m/base/pgd/8", 5, 2, base)]
    assert len(set(keys)) == 3
    for field, value in [("seed", 1), ("restorer", "c" * 64), ("inputs", "d" * 64), ("spec", {"name": "bim"})]:
        assert make_shards("m/base/pgd/8", 5, 2, {**base, field: value})[0].key != keys[0], field
    assert make_shards("m/base/pgd/4", 5, 2, base)[0].key != keys[0]
    assert shard_key(base) == shard_key(dict(reversed(base.items())))  # canonical JSON


# ------------------------------------------------------------------------------ OOM retry
def _oom_above(limit, exc_factory, calls):
    def fn(s: slice):
        calls.append(s.stop - s.start)
        if s.stop - s.start > limit:
            raise exc_factory()
        return list(range(s.start, s.stop))
    return fn


@pytest.mark.parametrize("exc_factory", [lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"),
                                         lambda: RuntimeError("DefaultCPUAllocator: not enough memory: you tried")],
                         ids=["cuda", "cpu"])
def test_out_of_memory_halves_the_batch_and_keeps_order(exc_factory):
    calls, retries = [], []
    out = run_batched(_oom_above(3, exc_factory, calls), 10, 8, "attack/x",
                      on_retry=lambda old, new: retries.append((old, new)))
    assert [i for part in out for i in part] == list(range(10))
    assert calls[:3] == [8, 4, 2] and set(calls[3:]) <= {2} and retries == [(8, 4), (4, 2)]


def test_out_of_memory_at_batch_one_names_stage_and_size():
    with pytest.raises(BatchOutOfMemoryError, match=r"purify/clean: out of memory at batch size 1 \(started at 4\)"):
        run_batched(_oom_above(0, lambda: torch.OutOfMemoryError("out of memory"), []), 3, 4, "purify/clean")


def test_other_errors_are_not_retried():
    calls = []
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_batched(_oom_above(0, lambda: RuntimeError("shape mismatch"), calls), 4, 4, "s")
    assert calls == [4]
    assert not is_out_of_memory(ValueError("out of memory"))
    with pytest.raises(ValueError, match="batch_size"):
        run_batched(lambda s: s, 4, 0, "s")


def test_apply_batched_retries_on_oom():
    x = mid_images(5, 0)
    seen = []

    def fn(b):
        seen.append(b.shape[0])
        if b.shape[0] > 2:
            raise torch.OutOfMemoryError("out of memory")
        return b * 2
    torch.testing.assert_close(apply_batched(fn, x, 4, CPU, stage="evaluate"), x * 2, rtol=0, atol=0)
    assert seen[:2] == [4, 2]


class _OomAbove(torch.nn.Module):
    """TinyRestorer that raises an out-of-memory error for batches larger than ``limit``."""

    def __init__(self, limit):
        super().__init__()
        self.inner, self.limit = TinyRestorer(), limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (batch {x.shape[0]})")
        return self.inner(x)


def test_attack_survives_oom_with_the_same_per_image_result():
    params = params_from_dict(sharded_params(attack={"batch_size": 4}))
    spec, x, y = params.attack.attacks[0], mid_images(4, 1, h=16), mid_images(4, 2, h=16)
    ids = [f"img{i}" for i in range(4)]
    ref, _ = attack.craft_images(_OomAbove(99), spec, 8, x, y, ids, params, "m/base", CPU)
    adv, cost = attack.craft_images(_OomAbove(1), spec, 8, x, y, ids, params, "m/base", CPU)
    torch.testing.assert_close(adv, ref, rtol=0, atol=1e-6)
    assert cost["iterations"] == 4 * spec.kwargs["steps"]  # four successful batches of one


# ------------------------------------------------------------------------------ device pinning
def test_pin_device_round_robin_over_visible_gpus():
    cuda = torch.device("cuda")
    assert [pin_device(cuda, w, 4).index for w in range(6)] == [0, 1, 2, 3, 0, 1]
    assert pin_device(cuda, None, 2) == torch.device("cuda", 0)
    assert pin_device(cuda, 5, 1) == torch.device("cuda", 0)  # dask-cuda: one visible GPU per worker
    assert pin_device(torch.device("cuda", 3), 1, 4) == torch.device("cuda", 3)
    assert pin_device(CPU, 7, 0) == CPU
    with pytest.raises(RuntimeError, match="no CUDA device"):
        pin_device(cuda, 0, 0)
    with pytest.raises(ValueError, match="worker_index"):
        pin_device(cuda, -1, 2)


# ------------------------------------------------------------------------------ the stage
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("shards")
    raw = sharded_params()
    params, layout = build_data(root, raw)
    attack.run(params, layout, CPU)
    return raw, layout, {n: read_images(layout.adversarial, n) for n in store_attrs(layout.adversarial)["sets"]}


def _rerun(raw, layout, **override):
    from tests.pipeline_fixtures import deep_update

    params = params_from_dict(deep_update(raw, override))
    summary = attack.run(params, layout, CPU)
    return params, summary, {n: read_images(layout.adversarial, n) for n in store_attrs(layout.adversarial)["sets"]}


def test_result_does_not_depend_on_shard_size(data):
    raw, layout, ref = data
    _, summary, out = _rerun(raw, layout, attack={"shard_size": 1, "batch_size": 1})
    _, _, whole = _rerun(raw, layout, attack={"shard_size": 4, "batch_size": 1})
    for name in ref:
        np.testing.assert_array_equal(out[name], whole[name])
        np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=1e-6)
    assert summary["resunet_tiny/base/pgd/8"]["shards"] == 4
    assert not (layout.root / ".shards").exists(), "shards are cleared once the store is written"


def test_interrupted_run_resumes_with_only_the_missing_shards(data, monkeypatch):
    raw, layout, ref = data
    params = params_from_dict(raw)
    crafted = []
    original = attack.craft_shard

    def dies_after_three(params_, layout_, shard, device, model=None, accel_cache=None):
        if len(crafted) == 3:
            raise KeyboardInterrupt("killed")
        crafted.append(shard.key)
        return original(params_, layout_, shard, device, model, accel_cache)

    monkeypatch.setattr(attack, "craft_shard", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        attack.run(params, layout, CPU)
    monkeypatch.setattr(attack, "craft_shard", original)
    plan = attack.plan(params, layout, CPU)
    rows = [attack.run_shard(params, layout, s, CPU) for parts in plan.values() for s in parts]
    assert sum(not r["computed"] for r in rows) == 3 and sum(r["computed"] for r in rows) == len(rows) - 3
    attack.assemble(params, layout, plan, CPU)
    for name in ref:
        np.testing.assert_array_equal(read_images(layout.adversarial, name), ref[name])


def test_stale_shards_are_never_reused(data, tmp_path):
    raw, layout, _ = data
    params = params_from_dict(raw)
    before = attack.plan(params, layout, CPU)
    changed = params_from_dict({**raw, "attack": {**raw["attack"], "objective": "l1"}})
    assert not {s.key for p in attack.plan(changed, layout, CPU).values() for s in p} & \
        {s.key for p in before.values() for s in p}
    other = Layout(tmp_path / "data")  # same data, another restorer checkpoint
    for name in ("simulated",):
        import shutil
        shutil.copytree(layout.root / name, other.root / name)
    model = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(5))
    save_checkpoint(model, other.restorer("resunet_tiny"))
    moved = attack.plan(params, other, CPU)
    assert all(a.key != b.key for n in before for a, b in zip(before[n], moved[n]))


def test_a_cached_shard_is_reused_and_an_incomplete_one_recomputed(data):
    raw, layout, _ = data
    params = params_from_dict(raw)
    shard = attack.plan(params, layout, CPU)["resunet_tiny/base/pgd/8"][0]
    cache = attack.shard_cache(params, layout)
    assert attack.run_shard(params, layout, shard, CPU)["computed"] is True
    assert attack.run_shard(params, layout, shard, CPU)["computed"] is False
    (cache.location(shard.key) / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    assert cache.reusable(shard) == (False, "is incomplete (no 'complete' attribute)")
    assert not cache.exists(shard)  # the failed entry was deleted
    assert attack.run_shard(params, layout, shard, CPU)["computed"] is True
    cache.remove([shard])
    assert not (layout.root / ".shards").exists()


def test_shard_cache_on_an_fsspec_url(data):
    raw, layout, ref = data
    url = f"memory://udcshield-shards-{uuid.uuid4().hex}"
    params, _, out = _rerun(raw, layout, runner={"shard_cache": url, "keep_shards": True})
    for name in ref:
        np.testing.assert_array_equal(out[name], ref[name])
    plan = attack.plan(params, layout, CPU)
    cache = ShardCache(url, "attack")
    assert all(cache.reusable(s)[0] for parts in plan.values() for s in parts)
    assert str(cache.location(plan["resunet_tiny/base/fgsm/8"][0].key)).startswith(url + "/attack/")
    cache.remove(s for parts in plan.values() for s in parts)
    assert not any(cache.exists(s) for parts in plan.values() for s in parts)
