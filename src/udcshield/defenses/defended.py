"""The defended system, purify → restore, as one module (DESIGN.md §5).

Song et al. (arXiv 2402.13629) defend UDC restorers by diffusion purification (Nie et al. 2022,
DiffPure) of the input followed by a restorer fine-tuned on purified images. Robustness claims need
adaptive attacks through the purifier (Athalye et al., ICML 2018; Nie et al. 2022 §4): this module
exposes the three gradient modes an evaluation needs and a reproducible per-call noise policy so that
EOT (expectation over transformation) sees fresh diffusion noise at every forward pass.

Noise policy
------------
Each forward pass is *draw* k = 0, 1, 2, … (a counter advanced by every call that does not pass an
explicit ``generator``). Image i of draw k gets its own generator
``generator_factory(seeds, k)[i]``, by default ``torch.Generator("cpu").manual_seed(
derive_seed(seeds[i], "defended/draw", k))``. So:

* two forward passes on the same batch use different noise (what EOT averages over);
* the sequence of draws is reproducible: ``set_seeds(seeds)`` rewinds to draw 0;
* an image's noise depends on its own seed, not on the batch it sits in.

Seeds come from :meth:`DefendedRestorer.set_seeds` (one int per image of the next batches); until
then, ``derive_seed(seed, "defended", position)`` for each batch position. ``forward(x,
generator=...)`` bypasses the policy (and does not advance the counter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from udcshield.defenses.bpda import bpda, gradient_blocked
from udcshield.defenses.ddim import check_eta, check_t_star, purify_ddim
from udcshield.defenses.guidance import REFERENCE_NOISE, SAMPLERS, check_guidance_scale, guided_purify
from udcshield.defenses.purifier import DiffusionPurifier, Generators, strided_timesteps
from udcshield.seeding import derive_seed

__all__ = ["DefendedRestorer", "GRADIENT_MODES", "GeneratorFactory", "default_generator_factory"]

GRADIENT_MODES: tuple[str, ...] = ("full", "bpda", "none")
GeneratorFactory = Callable[[Sequence[int], int], Sequence[torch.Generator]]


def default_generator_factory(seeds: Sequence[int], draw: int) -> list[torch.Generator]:
    """One CPU generator per image for forward pass ``draw``: seeded by derive_seed(seed_i, "defended/draw", draw).

    CPU generators give the same noise on every device (the purifier moves the draws).
    """
    return [torch.Generator(device="cpu").manual_seed(derive_seed(int(s), "defended/draw", draw)) for s in seeds]


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    if isinstance(seeds, torch.Tensor):
        seeds = seeds.tolist()
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**64:
            raise ValueError(f"seeds must be ints in [0, 2**64), got {s!r}")
    return list(seeds)


class DefendedRestorer(nn.Module):
    """Purify → restore (Nie et al. 2022; Song et al., arXiv 2402.13629) as one ``nn.Module``.

    ``forward(x) = restorer(purify(x))`` maps (B, 3, H, W) float32 in [0, 1] to the restorer's output
    (B, 3, H, W), nominally in [0, 1].

    Args:
        purifier: a trained :class:`DiffusionPurifier` (DDPM, Ho et al. 2020).
        restorer: image-to-image module, (B, 3, H, W) in [0, 1] → same shape.
        t_star: diffusion depth in [0, T] (0 = no purification, the restorer alone).
        num_steps: reverse-chain network evaluations (None = every step t*, …, 1).
        sampler: "ddpm" (:meth:`DiffusionPurifier.purify`) or "ddim" (Song, Meng, Ermon 2021;
            :func:`udcshield.defenses.ddim.purify_ddim`).
        eta: DDIM stochasticity in [0, 1] (0 = deterministic reverse chain); ignored by "ddpm".
        guidance_scale: GDMP input guidance (Wang et al. 2022; :mod:`udcshield.defenses.guidance`),
            0 = off.
        reference_noise: GDMP reference noise, "fresh" or "forward" (only used when guided).
        gradient: how gradients w.r.t. ``x`` pass the purifier:

            * "full": exact gradients through the whole reverse chain (memory grows with num_steps;
              use ``checkpoint=True`` to recompute UNet activations in the backward pass);
            * "bpda": forward purifies, backward treats purification as the identity (Athalye et al.
              2018), i.e. the restorer's gradient at the purified point; the purifier runs without a graph;
            * "none": the purifier runs without a graph, for non-adaptive evaluation only. Gradients
              still reach the restorer's parameters, but a backward pass that reaches ``x`` raises
              :class:`udcshield.defenses.bpda.BlockedGradientError` instead of yielding a silent zero.

            May be changed later by assigning ``defended.gradient``.
        checkpoint: gradient checkpointing of each UNet call in "full" mode (same gradients).
        clip_denoised: clip x̂0 to [-1, 1] in each reverse step.
        seed: base of the positional default seeds used before :meth:`set_seeds` is called.
        generator_factory: ``(seeds, draw) -> one generator per image``; default
            :func:`default_generator_factory`. See the module docstring for the noise policy.

    Counters: ``draws`` (forward passes under the policy since the last ``set_seeds``) and
    ``network_evaluations`` (batched UNet calls in forward passes, never reset by the module).
    """

    def __init__(
        self,
        purifier: DiffusionPurifier,
        restorer: nn.Module,
        *,
        t_star: int,
        num_steps: int | None = None,
        sampler: str = "ddpm",
        eta: float = 0.0,
        guidance_scale: float = 0.0,
        reference_noise: str = "fresh",
        gradient: str = "full",
        checkpoint: bool = False,
        clip_denoised: bool = True,
        seed: int = 0,
        generator_factory: GeneratorFactory | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(purifier, DiffusionPurifier):
            raise ValueError(f"purifier must be a DiffusionPurifier, got {type(purifier).__name__}")
        if not isinstance(restorer, nn.Module):
            raise ValueError(f"restorer must be a torch.nn.Module, got {type(restorer).__name__}")
        self.t_star = check_t_star(purifier, t_star)
        self.steps = strided_timesteps(t_star, num_steps) if t_star > 0 else []
        if t_star == 0 and num_steps not in (None, 0):
            raise ValueError(f"num_steps must be None when t_star=0, got {num_steps!r}")
        self.num_steps = num_steps
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        self.sampler = sampler
        self.eta = check_eta(eta)
        self.guidance_scale = check_guidance_scale(guidance_scale)
        if reference_noise not in REFERENCE_NOISE:
            raise ValueError(f"reference_noise must be one of {list(REFERENCE_NOISE)}, got {reference_noise!r}")
        self.reference_noise = reference_noise
        self.gradient = gradient
        self.checkpoint = bool(checkpoint)
        self.clip_denoised = bool(clip_denoised)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = seed
        if generator_factory is not None and not callable(generator_factory):
            raise ValueError(f"generator_factory must be callable, got {type(generator_factory).__name__}")
        self.generator_factory: GeneratorFactory = generator_factory or default_generator_factory
        self.purifier = purifier
        self.restorer = restorer
        self._seeds: list[int] | None = None
        self.draws = 0
        self.network_evaluations = 0

    # ---- configuration --------------------------------------------------------------------------
    @property
    def gradient(self) -> str:
        """Gradient mode: "full", "bpda" or "none" (see the class docstring)."""
        return self._gradient

    @gradient.setter
    def gradient(self, mode: str) -> None:
        if mode not in GRADIENT_MODES:
            raise ValueError(f"gradient must be one of {list(GRADIENT_MODES)}, got {mode!r}")
        self._gradient = mode

    @property
    def evaluations_per_forward(self) -> int:
        """Batched UNet calls per forward pass (len of the strided timesteps; 0 when t_star = 0)."""
        return len(self.steps)

    def extra_repr(self) -> str:
        return (f"t_star={self.t_star}, num_steps={self.num_steps}, sampler={self.sampler!r}, eta={self.eta}, "
                f"guidance_scale={self.guidance_scale}, gradient={self.gradient!r}, checkpoint={self.checkpoint}")

    # ---- noise policy ---------------------------------------------------------------------------
    def set_seeds(self, seeds: Sequence[int] | None, draw: int = 0) -> None:
        """Use one seed per image for the following forward passes, starting at draw ``draw``.

        ``None`` returns to the positional default seeds. Later batches must have len(seeds) images.
        """
        if isinstance(draw, bool) or not isinstance(draw, int) or draw < 0:
            raise ValueError(f"draw must be a non-negative int, got {draw!r}")
        self._seeds = None if seeds is None else _check_seeds(seeds)
        self.draws = draw

    def noise_state(self) -> dict[str, Any]:
        """The current seeds and draw counter (restore with :meth:`load_noise_state`)."""
        return {"seeds": None if self._seeds is None else list(self._seeds), "draws": self.draws}

    def load_noise_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`noise_state`."""
        self.set_seeds(state["seeds"], draw=state["draws"])

    def seeds_for(self, batch: int) -> list[int]:
        """Per-image seeds for a batch of ``batch`` images under the current policy."""
        if self._seeds is None:
            return [derive_seed(self.seed, "defended", i) for i in range(batch)]
        if len(self._seeds) != batch:
            raise ValueError(f"set_seeds gave {len(self._seeds)} seeds but the batch has {batch} images")
        return list(self._seeds)

    def next_generators(self, batch: int) -> list[torch.Generator]:
        """Generators (one per image) for the next draw; advances the draw counter."""
        gens = list(self.generator_factory(self.seeds_for(batch), self.draws))
        if len(gens) != batch or not all(isinstance(g, torch.Generator) for g in gens):
            raise ValueError(f"generator_factory must return {batch} torch.Generator objects, got {gens!r}")
        self.draws += 1
        return gens

    # ---- forward --------------------------------------------------------------------------------
    def _purify_fn(self, x: torch.Tensor, generator: Generators, checkpoint: bool) -> torch.Tensor:
        if self.guidance_scale > 0:
            return guided_purify(self.purifier, x, t_star=self.t_star, num_steps=self.num_steps,
                                 generator=generator, guidance_scale=self.guidance_scale, sampler=self.sampler,
                                 eta=self.eta, reference_noise=self.reference_noise,
                                 clip_denoised=self.clip_denoised, checkpoint=checkpoint)
        if self.sampler == "ddim":
            return purify_ddim(self.purifier, x, t_star=self.t_star, num_steps=self.num_steps, generator=generator,
                               eta=self.eta, clip_denoised=self.clip_denoised, checkpoint=checkpoint)
        return self.purifier.purify(x, t_star=self.t_star, num_steps=self.num_steps, generator=generator,
                                    clip_denoised=self.clip_denoised, checkpoint=checkpoint)

    def purify(self, x: torch.Tensor, generator: Generators | None = None) -> torch.Tensor:
        """Purified input (B, 3, H, W) in [0, 1], with this module's gradient mode applied.

        ``generator``: one generator or one per image; None draws from the noise policy (advancing it).
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DefendedRestorer input must be a (B, 3, H, W) tensor, got {got}")
        if generator is None:
            generator = self.next_generators(x.shape[0])
        self.network_evaluations += self.evaluations_per_forward
        if self.gradient == "full":
            return self._purify_fn(x, generator, self.checkpoint)
        fn = partial(self._purify_fn, generator=generator, checkpoint=False)
        if self.gradient == "bpda":
            return bpda(x, fn)
        return gradient_blocked(x, fn, "DefendedRestorer(gradient='none') has no gradient path through the "
                                       "purifier (non-adaptive evaluation); use gradient='full' or 'bpda' "
                                       "for adaptive attacks")

    def forward(self, x: torch.Tensor, generator: Generators | None = None) -> torch.Tensor:
        """restorer(purify(x)): (B, 3, H, W) float32 in [0, 1] → (B, 3, H, W) (see the class docstring)."""
        return self.restorer(self.purify(x, generator))
