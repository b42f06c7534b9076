"""udcshield.physics: display masks, diffraction PSFs and their PCA codes, pseudo-HDR scenes, image formation,
tone mapping."""

from udcshield.physics.formation import NOISE_KINDS, blur, blur_adjoint, degrade
from udcshield.physics.hdr import pseudo_hdr
from udcshield.physics.masks import MASK_KINDS, display_mask, load_user_mask, max_open_ratio, narrowest_feature_um
from udcshield.physics.psf import compute_psf, display_tint, psf_bank, transmission_factor
from udcshield.physics.psf_codes import psf_pca_codes
from udcshield.physics.tonemap import inverse_tonemap, linear_to_srgb, srgb_to_linear, tonemap

__all__ = [
    "MASK_KINDS",
    "NOISE_KINDS",
    "blur",
    "blur_adjoint",
    "compute_psf",
    "degrade",
    "display_mask",
    "display_tint",
    "inverse_tonemap",
    "linear_to_srgb",
    "load_user_mask",
    "max_open_ratio",
    "narrowest_feature_um",
    "psf_bank",
    "psf_pca_codes",
    "pseudo_hdr",
    "srgb_to_linear",
    "tonemap",
    "transmission_factor",
]
