"""The report computes once and renders twice: ``report.json`` holds what both views show, the views are
functions of it, the report runs no restorer and imports no other stage."""

import ast
import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.pipeline.report_layout import build_layout, report_params
from udcshield.evaluation.records import read_records_csv
from udcshield.evaluation.statistics import cell_seed, paired_difference
from udcshield.evaluation.tables import ci_text
from udcshield.pipeline import report
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.report_data import paired
from udcshield.pipeline.report_figures import render_figures
from udcshield.pipeline.report_html import paired_section, render_html
from udcshield.pipeline.report_markdown import (adaptive_cell, glance_lines, paired_lines, render_markdown,
                                                robustness_lines)
from udcshield.pipeline.summary import means

SRC = Path(__file__).resolve().parents[2] / "src" / "udcshield"
STAGES = {"simulate", "train", "train_purifier", "finetune", "attack", "purify", "sweep", "adaptive", "evaluate"}
KEYS = {"schema", "title", "captions", "setup", "robustness", "worst_cases", "curves", "grid", "adaptive", "transfer",
        "sweep", "attack_cost", "sanity_checks", "figures", "provenance", "paired", "headline", "minimum_norm",
        "input_baseline", "seed_spread"}


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
    assert [c["label"] for c in rob["conditions"]] == ["clean", "pgd 2/256", "pgd 8/256", "fgsm 8/256",
                                                          "cw_l2 unbounded"]
    for table in rob["tables"]:
        ident = f"robustness-{table['model']}-{table['metric']}".replace("_", "-")
        body = html.split(f'id="{ident}"')[1].split("</table>")[0]
        html_rows = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in body.split("<tr>")[2:]]
        assert len(html_rows) == len(table["rows"]) == 4
        for row, cells in zip(table["rows"], html_rows):
            shown = [ci_text(table["metric"], v, ci) for v, ci in zip(row["values"], row["intervals"])]
            assert all(re.fullmatch(r"\d+\.\d+ \[\d+\.\d+, \d+\.\d+\]", c) for c in shown)
            assert f"| {row['model']} | {row['defense']} | " + " | ".join(shown) + " |" in md
            assert cells == [row["variant"], row["defense_label"], *shown]


def test_numbers_are_the_stage_outputs(built):
    _, layout, out, data = built
    metrics = json.loads(layout.metrics.read_text())
    for table in data["robustness"]["tables"]:
        for row in table["rows"]:
            cells = metrics[row["model"]][row["defense"]]
            assert row["values"] == [cells[c["key"]][table["metric"]] for c in data["robustness"]["conditions"]]
            m = table["metric"]
            assert row["intervals"] == [[cells[c["key"]][f"{m}_ci_low"], cells[c["key"]][f"{m}_ci_high"]]
                                        for c in data["robustness"]["conditions"]]
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


def test_the_unbounded_cw_row_reports_its_realised_l2_in_both_views(built):
    """C&W-L2 runs unbounded (budget 256, labelled so), outside the worst-case suite and the budget curves, and
    its own row gives the realised L2 norm of the stored set, its RMS level and the PSNR with its interval."""
    _, layout, _, data = built
    from udcshield.store.zarr_io import read_images, store_attrs

    rows = data["minimum_norm"]
    assert [r["set"] for r in rows] == ["resunet_tiny/base/cw_l2/256", "resunet_tiny/finetuned/cw_l2/256"]
    for r in rows:
        adv = read_images(layout.adversarial, r["set"]).astype(np.float64)
        clean = read_images(layout.test_store, "inputs").astype(np.float64)
        l2 = np.linalg.norm((adv - clean).reshape(len(adv), -1), axis=1)
        assert r["l2_mean"] == pytest.approx(l2.mean(), rel=1e-5)
        assert r["rms_256"] == pytest.approx(l2.mean() / np.sqrt(adv[0].size) * 256, rel=1e-5)
        assert r["settings"] == {"binary_search_steps": 2, "steps": 2, "tau_db": 1.0, "confidence": 0.0}
        assert r["images"] == 4 and r["successes"] == store_attrs(layout.adversarial, r["set"])["cost"]["successes"]
        assert set(r["psnr"]) == {"none", "purified"} and r["psnr"]["none"]["ci"] is not None
    md, html = layout.report.read_text(), report.html_path(layout).read_text()
    assert "## Minimum-norm attacks (C&W-L2, unbounded)" in md and 'id="minimum-norm"' in html
    assert f"{rows[0]['rms_256']:.2f}/256" in md and f"{rows[0]['rms_256']:.2f}/256" in html
    assert "cw_l2 unbounded" in md and all(c["attack"] != "cw_l2" for c in data["curves"])
    assert all("cw_l2" not in (cell or {}).get("per_attack", {}) for r in data["headline"]["rows"] for cell in r["cells"])


def test_worst_cases_and_adaptive_cells_carry_their_intervals(built):
    params, layout, _, data = built
    summary = means(read_records_csv(layout.records), params.seed)
    adaptive = json.loads((layout.root / "adaptive" / "metrics.json").read_text())
    md = layout.report.read_text()
    for r in data["worst_cases"]["rows"]:
        for w in r["worst"]:
            cell = summary[r["model"]][w["defense"]][w["condition"]]
            assert w["ci"] == [cell["psnr_ci_low"], cell["psnr_ci_high"]] and w["ci"][0] <= w["psnr"] <= w["ci"][1]
        assert r["clean_ci"] == [[summary[r["model"]][d]["clean"]["psnr_ci_low"],
                                  summary[r["model"]][d]["clean"]["psnr_ci_high"]] for d in ("none", "purified")]
        cell = adaptive[r["model"]]["purified"][r["adaptive"]["condition"]]
        assert r["adaptive"]["ci"] == [cell["psnr_worst_draw_ci_low"], cell["psnr_worst_draw_ci_high"]]
        assert ci_text("psnr", r["clean"][0], r["clean_ci"][0]) in md
    row = data["adaptive"]["rows"][1]
    text = adaptive_cell(row["pgd"], row["defense"])
    assert re.fullmatch(r"(\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]( / )?){3}", text) and text in md


def test_paired_comparisons_in_the_built_report(built):
    params, layout, _, data = built
    p = data["paired"]
    assert (p["metric"], p["level"], p["resamples"], p["seed"]) == ("psnr", 0.95, 2000, params.seed)
    conds = ["clean", "pgd_2", "pgd_8", "fgsm_8", "cw_l2_256"]
    names = ["purified vs undefended", "fine-tuned vs base", "purified + fine-tuned vs purified"]
    assert [(r["condition"], r["comparison"]) for r in p["rows"]] == [(c, n) for c in conds for n in names]
    records = read_records_csv(layout.records)

    def values(model, defense, cond):
        rows = [r for r in records if (r["model"], r["defense"], r["metric"]) == (model, defense, "psnr")
                and (r["attack"] == cond or f"{r['attack']}_{r['budget']}" == cond)]
        return np.array([r["value"] for r in sorted(rows, key=lambda r: r["image_id"])])

    row = p["rows"][4]  # fine-tuned vs base at pgd 2/256
    assert (row["a"], row["b"], row["condition_label"], row["n"]) == ("fine-tuned, no purification", "undefended",
                                                                      "pgd 2/256", 4)
    want = paired_difference(values("resunet_tiny:finetuned", "none", "pgd_2"), values("resunet_tiny:base", "none",
                             "pgd_2"), cell_seed(params.seed, "paired|resunet_tiny|fine-tuned vs base|pgd_2|psnr"))
    assert (row["mean"], row["ci_low"], row["ci_high"]) == tuple(round(want[k], 4) for k in ("mean", "ci_low",
                                                                                              "ci_high"))
    md = layout.report.read_text()
    html = report.html_path(layout).read_text()
    assert "## Paired comparisons (PSNR dB, 95 % bootstrap intervals)" in md and 'id="paired"' in html
    assert md.count("not distinguishable at 95 %") + md.count(" higher than ") == 3 * len(conds)


def hand_records(seed: int = 0) -> list[dict]:
    """40 images: purification +1 dB (clear), fine-tuning alone +-0.2 dB around 0, fine-tuning after purification
    -0.8 dB (clear); every condition of :func:`report_params`, plus a transfer cell that must be ignored."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = []
    for cond, budget in (("clean", 0), ("pgd", 2), ("pgd", 8), ("fgsm", 8)):
        for i in range(40):
            base = float(rng.normal(20.0 - budget, 3.0))
            purified = base + 1.0 + float(rng.normal(0.0, 0.2))
            cells = {("base", "none"): base, ("base", "purified"): purified,
                     ("finetuned", "none"): base + (0.2 if i % 2 else -0.2),  # mean difference exactly 0
                     ("finetuned", "purified"): purified - 0.8 + float(rng.normal(0.0, 0.2))}
            for (variant, defense), value in cells.items():
                out.append({"image_id": f"img/{i:03d}", "model": f"resunet_tiny:{variant}", "defense": defense,
                            "attack": cond, "budget": budget, "metric": "psnr", "value": value})
                out.append({**out[-1], "metric": "ssim", "value": 0.5})
        out.append({**out[-1], "metric": "psnr", "attack": "pgd@resunet_tiny/base", "value": 99.0})
    return out


def test_paired_comparisons_rank_only_where_the_interval_excludes_zero():
    params = report_params()
    records = hand_records()
    p = paired(params, records)
    assert len(p["rows"]) == 4 * 3 and all(r["n"] == 40 for r in p["rows"])
    for r in p["rows"]:
        assert r["excludes_zero"] == (r["ci_low"] > 0 or r["ci_high"] < 0)
        if r["comparison"] == "purified vs undefended":
            assert r["excludes_zero"] and 0.8 < r["ci_low"] < r["mean"] < r["ci_high"] < 1.2
        elif r["comparison"] == "fine-tuned vs base":
            assert not r["excludes_zero"] and r["ci_low"] < 0 < r["ci_high"]
        else:
            assert r["excludes_zero"] and -1.0 < r["ci_low"] < r["mean"] < r["ci_high"] < -0.6
    assert paired(params, list(reversed(records))) == p  # record order does not matter
    assert paired(report_params(seed=1), records)["rows"][0]["ci_low"] != p["rows"][0]["ci_low"]
    lines = paired_lines({"paired": p})
    assert lines[0] == "## Paired comparisons (PSNR dB, 95 % bootstrap intervals)"
    body = [line for line in lines if line.startswith("| resunet_tiny |")]
    assert len(body) == 12
    for r, line in zip(p["rows"], body):
        if r["comparison"] == "fine-tuned vs base":
            assert line.endswith("| fine-tuned, no purification and undefended not distinguishable at 95 % |")
            assert "higher" not in line
        elif r["comparison"] == "purified vs undefended":
            assert f"| purified higher than undefended by {r['mean']:.3f} dB [{r['ci_low']:.3f}, " \
                   f"{r['ci_high']:.3f}] |" in line
        else:
            assert f"| purified higher than purified + fine-tuned by {-r['mean']:.3f} dB [{-r['ci_high']:.3f}, " \
                   f"{-r['ci_low']:.3f}] |" in line
            assert f"| {r['mean']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | 40 |" in line
    html = paired_section({"paired": p}).body
    assert html.count("not distinguishable at 95 %") == 4 and html.count("higher than") == 8


def test_paired_comparisons_need_the_same_images_on_both_sides():
    records = [r for r in hand_records() if not (r["model"] == "resunet_tiny:finetuned" and r["image_id"] == "img/003")]
    with pytest.raises(ValueError, match="fine-tuned vs base: cells .* hold different images"):
        paired(report_params(), records)
    base_only = [r for r in hand_records() if r["model"] == "resunet_tiny:base"]
    assert [r["comparison"] for r in paired(report_params(), base_only)["rows"]] == ["purified vs undefended"] * 4


def test_views_show_means_with_their_intervals_and_without_when_absent():
    row = {"model": "m:base", "defense": "none", "values": [11.894, None], "intervals": [[11.2131, 12.4987], None]}
    data = {"setup": {"models": ["m"]},
            "robustness": {"conditions": [{"key": "clean", "label": "clean"}, {"key": "pgd_8", "label": "pgd 8/256"}],
                           "tables": [{"model": "m", "metric": "psnr", "unit": "PSNR (dB)", "rows": [row]}]}}
    assert "| m:base | none | 11.89 [11.21, 12.50] | - |" in robustness_lines(data)
    old = {**row, "intervals": None}
    data["robustness"]["tables"][0]["rows"] = [old]
    assert "| m:base | none | 11.89 | - |" in robustness_lines(data)
    worst = [{"psnr": 9.5, "ci": [9.0, 10.0]}, {"psnr": 14.0}]
    glance = glance_lines({"worst_cases": {"rows": [{"model": "m:base", "clean": [20.0, 19.0],
                                                     "clean_ci": [[19.5, 20.5], None], "worst": worst}]}})
    assert "| m:base | 20.00 [19.50, 20.50] | 19.00 | 9.50 [9.00, 10.00] | 14.00 |" in glance
    cell = {"psnr_mean_draws": 18.0, "psnr_mean_draws_ci_low": 17.5, "psnr_mean_draws_ci_high": 18.5,
            "psnr_worst_draw": 17.0, "psnr_avg_output": 18.25}
    assert adaptive_cell(cell, "purified") == "18.00 [17.50, 18.50] / 17.00 / 18.25"
    assert adaptive_cell({"psnr": 12.0, "psnr_ci_low": 11.0, "psnr_ci_high": 13.0}, "none") == "12.00 [11.00, 13.00]"


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
                                  "report_provenance", "report_input", "grid"])
def test_report_modules_import_no_stage_and_stay_small(name):
    path = SRC / "pipeline" / f"{name}.py"
    stages = {f"udcshield.pipeline.{s}" for s in STAGES}
    assert not _imports(path) & stages, f"{name} imports a stage module"
    assert len(path.read_text().splitlines()) < 400


@pytest.mark.parametrize("name", ["html", "figures", "tables"])
def test_evaluation_view_modules_stay_small(name):
    assert len((SRC / "evaluation" / f"{name}.py").read_text().splitlines()) < 400


# ------------------------------------------------------------------------------------------ the input baseline
def test_the_input_baseline_and_the_gains_in_both_views(built):
    """The input row is the raw test inputs' PSNR (written out here in numpy); each gain is the paired bootstrap
    of restorer - input per image; both views show the row, the gains and the LPIPS line."""
    from udcshield.pipeline.report_input import INPUT_LABEL, LPIPS_NOTE
    from udcshield.store.zarr_io import read_images, store_attrs

    params, layout, _, data = built
    b = data["input_baseline"]
    x, y = (np.round(np.clip(read_images(layout.test_store, k).astype(np.float64), 0, 1) * 255)
            for k in ("inputs", "targets"))
    per_image = 10 * np.log10(255.0 ** 2 / ((x - y) ** 2).reshape(len(x), -1).mean(axis=1))
    ids = store_attrs(layout.test_store)["image_ids"]
    assert b["input"]["psnr"]["mean"] == pytest.approx(per_image.mean(), abs=1e-4)
    low, high = b["input"]["psnr"]["ci"]
    assert low < b["input"]["psnr"]["mean"] < high and b["lpips"] is False
    records = read_records_csv(layout.records)
    by_id = dict(zip(ids, per_image))
    assert [(r["model"], r["defense"]) for r in b["rows"]] == [(f"resunet_tiny:{v}", d) for v in ("base", "finetuned")
                                                               for d in ("none", "purified")]
    for row in b["rows"]:
        clean = sorted((r["image_id"], r["value"]) for r in records if (r["model"], r["defense"], r["attack"],
                       r["metric"]) == (row["model"], row["defense"], "clean", "psnr"))
        restored = np.array([v for _, v in clean])
        want = paired_difference(restored, np.array([by_id[i] for i, _ in clean]),
                                 cell_seed(params.seed, f"input-gain|{row['model']}|{row['defense']}|clean|psnr"))
        g = row["gain"]
        assert (g["mean"], g["ci_low"], g["ci_high"], g["n"]) == (round(want["mean"], 4), round(want["ci_low"], 4),
                                                                  round(want["ci_high"], 4), 4)
        assert g["mean"] == pytest.approx(row["values"]["psnr"]["mean"] - b["input"]["psnr"]["mean"], abs=3e-4)
    purified = b["rows"][1]["gain"]
    assert purified["excludes_zero"] and purified["ci_high"] < 0  # purification costs clean PSNR here
    md, html = layout.report.read_text(), report.html_path(layout).read_text()
    shown = ci_text("psnr", b["input"]["psnr"]["mean"], b["input"]["psnr"]["ci"])
    assert f"| {INPUT_LABEL} | - | {shown} | " in md and f"<td class=\"l\">{INPUT_LABEL}</td>" in html
    text = f"{purified['mean']:+.3f} [{purified['ci_low']:+.3f}, {purified['ci_high']:+.3f}]"
    section = md.split("## Clean test images: restorers vs the raw input")[1].split("\n## ")[0]
    row = next(line for line in section.splitlines() if line.startswith("| resunet_tiny:base | purified | "))
    assert row.endswith(f"| {text} |") and text in html
    assert md.count(LPIPS_NOTE) == 1 and html.count("LPIPS: not computed") == 1 and 'id="input-baseline"' in html
    assert md.index("## Headline") < md.index("## Clean test images: restorers vs the raw input") < \
        md.index("## resunet_tiny")


def lpips_records() -> list[dict]:
    """:func:`hand_records` plus LPIPS of every cell (attacks raise it: fgsm 8/256 the most) and the input rows:
    PSNR 3 dB below the undefended base restorer per image (+- 0.1 dB), SSIM 0.4, LPIPS 0.5."""
    rng = np.random.Generator(np.random.PCG64(7))
    out = hand_records()
    extra = {("clean", 0): 0.1, ("pgd", 2): 0.2, ("pgd", 8): 0.3, ("fgsm", 8): 0.45}
    for r in [r for r in out if r["metric"] == "psnr" and "@" not in r["attack"]]:
        out.append({**r, "metric": "lpips", "value": extra[(r["attack"], r["budget"])]})
        if (r["model"], r["defense"], r["attack"]) == ("resunet_tiny:base", "none", "clean"):
            row = {**r, "model": "input"}
            out += [{**row, "value": r["value"] - 3.0 + float(rng.normal(0.0, 0.1))},
                    {**row, "metric": "ssim", "value": 0.4}, {**row, "metric": "lpips", "value": 0.5}]
    return out


def test_lpips_tables_mark_the_highest_value_worst_and_the_input_view_shows_it():
    from udcshield.pipeline.report_data import defense_label, robustness
    from udcshield.pipeline.report_input import LPIPS_NOTE, input_baseline, input_lines, input_section

    params = report_params(evaluate={"metrics": ["psnr", "ssim", "lpips"], "lpips_weights_path": "alex.safetensors"})
    records = lpips_records()
    summary = means(records, params.seed)
    tables = {t["metric"]: t for t in robustness(params, summary)["tables"]}
    assert tables["lpips"]["unit"] == "LPIPS (lower is better)" and tables["psnr"]["unit"] == "PSNR (dB)"
    assert all(r["worst"] == 0.45 for r in tables["lpips"]["rows"])  # the highest distance, not the lowest
    assert all(r["worst"] == min(v for v in r["values"][1:] if v is not None) for r in tables["psnr"]["rows"])
    b = input_baseline(params, summary, records, defense_label)
    assert b["lpips"] is True and b["input"]["lpips"]["mean"] == 0.5 and b["input"]["ssim"]["mean"] == 0.4
    base = b["rows"][0]
    assert base["model"] == "resunet_tiny:base" and base["defense"] == "none"
    diffs = [a["value"] - i["value"] for a, i in zip(
        sorted((r for r in records if (r["model"], r["defense"], r["attack"], r["metric"]) ==
                ("resunet_tiny:base", "none", "clean", "psnr")), key=lambda r: r["image_id"]),
        sorted((r for r in records if (r["model"], r["metric"]) == ("input", "psnr")), key=lambda r: r["image_id"]))]
    assert base["gain"]["mean"] == round(float(np.mean(diffs)), 4) and base["gain"]["n"] == 40
    assert base["gain"]["excludes_zero"] and 2.9 < base["gain"]["ci_low"] < base["gain"]["mean"] < \
        base["gain"]["ci_high"] < 3.1
    lines = input_lines({"input_baseline": b})
    assert "| restorer | defense | PSNR (dB) | SSIM | LPIPS (lower is better) | PSNR gain over input (dB) [95 % CI, " \
           "paired] |" in lines
    assert "| input (no restorer) | - |" in "\n".join(lines) and LPIPS_NOTE not in lines
    assert "LPIPS: not computed" not in input_section({"input_baseline": b}).body


def test_records_without_input_rows_say_so_and_give_no_gain():
    from udcshield.pipeline.report_data import defense_label
    from udcshield.pipeline.report_input import LPIPS_NOTE, MISSING, input_baseline, input_lines

    params = report_params()
    records = hand_records()
    b = input_baseline(params, means(records, params.seed), records, defense_label)
    assert b["input"] is None and all(r["gain"] is None for r in b["rows"])
    lines = input_lines({"input_baseline": b})
    assert MISSING in lines and LPIPS_NOTE in lines
    assert input_lines({}) == []
    broken = [r for r in lpips_records() if not (r["model"] == "input" and r["image_id"] == "img/005")]
    with pytest.raises(ValueError, match=r"input baseline: cells \(resunet_tiny:base, none, clean\) and \(input"):
        input_baseline(params, means(broken, params.seed), broken, defense_label)
