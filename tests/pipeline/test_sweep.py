"""Sweep stage: measured network evaluations match the schedule, atomic outputs, comparison with the full
DDPM chain, the report table, and clear errors for bad settings."""

import csv
import html
import json

import pytest
import torch

from tests.pipeline_fixtures import deep_update, tiny_params
from tests.tiny import tiny_purifier
from udcshield.config import ConfigError, SweepSampler, params_from_dict
from udcshield.defenses.purifier import save_purifier
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.pipeline import attack, simulate, sweep
from udcshield.pipeline.layout import Layout

SWEEP = {"t_stars": [4, 8], "max_images": 2, "draws": 2,
         "samplers": [{"sampler": "ddpm", "num_steps": None}, {"sampler": "ddpm", "num_steps": 2},
                      {"sampler": "ddim", "num_steps": 1}, {"sampler": "ddim", "num_steps": 3, "eta": 0.5}]}
OVERRIDES = {"attack": {"models": ["base"], "attacks": [{"name": "pgd", "budgets": [2, 8], "kwargs": {"steps": 2}}]},
             "sweep": SWEEP}


def make_params(extra=None):
    return params_from_dict(deep_update(deep_update(tiny_params(), OVERRIDES), extra or {}))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    torch.set_num_threads(1)
    params = make_params()
    layout = Layout(tmp_path_factory.mktemp("sweep") / "data")
    simulate.run(params, layout)
    model = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    save_checkpoint(model, layout.restorer("resunet_tiny"))
    save_purifier(tiny_purifier(), layout.purifier)
    attack.run(params, layout, torch.device("cpu"))
    progress = []
    summary = sweep.run(params, layout, torch.device("cpu"), progress.append)
    return params, layout, summary, progress


def read_rows(layout):
    with (sweep.sweep_dir(layout) / "sweep.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_measured_evaluations_equal_the_schedule(workspace):
    params, layout, summary, _ = workspace
    rows = read_rows(layout)
    assert summary["rows"] == len(rows) == 2 * 4
    expected = {("4", "ddpm-all"): 4, ("8", "ddpm-all"): 8, ("4", "ddpm-2"): 2, ("8", "ddpm-2"): 2,
                ("4", "ddim-1"): 1, ("8", "ddim-1"): 1, ("4", "ddim-3-eta0.5"): 3, ("8", "ddim-3-eta0.5"): 3}
    assert {(r["t_star"], r["setting"]): float(r["nfe"]) for r in rows} == expected
    for r in rows:
        full = expected[(r["t_star"], "ddpm-all")]
        assert float(r["nfe_fraction"]) == pytest.approx(expected[(r["t_star"], r["setting"])] / full)
        assert float(r["seconds"]) > 0 and float(r["images_per_s"]) > 0
        assert 5 < float(r["psnr_clean"]) < 60 and 5 < float(r["psnr_adv"]) < 60
        if r["setting"] == "ddpm-all":
            assert float(r["delta_adv_db"]) == 0.0 and r["within_tolerance"] == "True"
    assert sweep.expected_nfe(8, SweepSampler("ddim", 3)) == 3
    assert sweep.expected_nfe(8, SweepSampler("ddpm", None)) == 8


def test_settings_share_noise_and_draws_are_averaged(workspace):
    params, layout, _, progress = workspace
    rows = read_rows(layout)
    # t* = 8, ddpm-all vs the same chain re-measured: identical seeds give identical PSNR
    purifier = sweep.load_purifier(layout.purifier)
    restorer = sweep.load_checkpoint(layout.restorer("resunet_tiny"))
    inputs, targets, ids = sweep.load_pairs(layout.test_store)
    adv = torch.from_numpy(sweep.read_images(layout.adversarial, "resunet_tiny/base/pgd/8"))[:2]
    row = sweep.measure_setting(purifier, restorer, {"clean": inputs[:2], "adv": adv}, targets[:2], ids[:2],
                                t_star=8, spec=SweepSampler("ddpm", None), draws=2, seed=params.seed, batch_size=32,
                                device=torch.device("cpu"))
    stored = next(r for r in rows if r["t_star"] == "8" and r["setting"] == "ddpm-all")
    assert row["psnr_adv"] == pytest.approx(float(stored["psnr_adv"]), abs=1e-9)
    one = sweep.measure_setting(purifier, restorer, {"clean": inputs[:2], "adv": adv}, targets[:2], ids[:2],
                                t_star=8, spec=SweepSampler("ddpm", None), draws=1, seed=params.seed,
                                batch_size=32, device=torch.device("cpu"))
    assert one["psnr_adv"] != row["psnr_adv"]  # the second draw changes the average
    # progress: every purified image counted once, ending at the total
    assert progress[-1]["done"] == progress[-1]["total"] == 1 * 2 * 4 * 2 * 2 * 2


def test_outputs_metrics_summary_curves_and_provenance(workspace):
    _, layout, summary, _ = workspace
    folder = sweep.sweep_dir(layout)
    metrics = json.loads((folder / "metrics.json").read_text())
    for t in ("t4", "t8"):
        cell = metrics["resunet_tiny"][t]
        assert cell["reference_nfe"] == float(t[1:])
        if cell["best_setting"] is not None:
            assert cell["best_setting"] != "ddpm-all" and cell["nfe_fraction"] < 1
    assert len(summary["statements"]) == 2
    text = (folder / "summary.md").read_text()
    assert all(s in text for s in summary["statements"]) and "full DDPM chain" in text
    curves = sorted(p.name for p in (folder / "curves").iterdir())
    assert curves == ["resunet_tiny_ddim.csv", "resunet_tiny_ddpm.csv"]
    with (folder / "curves" / "resunet_tiny_ddim.csv").open() as handle:
        nfes = [float(r["nfe"]) for r in csv.DictReader(handle)]
    assert nfes == sorted(nfes) and len(nfes) == 4
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["stage"] == "sweep" and prov["adversarial_sets"] == {"resunet_tiny": "resunet_tiny/base/pgd/8"}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_report_table(workspace):
    _, layout, summary, _ = workspace
    table = sweep.render_sweep_table(sweep.sweep_dir(layout) / "sweep.csv")
    lines = table.splitlines()
    assert lines[0].startswith("| restorer | t* | setting | NFE / image")
    assert sum(1 for line in lines if line.startswith("| resunet_tiny |")) == 8
    assert "| resunet_tiny | 8 | ddim-1 | 1 | 12 % |" in table
    assert all(s in table for s in summary["statements"])
    with pytest.raises(FileNotFoundError, match="sweep table not found"):
        sweep.render_sweep_table(layout.root / "nope.csv")


def test_report_html_section_holds_the_same_rows(workspace):
    from udcshield.pipeline import report_data, report_html

    _, layout, summary, _ = workspace
    section = report_html.sweep_section({"sweep": report_data.sweep(layout)})  # the report's section, from sweep outputs
    assert section is not None and section.ident == "sweep"
    assert section.body.count("<tr>") == 1 + 8  # header + one row per t* x setting
    assert 'id="sweep-table"' in section.body and "ddim-1" in section.body
    assert all(html.escape(s) in section.body for s in summary["statements"])


def test_summary_picks_the_cheapest_setting_within_tolerance():
    def row(setting, nfe, psnr_adv):
        return {"model": "m", "t_star": 50, "setting": setting, "sampler": setting.split("-")[0], "num_steps": 1,
                "eta": 0.0, "nfe": nfe, "seconds": 1.0, "images_per_s": 1.0, "psnr_clean": 20.0, "psnr_adv": psnr_adv}

    rows = sweep.compare_to_reference([row("ddpm-all", 50, 18.0), row("ddim-2", 2, 17.5), row("ddim-5", 5, 17.8),
                                       row("ddim-10", 10, 18.1)], tolerance_db=0.3)
    assert [r["within_tolerance"] for r in rows] == [True, False, True, True]
    out = sweep.summarize(rows, 0.3)
    cell = out["m"]["t50"]
    assert cell["best_setting"] == "ddim-5" and cell["nfe_fraction"] == pytest.approx(0.1) and cell["meets_target"]
    assert "ddim-5 is within 0.3 dB" in out["statements"][0] and "(10 %)" in out["statements"][0]
    strict = sweep.summarize(sweep.compare_to_reference(rows, 0.1), 0.1)
    assert strict["m"]["t50"]["best_setting"] == "ddim-10" and not strict["m"]["t50"]["meets_target"]


def test_csv_is_written_atomically(workspace, monkeypatch):
    params, layout, _, _ = workspace
    path = sweep.sweep_dir(layout) / "sweep.csv"
    before = path.read_bytes()
    rows = [{**r} for r in read_rows(layout)]

    def boom(self, rows):
        raise OSError("disk full")

    monkeypatch.setattr(csv.DictWriter, "writerows", boom)
    with pytest.raises(OSError, match="disk full"):
        sweep.write_outputs(params, layout, rows, torch.device("cpu"))
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_disabled_sweep_writes_empty_outputs(tmp_path):
    params = make_params({"sweep": {"enabled": False}})
    layout = Layout(tmp_path / "data")
    assert sweep.run(params, layout, torch.device("cpu"))["rows"] == 0
    folder = sweep.sweep_dir(layout)
    assert (folder / "sweep.csv").read_text().startswith("model,t_star,setting")
    assert json.loads((folder / "metrics.json").read_text()) == {"enabled": False}
    assert "disabled" in sweep.render_sweep_table(folder / "sweep.csv")


def test_bad_settings_fail_clearly(workspace, tmp_path):
    with pytest.raises(ConfigError, match=r"sweep.samplers\[1\].num_steps \(9\) exceeds the smallest t\* \(4\)"):
        make_params({"sweep": {"samplers": [{"sampler": "ddpm", "num_steps": None},
                                            {"sampler": "ddim", "num_steps": 9}]}})
    with pytest.raises(ConfigError, match="must include the full DDPM chain"):
        make_params({"sweep": {"samplers": [{"sampler": "ddim", "num_steps": 2}]}})
    with pytest.raises(ConfigError, match="twice"):
        make_params({"sweep": {"samplers": [{"sampler": "ddpm"}, {"sampler": "ddpm", "num_steps": None}]}})
    with pytest.raises(ConfigError, match="sweep.samplers\\[0\\].sampler must be one of"):
        make_params({"sweep": {"samplers": [{"sampler": "euler"}]}})
    _, layout, _, _ = workspace
    with pytest.raises(ConfigError, match="sweep.attack 'fgsm' is not crafted"):
        sweep.run(make_params({"sweep": {"attack": "fgsm"}}), layout, torch.device("cpu"))
    with pytest.raises(ConfigError, match="exceeds the purifier's 100 diffusion steps"):
        sweep.run(make_params({"sweep": {"t_stars": [4, 200]}}), layout, torch.device("cpu"))
