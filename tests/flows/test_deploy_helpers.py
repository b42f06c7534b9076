"""The scheduled repro flow's helpers and the deployment settings, without a Prefect server."""

import json
import sys
from pathlib import Path

import pytest
import torch
from prefect.settings import PREFECT_SERVER_API_AUTH_STRING, temporary_settings

from flows import deploy
from flows.repro import (ARTIFACT_KEY, ReproError, check_repo, check_targets, repro_command, report_sections,
                         robustness_markdown)
from tasks.common import GPU_TAGS, ensure_gpu_concurrency_limit, visible_gpu_count
from udcshield.evaluation.records import write_records_csv

ROOT = Path(__file__).resolve().parents[2]

def report_data() -> dict:
    """The parts of ``report.json`` the artifact reads (the report's worst cases and adaptive grid)."""
    worst = [{"defense": "none", "label": "undefended", "psnr": 12.5, "condition": "pgd_8"},
             {"defense": "purified", "label": "purified", "psnr": 18.25, "condition": "pgd_8"}]
    adaptive_cell = {"psnr_mean_draws": 18.0, "psnr_worst_draw": 17.5, "psnr_avg_output": 18.5}
    return {
        "captions": {"adaptive_attacks": "bpda_eot: bpda gradients, EOT 1, 1 steps"},
        "worst_cases": {"rows": [{"source": "resunet/base", "model": "resunet:base", "clean": [21.75, 21.5],
                                  "worst": worst, "adaptive": None}]},
        "adaptive": {"enabled": True, "max_images": 2, "draws": 2, "budgets": [8],
                     "attacks": [{"name": "bpda_eot", "gradient": "bpda", "eot_samples": 1, "steps": 1}],
                     "rows": [{"source": "resunet/base", "model": "resunet:base", "budget": 8, "defense": "purified",
                               "label": "purified", "clean": None, "pgd": adaptive_cell,
                               "adaptive": [adaptive_cell]}]},
        "sanity_checks": [{"check": "c", "status": "pass", "detail": "d"}],
    }


def write_report_data(root: Path, data: dict | None = None) -> None:
    (root / "data/report").mkdir(parents=True, exist_ok=True)
    (root / "data/report/report.json").write_text(json.dumps(data or report_data()))


def records() -> list[dict]:
    rows = []
    for image, (clean, attacked) in enumerate([(22.0, 16.0), (24.0, 18.0)]):
        for defense, drop in (("none", 0.0), ("purified", -3.0)):
            rows.append(dict(image_id=f"im{image}", model="resunet:base", defense=defense, attack="clean",
                             budget=0, metric="psnr", value=clean))
            rows.append(dict(image_id=f"im{image}", model="resunet:base", defense=defense, attack="pgd",
                             budget=8, metric="psnr", value=attacked - drop))
            rows.append(dict(image_id=f"im{image}", model="resunet:base", defense=defense,
                             attack="pgd@other/base", budget=8, metric="psnr", value=1.0))
            rows.append(dict(image_id=f"im{image}", model="resunet:base", defense=defense, attack="clean",
                             budget=0, metric="ssim", value=0.5))
    return rows


def dvc_project(tmp_path: Path) -> Path:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / ".dvc").mkdir()
    return tmp_path


def test_robustness_markdown_from_records_and_report(tmp_path):
    write_records_csv(records(), tmp_path / "data/evaluate/records.csv")
    write_report_data(tmp_path)
    md = robustness_markdown(tmp_path)
    lines = md.splitlines()
    assert "| model | defense | clean | pgd 8/256 |" in lines
    assert "| resunet:base | none | 23.00 | 17.00 |" in lines  # means over the two images
    assert "| resunet:base | purified | 23.00 | 20.00 |" in lines
    assert "@" not in md.split("## Defense at a glance")[0]  # transfer cells are left out of the table
    assert "## Defense at a glance" in md and "| resunet:base | 21.75 | 21.50 | 12.50 | 18.25 |" in lines
    assert "## Defense against adaptive attacks (PSNR dB)" in md
    assert "| resunet:base | purified | 8/256 | - | 18.00 / 17.50 / 18.50 | 18.00 / 17.50 / 18.50 |" in lines
    assert "## Sanity checks" not in md and "## resunet" not in md
    assert md.index("## Defense at a glance") < md.index("## Defense against adaptive attacks")
    assert "Full report: `data/report/report.md`" in md


def test_robustness_markdown_needs_results(tmp_path):
    with pytest.raises(ReproError, match="records.csv"):
        robustness_markdown(tmp_path)
    (tmp_path / "data/report").mkdir(parents=True)
    (tmp_path / "data/report/report.md").write_text("# a report without its data\n")
    with pytest.raises(ReproError, match="report.json"):  # the markdown alone is not read
        robustness_markdown(tmp_path)
    write_report_data(tmp_path)
    assert "## Defense at a glance" in robustness_markdown(tmp_path)  # the report data alone is enough


def test_robustness_markdown_names_a_malformed_records_file(tmp_path):
    path = tmp_path / "data/evaluate/records.csv"
    path.parent.mkdir(parents=True)
    path.write_text("image_id,model,defense,attack,budget,metric,value\nim0,m,none,clean,zero,psnr,1.0\n")
    with pytest.raises(ValueError, match="records.csv.*budget"):
        robustness_markdown(tmp_path)


def test_robustness_markdown_names_a_malformed_report_data_file(tmp_path):
    (tmp_path / "data/report").mkdir(parents=True)
    (tmp_path / "data/report/report.json").write_text("{not json")
    with pytest.raises(ValueError, match="report.json: not valid JSON"):
        robustness_markdown(tmp_path)
    (tmp_path / "data/report/report.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="report.json: expected a JSON object"):
        robustness_markdown(tmp_path)
    write_report_data(tmp_path, {"captions": {}})
    with pytest.raises(ValueError, match="no 'worst_cases' entry"):
        robustness_markdown(tmp_path)


def test_report_sections_in_the_order_asked():
    sections = report_sections(report_data(), ("adaptive", "glance"))
    assert [s.splitlines()[0] for s in sections] == ["## Defense against adaptive attacks (PSNR dB)",
                                                     "## Defense at a glance"]
    assert sections[1].splitlines()[-1] == "| resunet:base | 21.75 | 21.50 | 12.50 | 18.25 |"
    not_run = {**report_data(), "adaptive": {**report_data()["adaptive"], "enabled": False}}
    assert report_sections(not_run, ("adaptive",)) == ["## Adaptive attacks\n\nNot run (adaptive.enabled is false)."]


def test_check_repo_names_what_is_missing(tmp_path):
    with pytest.raises(ReproError, match="not a directory"):
        check_repo(tmp_path / "nope")
    with pytest.raises(ReproError, match="dvc.yaml is missing"):
        check_repo(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(ReproError, match=r"\.dvc is missing"):
        check_repo(tmp_path)
    (tmp_path / ".dvc").mkdir()
    assert check_repo(tmp_path) == tmp_path.resolve()


@pytest.mark.parametrize("bad", ["--force", "-f", "report; rm -rf /", "a b", "", "$(id)", 3])
def test_check_targets_rejects_options_and_shell(bad):
    with pytest.raises(ReproError, match="targets"):
        check_targets([bad])


def test_check_targets_accepts_stage_names():
    assert check_targets(None) == []
    assert check_targets(["report", "sub/dvc.yaml:train_purifier"]) == ["report", "sub/dvc.yaml:train_purifier"]


def test_repro_command_uses_this_interpreter():
    assert repro_command(["report"]) == [sys.executable, "-m", "dvc", "repro", "report"]


def test_deployment_has_cron_schedule_module_entrypoint_and_one_run_at_a_time(tmp_path):
    dep = deploy.deployment(name="nightly", cron="15 2 * * *", timezone="Europe/Paris",
                            repo_dir=dvc_project(tmp_path), targets=["report"])
    assert dep.name == "nightly" and dep.entrypoint == "flows.repro.repro_flow"
    assert [s.schedule.cron for s in dep.schedules] == ["15 2 * * *"]
    assert dep.schedules[0].schedule.timezone == "Europe/Paris"
    assert dep.parameters == {"repo_dir": str(tmp_path.resolve()), "targets": ["report"]}
    assert dep.concurrency_limit == 1
    unscheduled = deploy.deployment(cron=None, repo_dir=tmp_path)
    assert not unscheduled.schedules and unscheduled.name == deploy.DEPLOYMENT_NAME


def test_deployment_rejects_bad_repo_and_targets(tmp_path):
    with pytest.raises(ReproError, match="dvc.yaml"):
        deploy.deployment(repo_dir=tmp_path)
    with pytest.raises(ReproError, match="--force"):
        deploy.deployment(repo_dir=dvc_project(tmp_path), targets=["--force"])


def test_server_binds_loopback_by_default(monkeypatch):
    monkeypatch.delenv(deploy.HOST_ENV, raising=False)
    assert deploy.server_host() == "127.0.0.1"
    assert deploy.server_host(environ={deploy.HOST_ENV: "10.0.0.5"}) == "10.0.0.5"
    assert deploy.server_host("::1", environ={deploy.HOST_ENV: "10.0.0.5"}) == "::1"
    cmd = deploy.server_command(deploy.server_host(), 4301)
    assert cmd[:5] == [sys.executable, "-m", "prefect", "server", "start"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "4301"


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True),
                                           ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("::", False),
                                           ("10.1.2.3", False), ("example.org", False)])
def test_is_loopback(host, loopback):
    assert deploy.is_loopback(host) is loopback


def test_exposed_server_needs_auth_or_a_proxy():
    with temporary_settings(updates={PREFECT_SERVER_API_AUTH_STRING: None}):
        with pytest.raises(deploy.DeployError, match="PREFECT_SERVER_API_AUTH_STRING"):
            deploy.server_command("0.0.0.0", 4200)
        assert "0.0.0.0" in deploy.server_command("0.0.0.0", 4200, behind_proxy=True)
    with temporary_settings(updates={PREFECT_SERVER_API_AUTH_STRING: "admin:correct-horse"}):
        cmd = deploy.server_command("0.0.0.0", 4200)
        assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
        assert not any("correct-horse" in part for part in cmd)  # the secret stays in the environment
    with pytest.raises(deploy.DeployError, match="port"):
        deploy.server_command("127.0.0.1", 0)


def test_server_command_line_refuses_before_starting(monkeypatch, capsys):
    def no_exec(*args):
        raise AssertionError(f"server started: {args}")

    monkeypatch.setattr(deploy.os, "execv", no_exec)
    monkeypatch.delenv(deploy.HOST_ENV, raising=False)
    with temporary_settings(updates={PREFECT_SERVER_API_AUTH_STRING: None}):
        assert deploy.main(["server", "--host", "0.0.0.0"]) == 2
        assert "refusing to expose" in capsys.readouterr().err
        monkeypatch.setenv(deploy.HOST_ENV, "0.0.0.0")
        assert deploy.main(["server"]) == 2


def test_serve_command_line_rejects_a_non_dvc_repo(tmp_path, capsys):
    assert deploy.main(["serve", "--repo-dir", str(tmp_path)]) == 2
    assert "dvc.yaml is missing" in capsys.readouterr().err


def test_gpu_limit_value():
    assert GPU_TAGS == ["gpu"]
    assert visible_gpu_count() == max(1, torch.cuda.device_count()) >= 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="gpu concurrency limit"):
            ensure_gpu_concurrency_limit(bad)


def test_prefect_yaml_matches_the_served_deployment():
    import yaml

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (dep,) = spec["deployments"]
    assert dep["name"] == deploy.DEPLOYMENT_NAME and dep["entrypoint"] == "flows/repro.py:repro_flow"
    assert [s["cron"] for s in dep["schedules"]] == [deploy.DEFAULT_CRON]
    assert dep["concurrency_limit"] == 1 and dep["work_pool"]["name"] == "udcshield-process"
    assert ARTIFACT_KEY == "udcshield-robustness"
