"""The report's spread across training seeds: one row per restorer variant x defense x condition, the mean
over runs x images with the crossed bootstrap interval, each run's mean; nothing with a single seed."""

from __future__ import annotations

import numpy as np
import pytest

from udcshield.config import params_from_dict
from udcshield.pipeline.report_seeds import seed_spread, seed_spread_lines, seed_spread_section

IMAGES = [f"img/{i:02d}" for i in range(6)]


def _records(runs: dict[str, float], images: list[str] = IMAGES) -> list[dict]:
    """Clean and worst-case-at-8 PSNR rows for each run label (offset = the run's shift), variant base, no defense."""
    rng = np.random.default_rng(0)
    out = []
    for run, shift in runs.items():
        for image in images:
            clean = 25.0 + shift + float(rng.normal(0, 1))
            for attack, budget, value in (("clean", 0, clean), ("worst_case", 8, clean - 10.0)):
                out.append({"image_id": image, "model": f"{run}:base", "defense": "none", "attack": attack,
                            "budget": budget, "metric": "psnr", "value": value})
    return out


def _params(seeds: list[int]):
    return params_from_dict({"train": {"seeds": seeds}, "attack": {"models": ["base"]}})


def test_spread_over_three_seeds():
    records = _records({"resunet": 0.0, "resunet-seed1": 1.0, "resunet-seed2": 2.0})
    rows = seed_spread(_params([0, 1, 2]), records)
    assert [(r["condition"], r["defense"]) for r in rows] == [("clean", "none"), ("worst_case_8", "none")]
    clean = rows[0]
    assert clean["runs"] == ["resunet", "resunet-seed1", "resunet-seed2"] and clean["n_images"] == len(IMAGES)
    per_run = [np.mean([r["value"] for r in records if r["model"] == f"{run}:base" and r["attack"] == "clean"])
               for run in clean["runs"]]
    assert clean["seed_means"] == pytest.approx(per_run)
    assert clean["mean"] == pytest.approx(np.mean(per_run))
    assert clean["seed_std"] == pytest.approx(np.std(per_run, ddof=1))
    assert clean["ci"][0] < clean["mean"] < clean["ci"][1]
    assert rows[1]["mean"] == pytest.approx(clean["mean"] - 10.0)
    assert seed_spread(_params([0, 1, 2]), records) == rows  # seeded: the same interval again
    md = "\n".join(seed_spread_lines({"seed_spread": rows}))
    assert "## Across training seeds" in md and "resunet/base | none | worst case 8/256 | 3 |" in md
    assert seed_spread_section({"seed_spread": rows}) is not None


def test_one_seed_gives_no_section():
    records = _records({"resunet": 0.0})
    assert seed_spread(_params([0]), records) == []
    assert seed_spread_lines({"seed_spread": []}) == [] and seed_spread_section({"seed_spread": []}) is None


def test_runs_on_different_images_are_refused():
    records = _records({"resunet": 0.0}) + _records({"resunet-seed1": 1.0}, IMAGES[:5] + ["img/99"])
    with pytest.raises(ValueError, match="the runs scored different images"):
        seed_spread(_params([0, 1]), records)
