"""udcshield.defenses: diffusion purification of (attacked) UDC inputs.

Images are (B, 3, H, W) in [0, 1]; see :mod:`udcshield.defenses.purifier`.
"""

from udcshield.defenses.purifier import DiffusionPurifier, load_purifier, save_purifier, strided_timesteps

__all__ = ["DiffusionPurifier", "load_purifier", "save_purifier", "strided_timesteps"]
