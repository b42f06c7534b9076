"""udcshield.training: restorer training/fine-tuning, purifier training, paired augmentation.

All functions take explicit torch.Generators and a ``device`` argument; images are (N, 3, H, W) in [0, 1].
"""

from udcshield.training.augment import random_crop_flip_jitter
from udcshield.training.diffusion import train_purifier
from udcshield.training.restorer import cosine_lr, train_restorer

__all__ = ["cosine_lr", "random_crop_flip_jitter", "train_purifier", "train_restorer"]
