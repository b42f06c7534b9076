"""The report computes once and renders twice: ``report.json`` holds what both views show, the views are
functions of it, the report runs no restorer and imports no other stage."""

import ast
import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.pipeline.report_layout import build_layout
from udcshield.evaluation.tables import metric_text
from udcshield.pipeline import report
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.report_figures import render_figures
from udcshield.pipeline.report_html import render_html
from udcshield.pipeline.report_markdown import render_markdown

SRC = Path(__file__).resolve().parents[2] / "src" / "udcshield"
STAGES = {"simulate", "train", "train_purifier", "finetune", "attack", "purify", "sweep", "adaptive", "evaluate"}
KEYS = {"schema", "title", "captions", "setup", "robustness", "worst_cases", "curves", "grid", "adaptive", "transfer",
        "sweep", "attack_cost", "sanity_checks", "figures", "provenance"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    params, layout, _ = build_layout(tmp_path_factory.mktemp("data"))
    out = report.run(params, layout)
    return params, layout, out, report.load_report_data(layout)


def test_report_json_is_the_source_of_both_views(built):
    _, layout, out, data = built
    assert out["json"] == report.json_path(layout).as_posix() and set(data) == KEYS
    assert render_markdown(data) == layout.report.read_text()
    page = render_html(data, render_figures(data, layout))

    def text(html: str) -> str:
        return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "PNG", html)

    assert text(page) == text(report.html_path(layout).read_text())
    assert data["figures"]["psf"] == (layout.report.parent / "psf.png").as_posix()
    assert all(Path(data["figures"][k]).is_file() for k in ("psf", "mask", "html"))


def test_both_views_show_the_same_table_cells(built):
    _, layout, _, data = built
    md = layout.report.read_text()
    html = report.html_path(layout).read_text()
    rob = data["robustness"]
    assert [c["label"] for c in rob["conditions"]] == ["clean", "pgd 2/256", "pgd 8/256", "fgsm 8/256"]
    for table in rob["tables"]:
        ident = f"robustness-{table['model']}-{table['metric']}".replace("_", "-")
        body = html.split(f'id="{ident}"')[1].split("</table>")[0]
        html_rows = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in body.split("<tr>")[2:]]
        assert len(html_rows) == len(table["rows"]) == 4
        for row, cells in zip(table["rows"], html_rows):
            shown = [metric_text(table["metric"], v) for v in row["values"]]
            assert f"| {row['model']} | {row['defense']} | " + " | ".join(shown) + " |" in md
            assert cells == [row["variant"], row["defense_label"], *shown]


def test_numbers_are_the_stage_outputs(built):
    _, layout, out, data = built
    metrics = json.loads(layout.metrics.read_text())
    for table in data["robustness"]["tables"]:
        for row in table["rows"]:
            cells = metrics[row["model"]][row["defense"]]
            assert row["values"] == [cells[c["key"]][table["metric"]] for c in data["robustness"]["conditions"]]
    adaptive = json.loads((layout.root / "adaptive" / "metrics.json").read_text())
    first = data["adaptive"]["rows"][1]
    assert first["defense"] == "purified" and first["pgd"] == adaptive[first["model"]]["purified"]["pgd_8"]
    worst = list(csv.DictReader(io.StringIO(report.worst_case_path(layout).read_text())))
    assert [r["label"] for r in worst] == [r["label"] for r in report.worst_case_rows(data)]
    assert out["table"] == report.robustness_rows(data)
    checks = {c["check"]: c["status"] for c in data["sanity_checks"]}
    assert checks["resunet_tiny/base/pgd/8: stored perturbation within budget"] == "pass"
    assert any("gradient masking flag" in c for c in checks)
    assert [c["set"] for c in data["attack_cost"]] == sorted(c["set"] for c in data["attack_cost"])
    names = [a["name"] for a in data["provenance"]["artifacts"]]
    assert {"records", "image grid", "restorer resunet_tiny/finetuned", "adaptive"} <= set(names)
    grid = data["grid"]
    assert grid["image_ids"] == ["img/000", "img/001"] and grid["condition"] == "pgd_8"
    assert [p["source"] for p in grid["panels"]] == ["resunet_tiny/base", "resunet_tiny/finetuned"]


def test_grid_psnr_matches_the_evaluation_records(built):
    _, layout, _, data = built
    panel = data["grid"]["panels"][0]
    rows = list(csv.DictReader(layout.records.open()))
    clean = {r["image_id"]: float(r["value"]) for r in rows if r["model"] == "resunet_tiny:base"
             and r["defense"] == "none" and r["attack"] == "clean" and r["metric"] == "psnr"}
    assert panel["psnr"]["restored_clean"] == pytest.approx([clean[i] for i in data["grid"]["image_ids"]], abs=0.01)


def test_the_report_runs_no_restorer_and_loads_no_checkpoint(built, tmp_path, monkeypatch):
    params, layout, _, _ = built
    copy = Layout(tmp_path / "data")
    shutil.copytree(layout.root, copy.root)

    def refused(*args, **kwargs):
        raise AssertionError("the report ran a network or loaded a checkpoint")

    monkeypatch.setattr(torch.nn.Module, "__call__", refused)
    import udcshield.models.checkpoint as checkpoint
    monkeypatch.setattr(checkpoint, "load_checkpoint", refused)
    monkeypatch.setattr(checkpoint, "read_checkpoint_folder", refused)
    out = report.run(params, copy)
    assert Path(out["json"]).is_file()


def test_the_report_needs_the_grid_store(built, tmp_path):
    params, layout, _, _ = built
    copy = Layout(tmp_path / "data")
    shutil.copytree(layout.root, copy.root)
    shutil.rmtree(copy.grid_store)
    with pytest.raises(FileNotFoundError, match=r"grid.zarr \(stage evaluate\)"):
        report.run(params, copy)


def test_repro_artifact_renders_the_report_sections(built):
    from flows.repro import report_sections, robustness_markdown

    _, layout, _, data = built
    md = layout.report.read_text()
    sections = report_sections(data)
    assert [s.splitlines()[0] for s in sections] == ["## Defense at a glance",
                                                     "## Defense against adaptive attacks (PSNR dB)"]
    assert all(s in md for s in sections)
    artifact = robustness_markdown(layout.root.parent)
    assert all(s in artifact for s in sections) and "| resunet_tiny:base | none |" in artifact


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("name", ["report", "report_data", "report_markdown", "report_html", "report_figures",
                                  "report_provenance", "grid"])
def test_report_modules_import_no_stage_and_stay_small(name):
    path = SRC / "pipeline" / f"{name}.py"
    stages = {f"udcshield.pipeline.{s}" for s in STAGES}
    assert not _imports(path) & stages, f"{name} imports a stage module"
    assert len(path.read_text().splitlines()) < 400


@pytest.mark.parametrize("name", ["html", "figures", "tables"])
def test_evaluation_view_modules_stay_small(name):
    assert len((SRC / "evaluation" / f"{name}.py").read_text().splitlines()) < 400
