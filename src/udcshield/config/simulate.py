"""The ``simulate`` section: where the paired data comes from, and the display optics that blur it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

from udcshield.config.base import ConfigError, non_negative, option, positive

__all__ = ["FormationConfig", "HdrConfig", "OpticsConfig", "SimulateConfig", "check_distinct_photos"]


def check_distinct_photos(photos: tuple[str, ...], where: str) -> None:
    """ConfigError naming ``where[i]`` when two photos of a split share an image id (the name or file stem)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(photos):
        key = PurePath(name).stem
        if key in seen:
            raise ConfigError(f"{where}[{i}] ({name!r}) repeats {where}[{seen[key]}] ({photos[seen[key]]!r}): "
                              f"image ids come from the photo name or file stem ({key!r}), which must be distinct")
        seen[key] = i


@dataclass(frozen=True)
class OpticsConfig:
    """Display mask and lens of the diffraction PSF: see :func:`udcshield.physics.psf.compute_psf`."""

    mask: Literal["toled", "poled", "circle", "open", "user"] = option(
        "toled", "Display pixel layout in front of the lens; `user` reads `user_mask_path`.")
    user_mask_path: str | None = option(
        None, "PNG of one unit cell of the display (white = open); required exactly when `mask` is `user`.")
    pitch_um: float = option(168.0, "Display pixel pitch (side of one unit cell), in micrometres.")
    open_ratio: float = option(
        0.238, "Open fraction of the unit cell, in (0, 1] (T-OLED: one stripe, about 5/21 of the cell).")
    focal_length_mm: float = option(4.67, "Focal length of the camera lens, in millimetres.")
    f_number: float = option(2.0, "f-number of the lens (focal length / aperture diameter).")
    wavelengths_nm: tuple[float, ...] = option(
        (610.0, 530.0, 470.0), "Peak wavelengths of the R, G, B channels, in nanometres (three values).")
    spectral_response_path: str | None = option(
        None, "CSV `wavelength_nm,r,g,b` of the sensor response; PSFs are then integrated over it instead "
              "of taken at `wavelengths_nm`.")
    sensor_pitch_um: float = option(2.0, "Sensor pixel pitch, in micrometres.")
    support_px: int = option(41, "Side of the PSF kernel in sensor pixels; odd and >= 3 (PSF centred on a pixel), "
                                 "large enough to hold the second diffraction orders of red.")
    oversample: int = option(4, "Fine PSF samples per sensor pixel (raised per wavelength when needed).")
    random_tile_flip: bool = option(False, "Random (seeded) per-cell flips of the display layout.")
    bank_size: int = option(9, "PSFs in the bank: the centre PSF plus warped variants (9 as in DISCNet, "
                               "Feng et al. 2021).")

    def validate(self, where: str) -> None:
        positive(self, where, "pitch_um", "focal_length_mm", "f_number", "sensor_pitch_um", "support_px",
                 "oversample", "bank_size")
        if not 0.0 < self.open_ratio <= 1.0:
            raise ConfigError(f"{where}.open_ratio must be in (0, 1], got {self.open_ratio}")
        if self.support_px % 2 != 1:
            raise ConfigError(f"{where}.support_px must be odd (PSF centred on a pixel), got {self.support_px}")
        if self.support_px < 3:
            raise ConfigError(f"{where}.support_px ({self.support_px}) must be an odd integer >= 3 (the PSF kernel "
                              "side in sensor pixels)")
        if (self.mask == "user") != (self.user_mask_path is not None):
            raise ConfigError(f"{where}.user_mask_path must be set exactly when {where}.mask is 'user' "
                              f"(mask={self.mask!r}, user_mask_path={self.user_mask_path!r})")
        if len(self.wavelengths_nm) != 3 or any(w <= 0 for w in self.wavelengths_nm):
            raise ConfigError(f"{where}.wavelengths_nm must be three positive numbers (R, G, B), "
                              f"got {list(self.wavelengths_nm)}")


@dataclass(frozen=True)
class HdrConfig:
    """Pseudo-HDR scene synthesis from LDR photos: see :func:`udcshield.physics.hdr.pseudo_hdr`."""

    highlight_threshold: float = option(
        0.95, "Channel maximum in (0, 1) above which pixels are ramped up as highlights (hue kept).")
    highlight_gain: float = option(20.0, "Radiance gain (>= 1) of the brightest highlights (smoothstep ramp from 1).")
    n_light_sources: int = option(2, "Synthetic light sources (anti-aliased discs) added per scene (>= 0).")
    light_gain_range: tuple[float, float] = option(
        (8.0, 100.0), "[low, high] of the light sources' peak radiance (log-uniform), 0 < low <= high.")
    light_radius_px: tuple[float, float] = option(
        (1.0, 3.0), "[low, high] radius of the synthetic light sources in pixels, 0 < low <= high.")

    def validate(self, where: str) -> None:
        if not 0.0 < self.highlight_threshold < 1.0:
            raise ConfigError(f"{where}.highlight_threshold ({self.highlight_threshold}) must be in (0, 1): pixels "
                              "between it and 1 are ramped up")
        if not self.highlight_gain >= 1.0:
            raise ConfigError(f"{where}.highlight_gain ({self.highlight_gain}) must be >= 1 (a gain of the "
                              "highlights, 1 = none)")
        non_negative(self, where, "n_light_sources")
        for name in ("light_gain_range", "light_radius_px"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"{where}.{name} must satisfy 0 < low <= high, got {[lo, hi]}")


@dataclass(frozen=True)
class FormationConfig:
    """Image formation y = clip(x * k * transmission + noise, 0, saturation), DISCNet convention."""

    saturation: float = option(500.0, "Clipping level of the degraded radiance (DISCNet-compatible: 500).")
    transmission: float = option(1.0, "Light transmission of the display, in (0, 1].")
    noise: Literal["none", "poisson_gaussian"] = option(
        "none", "`none`, or `poisson_gaussian` (shot noise plus Gaussian read noise).")
    full_well_e: float = option(15500.0, "Electrons at radiance `white_level` (`poisson_gaussian` only).")
    read_noise_e: float = option(4.9, "Read-noise standard deviation in electrons (`poisson_gaussian` only).")
    white_level: float = option(1.0, "Radiance that maps to `full_well_e` electrons (`poisson_gaussian` only).")
    knee: float = option(0.25, "Tone-mapping knee k of v / (v + k), applied to both input and target.")

    def validate(self, where: str) -> None:
        positive(self, where, "saturation", "knee", "full_well_e", "white_level")
        non_negative(self, where, "read_noise_e")
        if not 0.0 < self.transmission <= 1.0:
            raise ConfigError(f"{where}.transmission must be in (0, 1], got {self.transmission}")


@dataclass(frozen=True)
class SimulateConfig:
    """Where the paired data comes from.

    ``source``: ``embedded`` (photos bundled with scikit-image, or image paths, listed in train_photos /
    test_photos) and ``folder`` (every PNG/JPEG/TIFF photo in ``dataset_root/train`` and
    ``dataset_root/test``) are simulated: pseudo-HDR -> display-diffraction PSF -> pairs. ``discnet_synth``,
    ``mipi``, ``zhou_toled`` and ``zhou_poled`` read the paired dataset of that layout under
    ``dataset_root`` (see :func:`udcshield.data.datasets.load_dataset`).
    """

    source: Literal["embedded", "folder", "discnet_synth", "mipi", "zhou_toled", "zhou_poled"] = option(
        "embedded", "`embedded` or `folder` photos are simulated; `discnet_synth`, `mipi`, `zhou_toled` and "
                    "`zhou_poled` read that paired dataset under `dataset_root`.")
    dataset_root: str | None = option(None, "Dataset folder; required for every source but `embedded`.")
    max_images: int | None = option(None, "Real datasets: use only the first N pairs per split (null = all).")
    train_photos: tuple[str, ...] = option(
        ("astronaut", "coffee", "hubble_deep_field", "immunohistochemistry", "retina"),
        "`embedded` source: scikit-image photo names or image paths of the training split.")
    test_photos: tuple[str, ...] = option(
        ("chelsea", "rocket"), "`embedded` source: photos of the test split (the split is by source photo).")
    patch_size: int = option(64, "Side of the square patches cropped from each simulated image, in pixels.")
    train_patches_per_image: int = option(48, "Patches cropped from each training image.")
    test_patches_per_image: int = option(16, "Patches cropped from each test image.")
    scale: float = option(0.5, "Downscaling of the photos before cropping, in (0, 1], so patches hold more scene.")
    optics: OpticsConfig = option(factory=OpticsConfig, doc="Display mask and lens of the PSF.")
    hdr: HdrConfig = option(factory=HdrConfig, doc="Pseudo-HDR synthesis from the LDR photos.")
    formation: FormationConfig = option(factory=FormationConfig, doc="Image formation and noise.")

    def validate(self, where: str) -> None:
        positive(self, where, "patch_size", "train_patches_per_image", "test_patches_per_image")
        if not 0.0 < self.scale <= 1.0:
            raise ConfigError(f"{where}.scale ({self.scale}) must be in (0, 1]: photos are only ever downscaled")
        if not self.train_photos or not self.test_photos:
            raise ConfigError(f"{where}: train_photos and test_photos must both be non-empty")
        for split in ("train_photos", "test_photos"):
            check_distinct_photos(getattr(self, split), f"{where}.{split}")
        if self.source != "embedded" and not self.dataset_root:
            raise ConfigError(f"{where}.dataset_root is required when {where}.source is {self.source!r}")
        if self.max_images is not None and self.max_images <= 0:
            raise ConfigError(f"{where}.max_images must be positive or null, got {self.max_images}")
        overlap = set(self.train_photos) & set(self.test_photos)
        if overlap:
            raise ConfigError(f"{where}: photos {sorted(overlap)} are in both train_photos and test_photos; "
                              "the split is by source image")
        self.optics.validate(f"{where}.optics")
        self.hdr.validate(f"{where}.hdr")
        self.formation.validate(f"{where}.formation")
