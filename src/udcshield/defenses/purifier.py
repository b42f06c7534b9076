"""Diffusion purification (DiffPure) with a DDPM built from diffusers components.

A DDPM (Ho et al., NeurIPS 2020) is an ε-predicting ``diffusers.UNet2DModel`` plus the noise schedule of
a ``diffusers.DDPMScheduler``. Purification (Nie et al., "Diffusion Models for Adversarial
Purification", ICML 2022) diffuses the (possibly attacked) input to a moderate timestep t* and runs the
reverse chain back to 0, washing out small adversarial perturbations; Song et al. (arXiv 2402.13629)
then fine-tune UDC restorers on such purified inputs.

Value domains: the public API takes and returns tone-mapped images (B, 3, H, W) in [0, 1]; the DDPM
works in [-1, 1]. The mapping is done only by :meth:`DiffusionPurifier.to_model_space` and
:meth:`DiffusionPurifier.from_model_space`.

Timestep convention: t counts forward diffusion steps as in Ho et al., t ∈ {0, …, T}, with ᾱ_0 = 1 and
ᾱ_t = ∏_{s≤t} (1 − β_s). diffusers indexes the same noise levels as t − 1; the conversion happens only
in :meth:`DiffusionPurifier.predict_noise` and :meth:`DiffusionPurifier.training_loss`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from torch import nn

from udcshield.defenses.samplers import SamplerConfig, reverse_chain
from udcshield.defenses.schedule import Generators, _randn, check_steps, strided_timesteps
from udcshield.models.checkpoint import load_state_dict_strict, read_checkpoint_folder, write_checkpoint_folder
from udcshield.models.registry import check_image_batch, init_from_generator

if TYPE_CHECKING:
    from udcshield.accel import NoisePredictor

__all__ = ["DiffusionPurifier", "save_purifier", "load_purifier", "strided_timesteps", "check_steps"]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
PURIFIER_ARCHITECTURE = "ddpm_unet2d"


class DiffusionPurifier(nn.Module):
    """DDPM purifier: diffusers ``UNet2DModel`` (ε-prediction) + ``DDPMScheduler`` noise schedule.

    Ho et al. 2020 (DDPM), Nie et al. 2022 (DiffPure), Song et al. arXiv 2402.13629 (purification
    followed by restorer fine-tuning).

    Args:
        sample_size: nominal training crop side (stored in the UNet config; any H, W work).
        block_out_channels: UNet widths per resolution level; H and W are padded internally to a
            multiple of ``2 ** (len(block_out_channels) - 1)``.
        layers_per_block: ResNet layers per UNet block.
        attention: self-attention in the lowest-resolution down/up blocks and the middle block.
        num_train_timesteps: T.
        beta_schedule: one of "linear" (β from 1e-4 to 0.02, Ho et al.), "scaled_linear",
            "squaredcos_cap_v2", "sigmoid".
        generator: source of the initial weights (``None``: the global RNG, e.g. pinned by
            ``udcshield.seeding.seeded_init``); not saved, the weights are.

    How t* maps to noise (defaults: linear, T = 1000). x_t = √ᾱ·x + √(1−ᾱ)·ε in [-1, 1] space, i.e.
    Gaussian noise of std σ = √((1−ᾱ)/ᾱ) relative to the image, σ/2 in [0, 1] units::

        t*     ᾱ_t*     σ in [0,1] units
        10     0.9981   0.022  (≈  5.6/256)
        25     0.9916   0.046  (≈ 11.8/256)
        50     0.9710   0.086  (≈ 22/256)
        75     0.9391   0.127  (≈ 33/256)
        100    0.8970   0.169  (≈ 43/256)   DiffPure's CIFAR-10 choice (t* = 0.1 T)
        150    0.7883   0.259
        200    0.6590   0.360
        300    0.3964   0.617

    Song et al. purify with 50–100 steps. :meth:`alpha_bar` gives ᾱ_t for any configuration.
    """

    def __init__(
        self,
        sample_size: int = 32,
        block_out_channels: Sequence[int] = (32, 64),
        layers_per_block: int = 1,
        attention: bool = False,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        channels = tuple(block_out_channels)
        if not channels or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
            raise ValueError("block_out_channels must be a non-empty sequence of positive ints, "
                             f"got {block_out_channels!r}")
        for arg, value in (("sample_size", sample_size), ("layers_per_block", layers_per_block),
                           ("num_train_timesteps", num_train_timesteps)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"unknown beta_schedule {beta_schedule!r}; choose one of {list(BETA_SCHEDULES)}")
        self.init_kwargs: dict[str, Any] = {
            "sample_size": sample_size, "block_out_channels": list(channels), "layers_per_block": layers_per_block,
            "attention": bool(attention), "num_train_timesteps": num_train_timesteps, "beta_schedule": beta_schedule,
        }
        levels = len(channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        with init_from_generator(generator):
            self.unet = UNet2DModel(
                sample_size=sample_size, in_channels=3, out_channels=3, block_out_channels=channels,
                layers_per_block=layers_per_block, down_block_types=tuple(down), up_block_types=tuple(up),
                add_attention=bool(attention), norm_num_groups=math.gcd(32, *channels),
                attention_head_dim=8 if all(c % 8 == 0 for c in channels) else None,
            )
        self.scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                                       prediction_type="epsilon", variance_type="fixed_small", clip_sample=True)
        # ᾱ_t for t = 0..T in float64 (index 0 is the clean image); a constant of the config, not a buffer.
        self._alpha_bar = [1.0] + self.scheduler.alphas_cumprod.double().tolist()
        self.multiple = 2 ** (levels - 1)

    # ---- value domain: the only place where [0, 1] <-> [-1, 1] happens ----
    @staticmethod
    def to_model_space(x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) [0, 1] image → [-1, 1] DDPM space (Ho et al. 2020 scale data to [-1, 1])."""
        return x * 2.0 - 1.0

    @staticmethod
    def from_model_space(z: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) [-1, 1] DDPM space → [0, 1] image (not clamped); inverse of :meth:`to_model_space`."""
        return (z + 1.0) * 0.5

    @property
    def num_train_timesteps(self) -> int:
        """T, the number of diffusion steps of the DDPM (Ho et al. 2020 use T = 1000)."""
        return len(self._alpha_bar) - 1

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t = ∏_{s≤t}(1 − β_s) (Ho et al. 2020 notation; ᾱ_0 = 1), t ∈ [0, T]; a float in (0, 1]."""
        if not 0 <= t <= self.num_train_timesteps:
            raise ValueError(f"timestep {t} outside [0, {self.num_train_timesteps}]")
        return self._alpha_bar[t]

    def _check_device(self, x: torch.Tensor) -> None:
        param = next(self.unet.parameters())
        if param.device != x.device:
            raise ValueError(f"input is on {x.device} but the purifier is on {param.device}; call purifier.to(device)")

    def predict_noise(self, z_t: torch.Tensor, t: int | torch.Tensor,
                      runner: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """ε̂(z_t, t) (Ho et al. 2020 ε-parameterization): z_t (B, 3, H, W) in DDPM space, H and W
        multiples of ``self.multiple``; returns (B, 3, H, W), roughly unit-variance noise.

        ``t`` is an int or a (B,) integer tensor in [1, T] (Ho et al. convention). ``runner(z_t, t0)``,
        if given, executes the network instead of the plain UNet call (e.g. bf16 / compiled, see
        :func:`udcshield.accel.noise_predictor`); ``t0`` is the UNet's 0-based (B,) timestep index.
        """
        if isinstance(t, int):
            t = torch.full((z_t.shape[0],), t, dtype=torch.long, device=z_t.device)
        if runner is not None:
            return runner(z_t, t.to(z_t.device) - 1)
        return self.unet(z_t, t.to(z_t.device) - 1).sample

    def training_loss(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """DDPM simple loss (Ho et al. 2020, Eq. 14): E‖ε − ε̂(√ᾱ_t x0 + √(1−ᾱ_t) ε, t)‖², t ~ U{1..T}
        (x0 in [-1, 1] space).

        ``x0``: (B, 3, H, W) clean images in [0, 1], H and W multiples of ``self.multiple``.
        Returns a scalar tensor. Draw order: timesteps, then noise.
        """
        check_image_batch(x0, "x0", finite=False)
        if x0.shape[-2] % self.multiple or x0.shape[-1] % self.multiple:
            raise ValueError(f"training crops must be multiples of {self.multiple}, got {tuple(x0.shape[-2:])}")
        self._check_device(x0)
        batch = x0.shape[0]
        t = torch.randint(1, self.num_train_timesteps + 1, (batch,), generator=generator, device=generator.device)
        noise = _randn(tuple(x0.shape), generator, x0)
        alpha_bar = torch.tensor(self._alpha_bar, dtype=torch.float64)[t.cpu()]
        alpha_bar = alpha_bar.to(x0.device, x0.dtype).view(-1, 1, 1, 1)
        z_t = alpha_bar.sqrt() * self.to_model_space(x0) + (1.0 - alpha_bar).sqrt() * noise
        return F.mse_loss(self.predict_noise(z_t, t.to(x0.device)), noise)

    def reverse_step(self, z_t: torch.Tensor, eps: torch.Tensor, t: int, s: int, generator: Generators,
                     clip_denoised: bool = True) -> torch.Tensor:
        """One DDPM posterior step z_t → z_s (s < t, possibly non-adjacent; Ho et al. Eq. 6–7).

        With a_ts = ᾱ_t/ᾱ_s and b_ts = 1 − a_ts: x̂0 = (z_t − √(1−ᾱ_t) ε̂)/√ᾱ_t (clipped to [-1, 1]
        if ``clip_denoised``), mean = √ᾱ_s b_ts/(1−ᾱ_t) x̂0 + √a_ts (1−ᾱ_s)/(1−ᾱ_t) z_t,
        variance = (1−ᾱ_s)/(1−ᾱ_t) b_ts; no noise is added when s = 0.
        """
        if not 0 <= s < t <= self.num_train_timesteps:
            raise ValueError(f"reverse_step needs 0 <= s < t <= {self.num_train_timesteps}, got t={t}, s={s}")
        abar_t, abar_s = self._alpha_bar[t], self._alpha_bar[s]
        a_ts = abar_t / abar_s
        b_ts = 1.0 - a_ts
        x0_hat = (z_t - math.sqrt(1.0 - abar_t) * eps) / math.sqrt(abar_t)
        if clip_denoised:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        mean = (math.sqrt(abar_s) * b_ts / (1.0 - abar_t)) * x0_hat \
            + (math.sqrt(a_ts) * (1.0 - abar_s) / (1.0 - abar_t)) * z_t
        if s == 0:
            return mean
        variance = max((1.0 - abar_s) / (1.0 - abar_t) * b_ts, 1e-20)
        return mean + math.sqrt(variance) * _randn(tuple(z_t.shape), generator, z_t)

    def purify(
        self,
        x: torch.Tensor,
        *,
        t_star: int,
        num_steps: int | None = None,
        generator: Generators,
        clip_denoised: bool = True,
        checkpoint: bool = False,
        noise_predictor: NoisePredictor | None = None,
    ) -> torch.Tensor:
        """DiffPure (Nie et al. 2022): diffuse ``x`` to t*, then run the DDPM reverse chain to 0.

        A thin wrapper of :func:`udcshield.defenses.samplers.reverse_chain` with a "ddpm"
        :class:`~udcshield.defenses.samplers.SamplerConfig`.

        Args:
            x: (B, 3, H, W) images in [0, 1], any H, W (padded internally, cropped back).
            t_star: diffusion depth in [0, T] (see the class docstring for its noise level). 0 returns
                a copy of ``x`` (no noise, no network call).
            num_steps: network evaluations; None = every step t*, …, 1; fewer = an evenly strided
                subset (:func:`strided_timesteps`) with the exact DDPM posterior between them.
            generator: one generator, or one per image (per-image seeds); draw order is the forward
                noise, then one noise draw per reverse step except the last. Noise is drawn on the
                generator's device and moved to ``x``'s (a CPU generator gives the same result on any
                device; a CUDA generator avoids the copy).
            clip_denoised: clip x̂0 to [-1, 1] in each step (as DDPM sampling does).
            checkpoint: recompute UNet activations in the backward pass (saves memory when an
                adaptive attack differentiates through the chain; same values and gradients).
            noise_predictor: execute the network through this callable (see
                :func:`udcshield.accel.accelerate_purifier`); None = the plain UNet.

        Returns:
            (B, 3, H, W) purified images clamped to [0, 1]. Grad mode is left to the caller: under
            ``torch.enable_grad`` gradients flow to ``x`` (nothing is detached).
        """
        config = SamplerConfig(kind="ddpm", t_star=t_star, num_steps=num_steps, clip_denoised=bool(clip_denoised))
        return reverse_chain(self, x, config, generator, checkpoint=checkpoint, noise_predictor=noise_predictor)

    def forward(self, x: torch.Tensor, *, t_star: int, num_steps: int | None = None, generator: Generators,
                clip_denoised: bool = True, checkpoint: bool = False,
                noise_predictor: NoisePredictor | None = None) -> torch.Tensor:
        """Alias of :meth:`purify` (Nie et al. 2022) so the purifier composes as a module:
        (B, 3, H, W) in [0, 1] → (B, 3, H, W) in [0, 1]."""
        return self.purify(x, t_star=t_star, num_steps=num_steps, generator=generator,
                           clip_denoised=clip_denoised, checkpoint=checkpoint, noise_predictor=noise_predictor)


def save_purifier(purifier: DiffusionPurifier, directory: str | os.PathLike[str],
                  extra: dict[str, Any] | None = None) -> None:
    """Save a DDPM purifier (Ho et al. 2020; used as in Nie et al. 2022) as ``config.json`` +
    ``model.safetensors``, atomically, in the folder format of :mod:`udcshield.models.checkpoint`
    (``config.json`` records the SHA-256 of the written weights, checked by :func:`load_purifier`)."""
    if not isinstance(purifier, DiffusionPurifier):
        raise TypeError(f"expected a DiffusionPurifier, got {type(purifier).__name__}")
    write_checkpoint_folder(directory, kind="purifier", architecture=PURIFIER_ARCHITECTURE,
                            kwargs=purifier.init_kwargs, state_dict=purifier.state_dict(), extra=extra)


def load_purifier(directory: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> DiffusionPurifier:
    """Load a DDPM purifier (Ho et al. 2020) saved by :func:`save_purifier`; eval mode, on ``device``.

    Same checks and errors as :func:`udcshield.models.checkpoint.load_checkpoint` (missing folder/files,
    pickle instead of safetensors, unknown architecture, weights that do not fit, and the weights'
    SHA-256 verified against the ``"weights_sha256"`` in ``config.json`` before use: altered or swapped
    weights, or a ``config.json`` recording no digest, are refused).
    """
    config, state_dict = read_checkpoint_folder(directory, kind="purifier", device="cpu")
    if config["architecture"] != PURIFIER_ARCHITECTURE:
        raise ValueError(f"checkpoint {directory} uses unknown purifier architecture {config['architecture']!r}; "
                         f"available: {PURIFIER_ARCHITECTURE}")
    kwargs = dict(config["kwargs"])
    if "block_out_channels" in kwargs:
        kwargs["block_out_channels"] = tuple(kwargs["block_out_channels"])
    try:
        purifier = DiffusionPurifier(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {directory}: cannot build the purifier from its kwargs: {err}") from None
    load_state_dict_strict(purifier, state_dict, str(Path(directory) / "model.safetensors"))
    return purifier.to(device).eval()
