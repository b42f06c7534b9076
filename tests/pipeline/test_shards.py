"""The shard cache: keys from the stored content, verification before reuse, self-healing, nothing left behind.

Each test runs the sharded ``attack`` stage on a private copy of one tiny data root and compares its
output with a fresh run on an untouched copy, bit for bit.
"""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from tests.shard_workspace import build_data, sharded_params
from udcshield.config import params_from_dict
from udcshield.pipeline import attack
from udcshield.pipeline.layout import Layout
from udcshield.store.hashing import array_sha256, file_sha256
from udcshield.store.zarr_io import StoreError, read_images

CPU = torch.device("cpu")
RAW = sharded_params(attack={"attacks": [{"name": "pgd", "budgets": [8], "kwargs": {"steps": 2, "random_start": True}}],
                             "shard_size": 2},
                     runner={"keep_shards": True})
SET = "resunet_tiny/base/pgd/8"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """(data root of a simulated workspace, the adversarial set of a fresh attack run on it)."""
    root = tmp_path_factory.mktemp("shards")
    _, layout = build_data(root, RAW)
    fresh = Layout(root / "fresh")
    shutil.copytree(layout.root, fresh.root)
    attack.run(params_from_dict(RAW), fresh, CPU)
    return layout.root, read_images(fresh.adversarial, SET)


@pytest.fixture
def layout(pristine, tmp_path):
    return Layout(Path(shutil.copytree(pristine[0], tmp_path / "data")))


def run_attack(layout: Layout) -> list[dict]:
    """Run the stage (keeping shards); its progress rows, one per shard."""
    rows: list[dict] = []
    attack.run(params_from_dict(RAW), layout, CPU, rows.append)
    return rows


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def shard_stores(layout: Layout) -> list[Path]:
    return sorted((layout.root / ".shards" / "attack").glob("*.zarr"))


def alter_targets(store: Path, rows: slice, record: bool) -> None:
    """Overwrite test targets ``rows`` in place; with ``record``, also rewrite the recorded digest (a
    consistent store with other content), else leave the record as it was (an altered store)."""
    group = zarr.open_group(store, mode="r+")
    targets = np.asarray(group["targets"][...])
    targets[rows] = 1.0 - targets[rows]
    group["targets"][...] = targets
    if record:
        group.attrs["array_sha256"] = {**group.attrs["array_sha256"], "targets": array_sha256(targets)}


# --------------------------------------------------------------------------------------- content keys
@pytest.mark.parametrize("record", [False, True], ids=["altered-in-place", "rewritten-consistently"])
def test_shards_follow_the_input_content(layout, pristine, record):
    """Defect 1: change the input's content, craft (keeping shards), restore it, craft again: the second
    run recomputes every shard (none made from the other content) and equals a fresh run bit for bit.

    Altered in place (recorded digest left as it was), the first craft is refused before any work; with
    its digest rewritten too (a consistent store of other content), it crafts other shards."""
    original = layout.root.parent / "test-original.zarr"
    shutil.copytree(layout.test_store, original)
    alter_targets(layout.test_store, slice(0, 2), record=record)
    if record:
        assert all(row["computed"] for row in run_attack(layout))
        assert not np.array_equal(read_images(layout.adversarial, SET), pristine[1])
    else:
        before = snapshot(layout.root)
        with pytest.raises(StoreError, match=r"test.zarr/targets: content digest .* differs from recorded"):
            run_attack(layout)
        assert snapshot(layout.root) == before  # shard cache included: nothing was computed
    shutil.rmtree(layout.test_store)
    shutil.copytree(original, layout.test_store)
    rows = run_attack(layout)
    assert len(rows) == 2 and all(row["computed"] for row in rows)
    np.testing.assert_array_equal(read_images(layout.adversarial, SET), pristine[1])
    assert not any(row["computed"] for row in run_attack(layout))  # same content again: all reused


# ------------------------------------------------------------------------------------ verify and heal
def _truncate_chunk(store: Path) -> None:
    chunk = next(p for p in sorted((store / "images" / "c").rglob("*")) if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 2])


def _swap_chunks(store: Path) -> None:
    first, second = sorted(p for p in (store / "images" / "c").rglob("*") if p.is_file())[:2]
    first.write_bytes(second.read_bytes())  # valid data, but not this image's


def _drop_zarr_json(store: Path) -> None:
    (store / "zarr.json").unlink()


def _mark_incomplete(store: Path) -> None:
    zarr.open_group(store, mode="r+").attrs["complete"] = False


@pytest.mark.parametrize("damage, reason", [(_truncate_chunk, "cannot decode its stored data"),
                                            (_swap_chunks, "content digest"),
                                            (_drop_zarr_json, "has no zarr.json"),
                                            (_mark_incomplete, "'complete' is False")],
                         ids=["truncated-chunk", "altered-chunk", "no-zarr-json", "complete-false"])
def test_a_damaged_shard_is_deleted_and_recomputed(layout, pristine, caplog, damage, reason):
    run_attack(layout)
    stores = shard_stores(layout)
    assert len(stores) == 2
    damage(stores[0])
    with caplog.at_level(logging.WARNING, logger="udcshield"):
        rows = run_attack(layout)
    healed = [row for row in rows if row["computed"]]
    assert len(healed) == 1 and reason in healed[0]["healed"]
    assert not any(row["computed"] for row in rows if row is not healed[0])
    warnings = [r.getMessage() for r in caplog.records if "failed verification" in r.getMessage()]
    assert len(warnings) == 1 and stores[0].as_posix() in warnings[0] and reason in warnings[0]
    np.testing.assert_array_equal(read_images(layout.adversarial, SET), pristine[1])
    assert not any(row["computed"] for row in run_attack(layout))  # healed for good


# ------------------------------------------------------------------------------------- nothing behind
def test_a_failing_input_leaves_the_data_root_as_it_was(layout):
    group = zarr.open_group(layout.test_store, mode="r+")
    last = np.asarray(group["inputs"][-1])
    last[0, 0, 0] = np.nan  # in the last shard: no shard may be computed before the failure
    group["inputs"][-1] = last
    before = snapshot(layout.root)
    with pytest.raises(StoreError, match="test.zarr/inputs: contains NaN or Inf"):
        run_attack(layout)
    assert snapshot(layout.root) == before
    assert not (layout.root / ".shards").exists()
