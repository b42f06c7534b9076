"""The ``simulate`` section: sources, photos, optics, HDR and formation checks."""

import pytest

from udcshield.config import ConfigError, OpticsConfig, SimulateConfig, params_from_dict


@pytest.mark.parametrize("raw, culprit", [
    ({"simulate": {"optics": {"support_px": 32}}}, "simulate.optics.support_px must be odd"),
    ({"simulate": {"optics": {"open_ratio": 0.0}}}, "simulate.optics.open_ratio"),
    ({"simulate": {"optics": {"mask": "user"}}}, "simulate.optics.user_mask_path must be set"),
    ({"simulate": {"optics": {"user_mask_path": "m.png"}}}, "simulate.optics.user_mask_path must be set"),
    ({"simulate": {"optics": {"wavelengths_nm": [500.0, 600.0]}}}, "simulate.optics.wavelengths_nm"),
    ({"simulate": {"optics": {"mask": "hexagon"}}}, "simulate.optics.mask must be one of"),
    ({"simulate": {"hdr": {"light_gain_range": [10.0, 5.0]}}}, "simulate.hdr.light_gain_range"),
    ({"simulate": {"hdr": {"light_radius_px": [1.0]}}}, "simulate.hdr.light_radius_px must have 2 entries"),
    ({"simulate": {"formation": {"transmission": 1.5}}}, "simulate.formation.transmission"),
    ({"simulate": {"formation": {"read_noise_e": -1.0}}}, "simulate.formation.read_noise_e"),
    ({"simulate": {"test_photos": ["astronaut"]}}, "astronaut"),
    ({"simulate": {"test_photos": []}}, "non-empty"),
    ({"simulate": {"source": "mipi"}}, "simulate.dataset_root is required"),
    ({"simulate": {"max_images": 0}}, "simulate.max_images"),
    ({"simulate": {"scale": 0}}, "simulate.scale"),
    ({"simulate": {"scale": 1.5}}, "simulate.scale (1.5) must be in (0, 1]"),
    ({"simulate": {"optics": {"support_px": 1}}}, "simulate.optics.support_px (1) must be an odd integer >= 3"),
    ({"simulate": {"hdr": {"highlight_threshold": 1.0}}}, "simulate.hdr.highlight_threshold (1.0) must be in (0, 1)"),
    ({"simulate": {"hdr": {"highlight_gain": 0.5}}}, "simulate.hdr.highlight_gain (0.5) must be >= 1"),
    ({"simulate": {"train_photos": ["astronaut", "x/astronaut.png"]}},
     "simulate.train_photos[1] ('x/astronaut.png') repeats simulate.train_photos[0] ('astronaut')"),
])
def test_bad_simulate_params_name_the_culprit(raw, culprit):
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert culprit in str(info.value)


def test_user_mask_and_real_datasets_are_accepted():
    p = params_from_dict({"simulate": {"source": "zhou_poled", "dataset_root": "/data/zhou", "max_images": 4,
                                       "optics": {"mask": "user", "user_mask_path": "cell.png"}}})
    assert p.simulate.optics == OpticsConfig(mask="user", user_mask_path="cell.png")
    assert isinstance(p.simulate, SimulateConfig) and p.simulate.max_images == 4
