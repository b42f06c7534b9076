"""The ``evaluate``, ``report``, ``runner`` and ``accel`` sections."""

import pytest

from udcshield.config import ConfigError, params_from_dict


@pytest.mark.parametrize("raw, culprit", [
    ({"evaluate": {"metrics": ["ssim"]}}, "evaluate.metrics must include psnr"),
    ({"evaluate": {"metrics": ["lpips"]}}, "evaluate.metrics[0]"),
    ({"evaluate": {"metrics": ["psnr", "vif"]}}, "evaluate.metrics[1] must be one of ['psnr', 'ssim', 'lpips']"),
    ({"evaluate": {"metrics": ["psnr", "ssim", "lpips"]}},
     "evaluate.metrics[2] 'lpips' needs evaluate.lpips_weights_path"),
    ({"evaluate": {"metrics": ["psnr", "lpips"], "lpips_weights_path": " "}}, "evaluate.lpips_weights_path must be"),
    ({"report": {"grid_images": 0}}, "report.grid_images"),
    ({"report": {"grid_attack": "simba"}},
     "report.grid_attack 'simba' is not one of attack.attacks (pgd, apgd, square, fgsm, cw_l2)"),
    ({"evaluate": {"worst_case": ["pgd", "cw"]}},
     "evaluate.worst_case[1] 'cw' is not one of attack.attacks (pgd, apgd, square, fgsm, cw_l2)"),
    ({"evaluate": {"worst_case": []}}, "evaluate.worst_case must list distinct attacks"),
    ({"attack": {"convergence": {"probe_images": 0}}}, "attack.convergence.probe_images"),
    ({"attack": {"convergence": {"tolerance_db": -0.1}}}, "attack.convergence.tolerance_db"),
    ({"runner": {"address": "tcp://h:1"}}, "runner.address is set"),
    ({"runner": {"shard_cache": "  "}}, "runner.shard_cache"),
    ({"runner": {"n_workers": 0}}, "runner.n_workers"),
    ({"accel": {"amp": "fp16"}}, "accel.amp"),
    ({"accel": {"amp_tolerance_db": 0.0}}, "accel.amp_tolerance_db"),
])
def test_bad_runtime_params_name_the_culprit(raw, culprit):
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert culprit in str(info.value)


def test_grid_attack_and_dask_runner_are_accepted():
    p = params_from_dict({"report": {"grid_attack": "fgsm"}, "runner": {"kind": "dask", "address": "tcp://h:1"}})
    assert p.report.grid_attack == "fgsm" and p.runner.address == "tcp://h:1"


def test_lpips_is_an_opt_in_metric_with_local_weights():
    """The defaults stay PSNR and SSIM without LPIPS; with a path the schema accepts ``lpips`` (the file itself is
    checked by the evaluate preflight, before any work)."""
    default = params_from_dict({})
    assert default.evaluate.metrics == ("psnr", "ssim") and default.evaluate.lpips_weights_path is None
    p = params_from_dict({"evaluate": {"metrics": ["psnr", "ssim", "lpips"], "lpips_weights_path": "w/alex.safetensors"}})
    assert p.evaluate.metrics == ("psnr", "ssim", "lpips") and p.evaluate.lpips_weights_path == "w/alex.safetensors"
