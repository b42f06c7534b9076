import numpy as np
import pytest

from udcshield.physics.psf import compute_psf
from udcshield.physics.spectral import load_sensor_response, spectral_psf

OPTICS = dict(mask_kind="toled", pitch_um=168.0, open_ratio=0.238, focal_length_mm=4.67, f_number=2.0,
              sensor_pitch_um=2.0, support_px=41)


def test_narrow_responses_equal_the_rgb_psf():
    wavelengths = np.array([470.0, 530.0, 610.0])
    response = np.array([[0, 0, 1.0], [0, 1.0, 0], [1.0, 0, 0]])  # R, G, B rows
    np.testing.assert_allclose(spectral_psf(wavelengths, response, **OPTICS),
                               compute_psf(wavelengths_nm=(610.0, 530.0, 470.0), **OPTICS), atol=1e-12)


def test_broad_response_smears_the_orders_and_keeps_unit_sum():
    wavelengths = np.linspace(500.0, 560.0, 7)
    broad = spectral_psf(wavelengths, np.ones((1, 7)), **OPTICS)
    mono = compute_psf(wavelengths_nm=(530.0,), **OPTICS)
    np.testing.assert_allclose(broad.sum(axis=(1, 2)), 1.0, atol=1e-12)
    row = 20
    # second diffraction order (~2 * 7.4 px from the centre): blurred by the spread of wavelengths
    assert broad[0, row, 20 + 15] < mono[0, row, 20 + 15]
    assert broad[0, row, 20] == pytest.approx(mono[0, row, 20], rel=0.05)  # zero order barely moves


def test_response_csv_round_trip_and_errors(tmp_path):
    path = tmp_path / "resp.csv"
    path.write_text("wavelength_nm,r,g,b\n450,0,0.2,1\n550,0.1,1,0.1\n650,1,0.1,0\n")
    wl, resp = load_sensor_response(path)
    assert wl.tolist() == [450, 550, 650] and resp.shape == (3, 3)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_sensor_response(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("wavelength_nm,r\n450,1\n440,1\n")
    with pytest.raises(ValueError, match="increasing"):
        load_sensor_response(bad)
    neg = tmp_path / "neg.csv"
    neg.write_text("wavelength_nm,r\n450,-1\n460,1\n")
    with pytest.raises(ValueError, match=">= 0"):
        load_sensor_response(neg)
