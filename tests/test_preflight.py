"""Registry-aware checks of params (restorer and attack names, their kwargs, finetune.trainable)."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from torch import nn

import udcshield.preflight as preflight_package
from tests.pipeline_fixtures import tiny_params
from udcshield.attacks import registry as attack_registry
from udcshield.attacks.fgsm import FGSM
from udcshield.cli import main
from udcshield.config import SECTIONS, ConfigError, load_params, params_from_dict
from udcshield.models import registry as restorer_registry
from udcshield.preflight import (
    CHECKED_SECTIONS,
    load_checked,
    preflight,
    section_module,
)

ROOT = Path(__file__).resolve().parents[1]


def _raises(raw: dict, match: str, sections=None) -> None:
    params = params_from_dict(raw)  # the pure schema accepts it ...
    with pytest.raises(ConfigError, match=match):  # ... the registries do not
        preflight(params, sections)


def _attack(*specs: dict) -> dict:
    return {"attack": {"attacks": list(specs)}, "sweep": {"attack": specs[0]["name"]}}


def test_repository_and_tiny_params_pass():
    preflight(load_params(ROOT / "params.yaml"))
    preflight(params_from_dict(tiny_params()))
    assert load_checked(ROOT / "params.yaml") == load_params(ROOT / "params.yaml")
    assert set(CHECKED_SECTIONS) == {"simulate", "train", "purifier", "finetune", "attack", "evaluate"}
    assert set(CHECKED_SECTIONS) <= set(SECTIONS)


# ------------------------------------------------------------------------------------------------ train
def test_unknown_restorer():
    _raises({"train": {"models": [{"name": "resunet"}, {"name": "mystery_net"}]}},
            r"train.models\[1\].name 'mystery_net' is not a registered restorer \(available: .*resunet")


def test_restorer_kwargs_must_be_accepted_by_its_constructor():
    _raises({"train": {"models": [{"name": "resunet", "kwargs": {"widht": 8}}]}},
            r"train.models\[0\].kwargs.widht: restorer 'resunet': .*widht.*; accepted arguments: \[.*base_channels")
    _raises({"train": {"models": [{"name": "resunet", "kwargs": {"size": "huge"}}]}},
            r"train.models\[0\].kwargs.size: unknown size 'huge'")
    _raises({"train": {"models": [{"name": "resunet", "kwargs": {"generator": 1}}]}},
            r"train.models\[0\].kwargs.generator is set by the stages")
    preflight(params_from_dict({"train": {"models": [{"name": "resunet", "kwargs": {"size": "tiny"}}]}}))


def test_newly_registered_restorer_is_accepted(monkeypatch):
    class Width(nn.Module):
        def __init__(self, width: int = 2) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

    monkeypatch.setitem(restorer_registry._RESTORERS, "width_net", Width)
    preflight(params_from_dict({"train": {"models": [{"name": "width_net", "kwargs": {"width": 4}}]},
                                "finetune": {"trainable": ["conv"]}}))


# ------------------------------------------------------------------------------------------------ finetune
def test_trainable_prefixes_must_match_every_restorer():
    _raises({"finetune": {"trainable": ["decoders", "decoder", "neck"]}},
            r"finetune.trainable: prefixes \['decoder', 'neck'\] match no parameter of restorer 'resunet' "
            r"\(its top-level parameter groups: bottleneck, decoders, downs, encoders, fuses, head, tail, ups\)")
    preflight(params_from_dict({"finetune": {"trainable": ["decoders", "tail"]}}))


def test_restorer_values_are_checked_by_building_it():
    _raises({"train": {"models": [{"name": "resunet", "kwargs": {"depth": -1}}]}},
            r"train.models\[0\].kwargs.depth \(\{'depth': -1\}\): restorer 'resunet' refuses them: ResUNet: depth must")
    _raises({"train": {"models": [{"name": "srudc", "kwargs": {"heads": 5}}]}},
            r"train.models\[0\].kwargs.heads .*not divisible by heads 5")


@pytest.mark.parametrize("section", ["train", "purifier", "finetune"])
def test_training_crops_fit_the_patches(section):
    _raises({"simulate": {"patch_size": 16}}, rf"{section}.crop_size \(\d+\) exceeds simulate.patch_size \(16\): "
                                               r".*crop_size must be in \[1, 16\]", sections=[section])


def test_trainable_check_names_a_bad_restorer_first():
    _raises({"train": {"models": [{"name": "mystery_net"}]}, "finetune": {"trainable": ["tail"]}},
            r"train.models\[0\].name 'mystery_net'", sections=["finetune"])


# ------------------------------------------------------------------------------------------------ attack
def test_unknown_attack():
    _raises(_attack({"name": "deepfool"}),
            r"attack.attacks\[0\].name 'deepfool' is not a registered attack \(available: apgd, apgd_l2, bim, cw, .*, universal\)")


def test_unknown_attack_kwarg_is_rejected_before_work():
    _raises(_attack({"name": "simba", "kwargs": {"max_querys": 3}}),
            r"attack.attacks\[0\].kwargs.max_querys is not a parameter of attack 'simba' that params may set "
            r"\(allowed: .*max_queries")
    _raises(_attack({"name": "pgd"}, {"name": "square", "kwargs": {"eps": 0.1}}),
            r"attack.attacks\[1\].kwargs.eps .*eps comes from budgets")
    _raises(_attack({"name": "pgd", "kwargs": {"objective": "l1"}}), r"attack.attacks\[0\].kwargs.objective")


def test_universal_is_a_function_with_its_own_parameters():
    preflight(params_from_dict(_attack({"name": "universal", "kwargs": {"steps": 3, "lr": 0.01, "batch_size": 4}})))
    _raises(_attack({"name": "universal", "kwargs": {"max_queries": 3}}),
            r"attack.attacks\[0\].kwargs.max_queries is not a parameter of attack 'universal'.*batch_size, lr, steps")


def test_newly_registered_attack_is_accepted(monkeypatch):
    class Gentle(FGSM):  # explicit parameters: create_attack passes only names the signature lists
        def __init__(self, model, eps: float = 0.03, softness: float = 1.0, objective: str = "mse",
                     reference: str = "target", seed: int = 0) -> None:
            if softness <= 0:
                raise ValueError(f"softness must be > 0, got {softness}")
            super().__init__(model, eps, objective=objective, reference=reference, seed=seed)

    monkeypatch.setitem(attack_registry._REGISTRY, "gentle", Gentle)
    preflight(params_from_dict(_attack({"name": "gentle", "budgets": [8], "kwargs": {"softness": 0.5}})))
    _raises(_attack({"name": "gentle", "kwargs": {"hardness": 0.5}}), r"attack.attacks\[0\].kwargs.hardness")
    _raises(_attack({"name": "gentle", "kwargs": {"softness": -1.0}}),
            r"attack.attacks\[0\].kwargs.softness \(\{'softness': -1.0\}\): attack 'gentle' refuses them: "
            r"softness must be > 0")


def test_attack_values_are_checked_by_building_the_attack():
    _raises(_attack({"name": "pgd", "kwargs": {"steps": 0}}),
            r"attack.attacks\[0\].kwargs.steps \(\{'steps': 0\}\): attack 'pgd' refuses them: steps must be an int")
    _raises(_attack({"name": "pgd", "kwargs": {"restarts": 3, "random_start": False}}),
            r"attack.attacks\[0\].kwargs.restarts .*requires random_start=True")
    _raises(_attack({"name": "lpips_pgd", "kwargs": {}}), r"attack.attacks\[0\].kwargs .*lpips is required")
    _raises(_attack({"name": "universal", "kwargs": {"lr": 0.0}}), r"attack.attacks\[0\].kwargs.lr .*lr must be")
    preflight(params_from_dict(_attack({"name": "pgd", "kwargs": {"steps": 2, "random_start": False}})))


def test_attack_needs_images_large_enough():
    raw = {**_attack({"name": "lpips_pgd", "kwargs": {"lpips": "absent.safetensors"}}),
           "simulate": {"patch_size": 16}}
    _raises(raw, r"attack.attacks\[0\].name 'lpips_pgd' needs images of at least 31 x 31 pixels, but "
                 r"simulate.patch_size is 16", sections=["attack"])
    raw["simulate"]["patch_size"] = 32
    _raises(raw, r"attack.attacks\[0\].kwargs.lpips .*LPIPS weights not found", sections=["attack"])


# ------------------------------------------------------------------------------------------------ simulate
def test_open_ratio_within_the_layout():
    _raises({"simulate": {"optics": {"mask": "circle", "open_ratio": 0.9}}},
            r"simulate.optics.open_ratio \(0.9\) exceeds the 'circle' layout's maximum 0.7854")
    preflight(params_from_dict({"simulate": {"optics": {"mask": "circle", "open_ratio": 0.78}}}))


def test_psf_fft_within_the_memory_guard():
    _raises({"simulate": {"optics": {"open_ratio": 0.02}}},
            r"simulate.optics \(mask 'toled', open_ratio 0.02.*needs an FFT of \d+ > 4096")
    spectral = {"simulate": {"optics": {"open_ratio": 0.02, "spectral_response_path": "r.csv"}}}
    preflight(params_from_dict(spectral))  # the response file's wavelengths decide; the stage reads it


@pytest.mark.parametrize("optics", [{"open_ratio": 0.03}, {"mask": "circle", "open_ratio": 0.01}, {"mask": "poled"},
                                    {"mask": "open", "oversample": 60}, {"support_px": 101, "f_number": 4.0}])
def test_predicted_fft_side_is_the_simulators(optics):
    """preflight.simulate mirrors compute_psf's sampling rule: its FFT side is the one compute_psf needs."""
    from udcshield.config import OpticsConfig
    from udcshield.physics.psf import compute_psf
    from udcshield.preflight.simulate import psf_fft_sides

    o = OpticsConfig(**optics)
    side = max(n for _, n in psf_fft_sides(o))
    with pytest.raises(ValueError, match=rf"needs an FFT of {side} > max_fft={side - 1}"):
        compute_psf(mask_kind=o.mask, pitch_um=o.pitch_um, open_ratio=o.open_ratio, focal_length_mm=o.focal_length_mm,
                    f_number=o.f_number, wavelengths_nm=o.wavelengths_nm, sensor_pitch_um=o.sensor_pitch_um,
                    support_px=o.support_px, oversample=o.oversample, max_fft=side - 1)


def test_embedded_photos_are_bundled_photos_or_paths():
    _raises({"simulate": {"test_photos": ["chelsea", "rockett"]}},
            r"simulate.test_photos\[1\] 'rockett' is neither a bundled photo \(one of .*chelsea")
    preflight(params_from_dict({"simulate": {"test_photos": ["photos/cat.png"]}}))
    preflight(params_from_dict({"simulate": {"source": "folder", "dataset_root": "d", "test_photos": ["x"]}}))


def test_ssim_needs_patches_of_its_window():
    _raises({"simulate": {"patch_size": 8}}, r"evaluate.metrics\[1\] 'ssim' needs images of at least 11 x 11",
            sections=["evaluate"])
    preflight(params_from_dict({"simulate": {"patch_size": 8}, "evaluate": {"metrics": ["psnr"]}}), ["evaluate"])


def _lpips_weights(path: Path) -> Path:
    """A randomly initialised LPIPS-AlexNet saved as the safetensors file LPIPS.from_file reads."""
    from safetensors.torch import save_file

    from udcshield.attacks.lpips import LPIPS

    save_file({k: v.contiguous() for k, v in LPIPS.random_for_tests(seed=0).state_dict().items()}, str(path))
    return path


def test_the_lpips_metric_needs_a_readable_weights_file_before_work(tmp_path):
    lpips = {"metrics": ["psnr", "ssim", "lpips"]}
    missing = tmp_path / "nowhere" / "alex.safetensors"
    _raises({"evaluate": {**lpips, "lpips_weights_path": str(missing)}},
            rf"^evaluate.lpips_weights_path \('{re.escape(str(missing))}'\): LPIPS weights not found at "
            rf"'{re.escape(str(missing))}'",
            sections=["evaluate"])
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    _raises({"evaluate": {**lpips, "lpips_weights_path": str(broken)}},
            r"^evaluate.lpips_weights_path .*is not a readable safetensors file", sections=["evaluate"])
    good = _lpips_weights(tmp_path / "alex.safetensors")
    preflight(params_from_dict({"evaluate": {**lpips, "lpips_weights_path": str(good)}}), ["evaluate"])
    preflight(params_from_dict({"evaluate": {"lpips_weights_path": str(missing)}}), ["evaluate"])  # lpips not listed
    _raises({"simulate": {"patch_size": 16}, "evaluate": {**lpips, "lpips_weights_path": str(good)}},
            r"evaluate.metrics\[2\] 'lpips' needs images of at least 31 x 31", sections=["evaluate"])


# ------------------------------------------------------------------------------------------------ sections
def test_sections_select_the_checks():
    params = params_from_dict({**_attack({"name": "deepfool"}), "train": {"models": [{"name": "mystery_net"}]}})
    preflight(params, ["simulate", "purify", "report"])
    preflight(params, [])
    with pytest.raises(ConfigError, match=r"attack.attacks\[0\].name"):
        preflight(params, ["attack"])
    with pytest.raises(ConfigError, match=r"attack.attacks\[0\].name"):
        preflight(params, "attack")
    with pytest.raises(ConfigError, match=r"train.models\[0\].name"):
        preflight(params)  # all sections, in params.yaml order: train before attack
    with pytest.raises(ConfigError, match="preflight: unknown params section.*atack"):
        preflight(params, ["atack"])


def test_load_checked_prefixes_the_path(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(_attack({"name": "deepfool"})))
    with pytest.raises(ConfigError, match=rf"^{path}: attack.attacks\[0\].name 'deepfool'"):
        load_checked(path)
    assert load_checked(path, ["train"]).attack.attacks[0].name == "deepfool"
    with pytest.raises(ConfigError, match="not found"):
        load_checked(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------------------------------ callers
def test_cli_validate_runs_the_full_preflight_and_run_the_stage_one(tmp_path, capsys):
    raw = tiny_params()
    raw["attack"]["attacks"][1]["kwargs"] = {"stepz": 2}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", "--params", str(path)]) == 2
    assert "attack.attacks[1].kwargs.stepz" in capsys.readouterr().err
    assert main(["run", "attack", "--params", str(path), "--data", str(tmp_path / "data")]) == 2
    assert "attack.attacks[1].kwargs.stepz" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()



# ------------------------------------------------------------------------------------------------ layout
def test_each_checked_section_has_its_own_module():
    assert section_module("train") == "udcshield.preflight.train"
    assert section_module("simulate") == "udcshield.preflight.simulate"
    assert section_module("purify") == "udcshield.preflight"
    for name in CHECKED_SECTIONS:
        assert callable(importlib.import_module(section_module(name)).check)
    with pytest.raises(ConfigError, match="unknown params section 'atack'"):
        section_module("atack")


def test_the_dispatcher_imports_only_the_schema():
    """A stage's import closure reaches the registries only through the sections it checks."""
    tree = ast.parse(Path(preflight_package.__file__).read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in modules if m.startswith("udcshield")} == {"udcshield.config"}
    code = ("import sys, udcshield.preflight; "
            "print(sorted(m for m in sys.modules if m in ('torch', 'udcshield.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
