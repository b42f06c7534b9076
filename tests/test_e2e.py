"""End-to-end: the real ``dvc repro`` over the real Prefect flows, on tiny params, in a temporary copy."""

import json

import pytest
import yaml

from tests.pipeline_fixtures import copy_workspace, run, tiny_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(repro_workspace, tmp_path_factory):
    """A copy of the session's repro (the last test here changes params and reruns)."""
    return copy_workspace(repro_workspace, tmp_path_factory.mktemp("ws")), None


def test_repro_produces_report_and_attacks_hurt(workspace):
    ws, _ = workspace
    report = (ws / "data/report/report.md").read_text()
    assert "| resunet_tiny:base | none |" in report
    assert "## Defense against adaptive attacks" in report and "adaptive bpda_eot" in report
    assert "## Purifier sweep" in report and "| restorer | t* | setting |" in report
    html = (ws / "data/report/report.html").read_text()
    assert 'id="sweep"' in html and "data:image/png;base64," in html
    adaptive = json.loads((ws / "data/adaptive/metrics.json").read_text())
    cell = adaptive["resunet_tiny:base"]["purified"]["bpda_eot_8"]
    assert cell["psnr_worst_draw"] <= cell["psnr_mean_draws"]
    checks = report.split("## Sanity checks")[1].split("## Attack cost")[0]
    budget_rows = [line for line in checks.splitlines() if "within budget" in line]
    assert len(budget_rows) == 2 * 3 and all("| pass |" in line for line in budget_rows)
    metrics = json.loads((ws / "data/evaluate/metrics.json").read_text())
    base = metrics["resunet_tiny:base"]
    assert base["none"]["pgd_8"]["psnr"] < base["none"]["clean"]["psnr"] - 1.0
    for variant in ("resunet_tiny:base", "resunet_tiny:finetuned"):
        assert set(metrics[variant]) == {"none", "purified"}
        assert set(metrics[variant]["purified"]) == {"clean", "pgd_2", "pgd_8", "fgsm_8", "worst_case_2", "worst_case_8"}
        assert base["none"]["worst_case_8"]["psnr"] <= base["none"]["pgd_8"]["psnr"]
        assert isinstance(base["none"]["pgd_8"]["converged"], bool)
    for path in ("data/simulated/train.zarr", "data/attack/adversarial.zarr", "data/purify/purified.zarr",
                 "data/restorers/resunet_tiny/model.safetensors",
                 "data/evaluate/curves/pgd/resunet_tiny_base_none.csv", "data/report/psf.png", "dvc.lock"):
        assert (ws / path).exists(), path


def test_metrics_and_plots_commands(workspace):
    ws, _ = workspace
    shown = run(["dvc", "metrics", "show", "--json"], ws).stdout
    assert "pgd_8" in shown
    shown = run(["dvc", "plots", "show", "-o", "plots_html"], ws)
    assert "failed to load" not in (shown.stdout + shown.stderr).lower(), shown.stderr
    page = (ws / "plots_html" / "index.html").read_text()
    for series in ("resunet_tiny_base_none", "resunet_tiny_finetuned_purified", "Worst attacked PSNR"):
        assert series in page, series


def test_changing_an_attack_param_reruns_only_downstream(workspace):
    ws, _ = workspace
    params = tiny_params()
    params["attack"]["attacks"][0]["kwargs"]["steps"] = 4
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], ws).stdout
    for stage in ("attack", "purify", "adaptive", "evaluate", "report"):
        assert f"Running stage '{stage}'" in out, out
    for stage in ("simulate", "train", "train_purifier", "finetune"):
        assert f"Running stage '{stage}'" not in out, out
    status = run(["dvc", "status"], ws).stdout
    assert "up to date" in status.lower(), status
