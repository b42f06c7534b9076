"""udcshield.data: scene sources and paired UDC simulation."""

from udcshield.data.simulate import SimulatedSplit, simulate_split
from udcshield.data.sources import EMBEDDED_PHOTOS, extract_patches, load_photo, load_photo_file, rescale_image

__all__ = [
    "EMBEDDED_PHOTOS",
    "SimulatedSplit",
    "extract_patches",
    "load_photo",
    "load_photo_file",
    "rescale_image",
    "simulate_split",
]
