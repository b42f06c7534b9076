"""``summary.means``: the nested means of metrics.json, each with its 95 % bootstrap interval over the images."""

import json
import random

import numpy as np
import pytest

from udcshield.evaluation.statistics import bootstrap_ci, cell_seed
from udcshield.pipeline.summary import interval, means


def rec(image, model, defense, attack, budget, metric, value, **extra):
    return {"image_id": image, "model": model, "defense": defense, "attack": attack, "budget": budget,
            "metric": metric, "value": value, **extra}


def records():
    rng = np.random.Generator(np.random.PCG64(0))
    out = []
    for i in range(20):
        image = f"img/{i:03d}"
        clean = float(rng.normal(30.0, 2.0))
        for defense, gain in (("none", 0.0), ("purified", 3.0)):
            out.append(rec(image, "m:base", defense, "clean", 0, "psnr", clean))
            out.append(rec(image, "m:base", defense, "clean", 0, "ssim", 0.9 + 0.001 * i))
            out.append(rec(image, "m:base", defense, "pgd", 8, "psnr", clean - 10.0 + gain + float(rng.normal())))
    return out


def test_every_mean_keeps_its_value_and_gains_an_interval():
    recs = records()
    out = means(recs, seed=3)
    cell = out["m:base"]["none"]["clean"]
    assert set(cell) == {"psnr", "psnr_ci_low", "psnr_ci_high", "ssim", "ssim_ci_low", "ssim_ci_high"}
    values = [r["value"] for r in recs if r["defense"] == "none" and r["attack"] == "clean" and r["metric"] == "psnr"]
    assert cell["psnr"] == round(sum(values) / len(values), 4)
    assert cell["psnr_ci_low"] < cell["psnr"] < cell["psnr_ci_high"]
    assert cell["psnr_ci_high"] - cell["psnr_ci_low"] == pytest.approx(2 * 1.96 * np.std(values) / np.sqrt(20),
                                                                        rel=0.25)
    assert set(out["m:base"]) == {"none", "purified"} and set(out["m:base"]["none"]) == {"clean", "pgd_8"}
    assert interval(cell, "psnr") == [cell["psnr_ci_low"], cell["psnr_ci_high"]]
    assert interval({"psnr": 1.0}, "psnr") is None and interval(None, "psnr") is None


def test_the_interval_is_the_seeded_bootstrap_of_the_images_sorted_by_id():
    recs = records()
    out = means(recs, seed=3)
    by_id = sorted((r["image_id"], r["value"]) for r in recs
                   if r["defense"] == "purified" and r["attack"] == "pgd" and r["metric"] == "psnr")
    low, high = bootstrap_ci([v for _, v in by_id], cell_seed(3, "m:base|purified|pgd_8|psnr"))
    cell = out["m:base"]["purified"]["pgd_8"]
    assert (cell["psnr_ci_low"], cell["psnr_ci_high"]) == (round(low, 4), round(high, 4))


def test_independent_of_record_order_and_deterministic_in_the_seed():
    recs = records()
    shuffled = recs[:]
    random.Random(1).shuffle(shuffled)
    assert means(shuffled, seed=3) == means(recs, seed=3)
    assert means(recs, seed=3) == means(recs, seed=3)
    other = means(recs, seed=4)["m:base"]["none"]["clean"]
    same = means(recs, seed=3)["m:base"]["none"]["clean"]
    assert other["psnr"] == same["psnr"] and other["psnr_ci_low"] != same["psnr_ci_low"]
    assert means(recs) == means(recs, seed=0)


def test_a_cell_interval_does_not_depend_on_the_other_cells():
    recs = records()
    alone = [r for r in recs if r["defense"] == "none" and r["attack"] == "clean"]
    assert means(alone, seed=5)["m:base"]["none"]["clean"] == means(recs, seed=5)["m:base"]["none"]["clean"]


def test_draws_of_one_image_are_averaged_before_resampling():
    recs = [rec(f"i{i}", "m:base", "purified", "pgd", 8, "psnr", 10.0 + i + d, draw=d)
            for i in range(6) for d in (0, 1)]
    cell = means(recs, seed=1)["m:base"]["purified"]["pgd_8"]
    assert cell["psnr"] == pytest.approx(np.mean([10.0 + i + 0.5 for i in range(6)]))
    low, high = bootstrap_ci([10.5 + i for i in range(6)], cell_seed(1, "m:base|purified|pgd_8|psnr"))
    assert (cell["psnr_ci_low"], cell["psnr_ci_high"]) == (round(low, 4), round(high, 4))


def test_one_image_and_infinite_values():
    one = means([rec("a", "m", "none", "clean", 0, "psnr", 21.123456)])["m"]["none"]["clean"]
    assert one == {"psnr": 21.1235, "psnr_ci_low": 21.1235, "psnr_ci_high": 21.1235}
    inf = means([rec("a", "m", "none", "clean", 0, "psnr", float("inf")),
                 rec("b", "m", "none", "clean", 0, "psnr", 30.0)])["m"]["none"]["clean"]
    assert inf["psnr"] == inf["psnr_ci_low"] == inf["psnr_ci_high"] == float("inf")


def test_metrics_json_stays_flat_numbers_with_the_means_last_in_each_cell():
    out = means(records(), seed=0)
    cell = out["m:base"]["none"]["clean"]
    assert list(cell)[-2:] == ["psnr", "ssim"]  # a row built from a cell keeps the metrics as last columns
    leaves = []

    def walk(node):
        for value in node.values():
            walk(value) if isinstance(value, dict) else leaves.append(value)

    walk(json.loads(json.dumps(out)))
    assert leaves and all(isinstance(v, float) for v in leaves)
