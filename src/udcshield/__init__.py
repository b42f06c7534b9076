"""udcshield: adversarial robustness of under-display-camera (UDC) image restoration.

Reproduces and extends Song et al., "Adversarial Purification and Fine-tuning for Robust UDC Image
Restoration" (arXiv 2402.13629; Sensors 25(11):3386, 2025).

Value domains: simulation runs in linear HDR radiance; everything a network, an attacker or a purifier
sees is the tone-mapped image in [0, 1], shaped B x 3 x H x W, float32.
"""

__version__ = "0.1.0"
