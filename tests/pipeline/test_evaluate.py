"""The evaluate stage's scoring: the identity "restorer" (the raw UDC input) beside the restorers, in records.csv
and metrics.json, and LPIPS from a local weights file."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage.metrics import structural_similarity
from torch import nn

from tests.pipeline.report_layout import build_layout, report_params
from udcshield.attacks.lpips import LPIPS
from udcshield.evaluation.records import read_records_csv
from udcshield.evaluation.statistics import bootstrap_ci, cell_seed
from udcshield.pipeline import evaluate
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import INPUT_MODEL
from udcshield.pipeline.summary import means
from udcshield.store.zarr_io import read_images, store_attrs, write_store

CPU = torch.device("cpu")
CONVERGENCE_KEYS = {"converged", "convergence_drop_db"}


def psnr_8bit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """PSNR (dB) per image of (N, 3, H, W) arrays in [0, 1], written out in numpy: clamp, round to 8 bit, RGB."""
    a, b = (np.round(np.clip(v.astype(np.float64), 0, 1) * 255) for v in (x, y))
    return 10 * np.log10(255.0 ** 2 / ((a - b) ** 2).reshape(len(a), -1).mean(axis=1))


def ssim_8bit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM per image by skimage (Gaussian window 1.5, population covariances) on the 8-bit images."""
    a, b = (np.round(np.clip(v.astype(np.float64), 0, 1) * 255) for v in (x, y))
    return np.array([structural_similarity(p, q, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=255, channel_axis=0) for p, q in zip(a, b)])


def lpips_weights(path: Path, seed: int = 0) -> LPIPS:
    """Save a randomly initialised LPIPS-AlexNet as the safetensors file LPIPS.from_file reads; return it."""
    net = LPIPS.random_for_tests(seed=seed)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return net


def pairs(n: int = 3, side: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(inputs, targets, ids): targets in [0.1, 0.9], inputs a dimmed, noisy copy that leaves [0, 1] here and there."""
    g = torch.Generator().manual_seed(seed)
    targets = 0.1 + 0.8 * torch.rand(n, 3, side, side, generator=g)
    inputs = 0.7 * targets + 0.1 + 0.2 * torch.randn(n, 3, side, side, generator=g)
    return inputs, targets, [f"img/{i:03d}" for i in range(n)]


# ------------------------------------------------------------------------------------------ the input rows
def test_input_records_are_the_metrics_of_the_raw_inputs():
    params = report_params()
    inputs, targets, ids = pairs()
    rows = evaluate.input_records(params, inputs, targets, ids)
    assert len(rows) == 2 * len(ids)
    assert {(r["model"], r["defense"], r["attack"], r["budget"]) for r in rows} == {(INPUT_MODEL, "none", "clean", 0)}
    got = {m: [r["value"] for r in rows if r["metric"] == m] for m in ("psnr", "ssim")}
    assert [r["image_id"] for r in rows if r["metric"] == "psnr"] == ids
    np.testing.assert_allclose(got["psnr"], psnr_8bit(inputs.numpy(), targets.numpy()), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["ssim"], ssim_8bit(inputs.numpy(), targets.numpy()), rtol=0, atol=1e-6)
    assert 5.0 < min(got["psnr"]) < max(got["psnr"]) < 30.0


def test_the_identity_restorer_scores_like_the_input_rows(tmp_path):
    """A restorer that returns its input scores exactly the input rows on the clean cell (same functions, same
    convention), LPIPS included."""
    inputs, targets, ids = pairs()
    layout = Layout(tmp_path / "data")
    with write_store(layout.test_store, {"image_ids": ids, "split": "test"}) as w:
        w.add_images("inputs", inputs.numpy())
        w.add_images("targets", targets.numpy())
    path = tmp_path / "alex.safetensors"
    lpips_weights(path)
    params = report_params(evaluate={"metrics": ["psnr", "ssim", "lpips"], "lpips_weights_path": str(path)})
    net = evaluate.lpips_network(params.evaluate, CPU)
    cell = evaluate.cell_records(params, layout, nn.Identity(), ("resunet_tiny/base", "none", "clean", 0), targets,
                                 ids, CPU, net)
    baseline = evaluate.input_records(params, inputs, targets, ids, net)
    assert [(r["image_id"], r["metric"], r["value"]) for r in cell] == \
           [(r["image_id"], r["metric"], r["value"]) for r in baseline]
    assert {r["metric"] for r in baseline} == {"psnr", "ssim", "lpips"}


# ------------------------------------------------------------------------------------------ LPIPS
def test_lpips_is_scored_from_the_local_weights_file(tmp_path):
    path = tmp_path / "alex.safetensors"
    reference = lpips_weights(path, seed=2)
    inputs, targets, _ = pairs(n=4)
    cfg = report_params(evaluate={"metrics": ["psnr", "ssim", "lpips"], "lpips_weights_path": str(path)}).evaluate
    net = evaluate.lpips_network(cfg, CPU)
    assert isinstance(net, LPIPS) and net.source == str(path)
    one = evaluate.score_outputs(inputs, targets, cfg.metrics, 1, net)
    four = evaluate.score_outputs(inputs, targets, cfg.metrics, 4, net)
    q = [torch.round(t.clamp(0, 1) * 255) / 255 for t in (inputs, targets)]
    want = reference(*q).double()
    torch.testing.assert_close(one["lpips"], want)
    torch.testing.assert_close(four["lpips"], want)  # batches of 1 or 4 give the same distances
    assert one["lpips"].dtype == torch.float64 and bool((one["lpips"] > 0).all())
    assert torch.equal(one["psnr"], torch.as_tensor(psnr_8bit(inputs.numpy(), targets.numpy())))
    assert evaluate.lpips_network(report_params(evaluate={"lpips_weights_path": str(path)}).evaluate, CPU) is None


def test_scoring_lpips_without_its_network_or_an_unknown_metric_is_refused():
    inputs, targets, _ = pairs(n=1)
    with pytest.raises(ValueError, match="metric 'lpips' needs an LPIPS network: set evaluate.lpips_weights_path"):
        evaluate.score_outputs(inputs, targets, ("psnr", "lpips"), 2)
    with pytest.raises(ValueError, match="unknown metric 'vif' \\(known: psnr, ssim, lpips\\)"):
        evaluate.score_outputs(inputs, targets, ("psnr", "vif"), 2)
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        evaluate.lpips_network(report_params(evaluate={"metrics": ["psnr", "lpips"],
                                                       "lpips_weights_path": "absent.safetensors"}).evaluate, CPU)


# ------------------------------------------------------------------------------------------ the stage outputs
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    params, layout, _ = build_layout(tmp_path_factory.mktemp("evaluate"))
    return params, layout


def test_metrics_json_has_the_input_block_with_its_interval(built):
    params, layout = built
    metrics = json.loads(layout.metrics.read_text())
    block = metrics[INPUT_MODEL]
    assert set(block) == {"none"} and set(block["none"]) == {"clean"}
    cell = block["none"]["clean"]
    assert set(cell) == {"psnr", "psnr_ci_low", "psnr_ci_high", "ssim", "ssim_ci_low", "ssim_ci_high"}
    ids = store_attrs(layout.test_store)["image_ids"]
    x, y = read_images(layout.test_store, "inputs"), read_images(layout.test_store, "targets")
    for metric, per_image in (("psnr", psnr_8bit(x, y)), ("ssim", ssim_8bit(x, y))):
        order = np.argsort(ids)
        assert cell[metric] == pytest.approx(per_image.mean(), abs=1e-4)
        low, high = bootstrap_ci(per_image[order], cell_seed(params.seed, f"{INPUT_MODEL}|none|clean|{metric}"))
        assert (cell[f"{metric}_ci_low"], cell[f"{metric}_ci_high"]) == pytest.approx((low, high), abs=1e-4)
        assert cell[f"{metric}_ci_low"] < cell[metric] < cell[f"{metric}_ci_high"]
    assert math.isclose(cell["psnr"], 22.47, abs_tol=0.05)  # the layout's dimmed inputs


def test_the_restorers_rows_and_means_are_those_of_a_run_without_the_input(built):
    """The input rows come last in records.csv; every other row, and every restorer cell of metrics.json,
    is what the stage wrote before the input joined (the means of the other rows alone)."""
    params, layout = built
    records = read_records_csv(layout.records)
    n = len(store_attrs(layout.test_store)["image_ids"])
    tail = records[-2 * n:]
    assert all(r["model"] == INPUT_MODEL for r in tail)
    rest = records[:-2 * n]
    assert all(r["model"] != INPUT_MODEL for r in rest)
    metrics = json.loads(layout.metrics.read_text())
    alone = means(rest, params.seed)
    assert set(metrics) == set(alone) | {INPUT_MODEL}
    for model, by_defense in alone.items():
        for defense, by_cond in by_defense.items():
            for cond, cell in by_cond.items():
                written = metrics[model][defense][cond]
                assert {k: v for k, v in written.items() if k not in CONVERGENCE_KEYS} == cell
