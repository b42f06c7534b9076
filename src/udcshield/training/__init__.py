"""udcshield.training: restorer training/fine-tuning (purified, adversarial, TRADES, mixed), purifier
training, paired augmentation.

All functions take explicit torch.Generators and a ``device`` argument; images are (N, 3, H, W) in [0, 1].
"""

from udcshield.training.augment import random_crop_flip_jitter
from udcshield.training.diffusion import train_purifier
from udcshield.training.restorer import cosine_lr, train_restorer
from udcshield.training.robust import MODES, finetune_restorer, select_trainable

__all__ = ["MODES", "cosine_lr", "finetune_restorer", "random_crop_flip_jitter", "select_trainable",
           "train_purifier", "train_restorer"]
