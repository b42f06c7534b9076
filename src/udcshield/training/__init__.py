"""udcshield.training: restorer training/fine-tuning (purified, adversarial, TRADES, mixed), purifier
training, paired augmentation.

All functions take explicit torch.Generators and a ``device`` argument; images are (N, 3, H, W) in [0, 1].
Import from the modules (:mod:`~udcshield.training.restorer`, :mod:`~udcshield.training.robust`,
:mod:`~udcshield.training.diffusion`, :mod:`~udcshield.training.augment`, :mod:`~udcshield.training.gan`,
:mod:`~udcshield.training.perceptual`): this package imports none of them, so that a stage depends only on
the training code it uses (DVC deps follow imports).
"""
