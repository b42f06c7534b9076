"""Per-image worst case over the attack suite (AutoAttack-style) and the convergence flags in metrics."""

import numpy as np
import pytest

from tests.pipeline_fixtures import tiny_params
from udcshield.config import ConfigError, params_from_dict
from udcshield.pipeline.summary import means
from udcshield.pipeline.worst_case import WORST_CASE, attach_convergence, suite, worst_case_records
from udcshield.store.zarr_io import write_store


def make_params(attacks, worst_case=None):
    raw = tiny_params()
    raw["attack"]["attacks"] = attacks
    raw["evaluate"]["worst_case"] = worst_case
    return params_from_dict(raw)


ATTACKS = [{"name": "pgd", "budgets": [2, 8]}, {"name": "apgd", "budgets": [8]},
           {"name": "square", "budgets": [8]}, {"name": "pgd_l2", "budgets": [8]}]


def records_for(values: dict[str, list[float]], budget=8, defense="none", metric="psnr"):
    return [{"image_id": f"img{i}", "model": "resunet_tiny:base", "defense": defense, "attack": attack,
             "budget": budget, "metric": metric, "value": v}
            for attack, vals in values.items() for i, v in enumerate(vals)]


def test_default_suite_is_every_linf_attack():
    assert suite(make_params(ATTACKS)) == ["pgd", "apgd", "square"]
    assert suite(make_params(ATTACKS, ["apgd", "pgd"])) == ["apgd", "pgd"]
    with pytest.raises(ConfigError, match=r"evaluate.worst_case\[1\] 'cw' is not one of attack.attacks"):
        make_params(ATTACKS, ["pgd", "cw"])
    with pytest.raises(ConfigError, match="evaluate.worst_case must list distinct"):
        make_params(ATTACKS, ["pgd", "pgd"])


def test_worst_case_is_the_per_image_minimum_over_members():
    """Per image, at most every member's value and equal to one of them; the mean of the minima is below
    the smallest member mean when different images fall to different attacks."""
    params = make_params(ATTACKS)
    values = {"pgd": [10.0, 20.0, 15.0], "apgd": [12.0, 11.0, 15.5], "square": [30.0, 25.0, 14.0],
              "pgd_l2": [1.0, 1.0, 1.0], "fgsm": [0.0, 0.0, 0.0]}
    rows = worst_case_records(params, records_for(values) + records_for({"pgd": [18.0, 19.0, 17.0]}, budget=2))
    at8 = {r["image_id"]: r["value"] for r in rows if r["budget"] == 8}
    assert at8 == {"img0": 10.0, "img1": 11.0, "img2": 14.0}  # pgd_l2 (L2) and fgsm (not configured) excluded
    for attack in ("pgd", "apgd", "square"):
        assert all(at8[f"img{i}"] <= v for i, v in enumerate(values[attack]))
    assert {r["value"] for r in rows if r["budget"] == 2} == {17.0, 18.0, 19.0}
    assert all(r["attack"] == WORST_CASE and r["defense"] == "none" for r in rows)
    mean_worst = np.mean(list(at8.values()))
    assert mean_worst < min(np.mean(values[a]) for a in ("pgd", "apgd", "square"))


def test_the_worst_case_of_lpips_is_the_per_image_maximum():
    """LPIPS is a distance (lower is better): its worst case is each image's highest value over the members,
    while PSNR of the same cells keeps the minimum."""
    params = make_params(ATTACKS)
    lpips = {"pgd": [0.10, 0.40, 0.25], "apgd": [0.30, 0.20, 0.25], "square": [0.05, 0.35, 0.60],
             "pgd_l2": [0.99, 0.99, 0.99]}
    psnr = {"pgd": [10.0, 20.0, 15.0], "apgd": [12.0, 11.0, 15.5], "square": [30.0, 25.0, 14.0]}
    rows = worst_case_records(params, records_for(lpips, metric="lpips") + records_for(psnr))
    worst = {(r["metric"], r["image_id"]): r["value"] for r in rows}
    assert {i: worst[("lpips", i)] for i in ("img0", "img1", "img2")} == {"img0": 0.30, "img1": 0.40, "img2": 0.60}
    assert {i: worst[("psnr", i)] for i in ("img0", "img1", "img2")} == {"img0": 10.0, "img1": 11.0, "img2": 14.0}


def test_a_member_missing_images_is_refused():
    params = make_params(ATTACKS)
    rows = records_for({"pgd": [10.0, 20.0], "apgd": [12.0]})
    with pytest.raises(ValueError, match="attack 'apgd' scored 1 of 2 images"):
        worst_case_records(params, rows)


@pytest.mark.parametrize("apgd_probe, ensemble_converged", [([8.5, 12.0], False), ([9.0, 11.6], True)])
def test_convergence_flags_join_the_undefended_cells(tmp_path, apgd_probe, ensemble_converged):
    """Members carry their own flag; the worst case is checked as an ensemble on the probe images: APGD's
    longer rerun drops 0.25 or 0.2 dB (not converged either way), but in the second case the drop falls on
    an image whose worst case is another attack's, so the ensemble stays within 0.1 dB."""
    params = make_params([{"name": "pgd", "budgets": [8]}, {"name": "apgd", "budgets": [8]},
                          {"name": "fgsm", "budgets": [8]}])
    store = tmp_path / "adversarial.zarr"
    images = np.zeros((2, 3, 4, 4), dtype=np.float32)
    apgd_drop = 10.5 - sum(apgd_probe) / 2
    records = {"pgd": {"converged": True, "drop_db": 0.01, "probe_images": 2, "probe_psnr_per_image": [10.0, 10.98]},
               "apgd": {"converged": False, "drop_db": apgd_drop, "probe_images": 2, "probe_psnr_per_image": apgd_probe}}
    with write_store(store, {"stage": "attack"}) as w:
        for variant in ("base", "finetuned"):
            for attack in ("pgd", "apgd", "fgsm"):
                attrs = {"convergence": records[attack]} if attack in records else {}
                w.add_images(f"resunet_tiny/{variant}/{attack}/8", images, attrs=attrs)
    rows = records_for({"clean": [20.0, 21.0]}, budget=0)
    rows += records_for({"pgd": [10.0, 11.0], "apgd": [9.0, 12.0], "fgsm": [14.0, 13.0]})
    rows += records_for({"pgd": [15.0, 16.0]}, defense="purified")
    rows += worst_case_records(params, rows)
    summary = attach_convergence(params, store, means(rows), rows)
    cells = summary["resunet_tiny:base"]["none"]
    assert cells["pgd_8"]["converged"] is True and cells["pgd_8"]["convergence_drop_db"] == 0.01
    assert cells["apgd_8"]["converged"] is False
    assert "converged" not in cells["fgsm_8"]
    assert cells["worst_case_8"]["psnr"] == 10.0  # mean of min(10, 9, 14) and min(11, 12, 13)
    assert cells["worst_case_8"]["converged"] is ensemble_converged
    expected = 10.0 - (min(9.0, apgd_probe[0], 10.0) + min(11.0, apgd_probe[1], 10.98)) / 2
    assert cells["worst_case_8"]["convergence_drop_db"] == pytest.approx(expected, abs=1e-4)
    assert "converged" not in summary["resunet_tiny:base"]["purified"]["pgd_8"]
