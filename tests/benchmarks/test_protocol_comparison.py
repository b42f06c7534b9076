"""The old-protocol benchmark runs end to end on a tiny hand-made run and writes a complete JSON record."""

from __future__ import annotations

import json

import pytest
import yaml

from benchmarks.protocol_comparison import main, resolve_run, tree_md5
from tests.pipeline.report_layout import OVERRIDES, write_models, write_simulated
from tests.pipeline_fixtures import deep_update, tiny_params
from udcshield.pipeline.layout import Layout

ARGS = ["--device", "cpu", "--budgets", "2", "8", "--pgd-steps", "2", "--adaptive-images", "2",
        "--adaptive-draws", "2", "--full-steps", "1", "--bpda-steps", "1", "--bpda-eot", "2"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run root: params.yaml (tiny, t* = 4), test store of 4 smooth 16 x 16 images, two restorers, a purifier."""
    root = tmp_path_factory.mktemp("run")
    (root / "params.yaml").write_text(yaml.safe_dump(deep_update(tiny_params(), OVERRIDES), sort_keys=False))
    layout = Layout(root / "data")
    write_simulated(layout)
    write_models(layout)
    return root


def test_resolves_root_or_data_folder(tiny_run, tmp_path):
    assert resolve_run(tiny_run) == resolve_run(tiny_run / "data")
    assert resolve_run(tiny_run).data == tiny_run / "data"
    with pytest.raises(SystemExit, match="data folder"):
        resolve_run(tmp_path)


def test_quick_run_writes_every_cell(tiny_run, tmp_path):
    out = tmp_path / "pc.json"
    result = main([*ARGS, "--data", str(tiny_run / "data"), "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["environment"]["device"] == "cpu" and saved["environment"]["torch_threads"] == 1
    cells = saved["nonadaptive"]["cells"]
    for variant in ("base", "finetuned"):
        for defense in ("none", "purified"):
            for cond in ("clean", "pgd_2", "pgd_8"):
                c = cells[f"resunet_tiny:{variant}|{defense}|{cond}|psnr"]
                assert c["n_images"] == 4 and c["ci_low"] <= c["mean"] <= c["ci_high"]
        assert saved["nonadaptive"]["cost"][f"resunet_tiny/{variant}/pgd/8"]["linf_max"] <= 8 / 256
        # the undefended attack lowers PSNR on the bare restorer it was crafted on
        undefended = {cond: cells[f"resunet_tiny:{variant}|none|{cond}|psnr"]["mean"] for cond in ("clean", "pgd_8")}
        assert undefended["pgd_8"] < undefended["clean"]
    acells = saved["adaptive"]["cells"]
    for attack in ("clean", "pgd_full_8", "pgd_bpda_8"):
        c = acells[f"resunet_tiny:base|purified|{attack}|psnr_worst_of_2"]
        assert c["n_images"] == 2
        assert c["mean"] <= acells[f"resunet_tiny:base|purified|{attack}|psnr_mean_of_2"]["mean"] + 1e-9
    assert saved["adaptive"]["cost"]["resunet_tiny/finetuned/pgd_bpda/8"]["forward_backward"] == 2
    prov = saved["provenance"]
    assert prov["lock"] is None and prov["outs"]["data/purifier"]["matches_lock"] is None
    assert prov["used"]["data/purifier"]["md5"] == tree_md5(tiny_run / "data" / "purifier")["md5"]
    assert saved["new_protocol"] == {"evaluate": None, "adaptive": None}
    assert result["wall_seconds"] > 0


def test_same_seeds_same_numbers(tiny_run, tmp_path):
    args = [*ARGS, "--skip-adaptive", "--budgets", "8", "--data", str(tiny_run)]
    runs = [main([*args, "--out", str(tmp_path / f"{k}.json")]) for k in range(2)]
    assert runs[0]["nonadaptive"]["cells"] == runs[1]["nonadaptive"]["cells"] and runs[0]["adaptive"] is None
