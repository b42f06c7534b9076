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
