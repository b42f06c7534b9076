import pytest

from udcshield.evaluation import markdown_table, psnr_vs_budget_rows, summary_table


def rec(image, model, defense, attack, budget, metric, value):
    return {"image_id": image, "model": model, "defense": defense, "attack": attack, "budget": budget,
            "metric": metric, "value": value}


def records():
    out = []
    for model, base in (("discnet", 35.0), ("uformer", 30.0)):
        for defense, gain in (("none", 0.0), ("purify", 1.0)):
            for i, img in enumerate(("a", "b")):
                out.append(rec(img, model, defense, "clean", 0, "psnr", base + i))
                out.append(rec(img, model, defense, "clean", 0, "ssim", 0.9))
                for budget in (8, 1):  # deliberately out of order
                    out.append(rec(img, model, defense, "pgd", budget, "psnr", base - budget + gain + i))
                    out.append(rec(img, model, defense, "pgd", budget, "ssim", 0.9 - budget / 100))
    out.append(rec("a", "discnet", "none", "fgsm", 4, "psnr", 20.0))
    return out


def test_summary_table():
    rows = summary_table(records())
    first = rows[0]
    assert first == {"model": "discnet", "defense": "none", "attack": "clean", "budget": 0, "metric": "psnr",
                     "mean": 35.5, "count": 2}
    pgd = [r for r in rows if r["model"] == "discnet" and r["defense"] == "none" and r["attack"] == "pgd"]
    assert [(r["budget"], r["metric"]) for r in pgd] == [(1, "psnr"), (1, "ssim"), (8, "psnr"), (8, "ssim")]
    assert pgd[2]["mean"] == pytest.approx(27.5)


def test_markdown_table_layout():
    table = markdown_table(records())
    assert table == (
        "| model | defense | clean | pgd 1/256 | pgd 8/256 | fgsm 4/256 |\n"
        "|---|---|---:|---:|---:|---:|\n"
        "| discnet | none | 35.50 | 34.50 | 27.50 | 20.00 |\n"
        "| discnet | purify | 35.50 | 35.50 | 28.50 | - |\n"
        "| uformer | none | 30.50 | 29.50 | 22.50 | - |\n"
        "| uformer | purify | 30.50 | 30.50 | 23.50 | - |\n"
    )
    assert "0.90" in markdown_table(records(), metric="ssim")
    with pytest.raises(ValueError, match="lpips"):
        markdown_table(records(), metric="lpips")


def test_psnr_vs_budget_rows_start_at_clean():
    rows = psnr_vs_budget_rows(records())
    curve = [r for r in rows if (r["model"], r["defense"], r["attack"]) == ("discnet", "none", "pgd")]
    assert [r["budget"] for r in curve] == [0, 1, 8]
    assert curve[0] == {"model": "discnet", "defense": "none", "attack": "pgd", "budget": 0,
                        "psnr": 35.5, "ssim": pytest.approx(0.9)}
    assert curve[2]["psnr"] == pytest.approx(27.5) and curve[2]["ssim"] == pytest.approx(0.82)
    fgsm = [r for r in rows if r["attack"] == "fgsm"]
    expected = [(0, 35.5, pytest.approx(0.9)), (4, 20.0, None)]
    assert [(r["budget"], r["psnr"], r["ssim"]) for r in fgsm] == expected
    assert not any(r["attack"] == "clean" for r in rows)


def test_report_cell_formats():
    from udcshield.evaluation.tables import cond_label, metric_text

    assert metric_text("psnr", 21.456) == "21.46" and metric_text("ssim", 0.97049) == "0.970"
    assert metric_text("psnr", None) == "-"
    assert cond_label("pgd_8") == "pgd 8/256" and cond_label("clean") == "clean"
    assert cond_label("pgd@m/base_8") == "pgd@m/base 8/256"


def test_interval_cell_format_and_paired_statement():
    from udcshield.evaluation.tables import ci_text, paired_statement, signed_db

    assert ci_text("psnr", 11.894, [11.2131, 12.4987]) == "11.89 [11.21, 12.50]"
    assert ci_text("ssim", 0.5, (0.4512, 0.55)) == "0.500 [0.451, 0.550]"
    assert ci_text("psnr", 11.894) == "11.89" and ci_text("psnr", None, [1.0, 2.0]) == "-"
    assert signed_db(0.4123) == "+0.412" and signed_db(-0.05) == "-0.050"
    row = {"a": "fine-tuned", "b": "base", "mean": 0.25, "ci_low": 0.1, "ci_high": 0.4, "excludes_zero": True}
    assert paired_statement(row) == "fine-tuned higher than base by 0.250 dB [0.100, 0.400]"
    lower = {**row, "mean": -0.25, "ci_low": -0.4, "ci_high": -0.1}
    assert paired_statement(lower) == "base higher than fine-tuned by 0.250 dB [0.100, 0.400]"
    unsure = {**row, "ci_low": -0.05, "excludes_zero": False}
    assert paired_statement(unsure) == "fine-tuned and base not distinguishable at 95 %"


SWEEP_CSV = ("model,t_star,setting,sampler,num_steps,eta,nfe,nfe_fraction,seconds,images_per_s,psnr_clean,psnr_adv,"
             "delta_clean_db,delta_adv_db,tolerance_db,within_tolerance\n"
             "m,8,ddpm-all,ddpm,all,0.0,8.0,1.0,2.0,4.0,20.0,18.0,0.0,0.0,0.3,True\n"
             "m,8,ddim-1,ddim,1,0.0,1.0,0.125,0.0,inf,19.5,17.25,-0.5,-0.75,0.3,False\n")


def test_sweep_table_cells_and_markdown(tmp_path):
    from udcshield.evaluation.tables import SWEEP_TABLE_HEADER, read_sweep_rows, sweep_cells, sweep_markdown

    path = tmp_path / "sweep.csv"
    path.write_text(SWEEP_CSV)
    rows = read_sweep_rows(path)
    assert rows[1]["t_star"] == 8 and rows[1]["within_tolerance"] is False and rows[1]["nfe"] == 1.0
    cells = sweep_cells(rows)
    assert cells[1] == ["m", "8", "ddim-1", "1", "12 %", "inf", "19.50", "17.25", "-0.75"]
    assert len(cells[0]) == len(SWEEP_TABLE_HEADER)
    md = sweep_markdown(cells, ["a statement"])
    assert md.splitlines()[0].startswith("| restorer | t* | setting | NFE / image")
    assert "| m | 8 | ddim-1 | 1 | 12 % | inf |" in md and md.endswith("\n- a statement\n")
    assert "disabled" in sweep_markdown([], [])


def test_sweep_rows_name_a_missing_file_or_column(tmp_path):
    from udcshield.evaluation.tables import read_sweep_rows

    with pytest.raises(FileNotFoundError, match="sweep table not found"):
        read_sweep_rows(tmp_path / "nope.csv")
    header_only = tmp_path / "empty.csv"
    header_only.write_text(SWEEP_CSV.splitlines()[0] + "\n")
    assert read_sweep_rows(header_only) == []
    bad = tmp_path / "bad.csv"
    bad.write_text(SWEEP_CSV.replace("psnr_adv,", "psnr_x,"))
    with pytest.raises(ValueError, match="missing columns.*psnr_adv"):
        read_sweep_rows(bad)
