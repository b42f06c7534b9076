"""The defended system, purify → restore, as one module.

Song et al. (arXiv 2402.13629) defend UDC restorers by diffusion purification (Nie et al. 2022,
DiffPure) of the input followed by a restorer fine-tuned on purified images. Robustness claims need
adaptive attacks through the purifier (Athalye et al., ICML 2018; Nie et al. 2022 §4): a purification
defense is only credible against attacks that see it. This module exposes the three gradient modes an
evaluation needs, and takes the diffusion noise of every forward pass as an explicit argument so that
EOT (expectation over transformation) can ask for fresh, reproducible noise at each pass.

Noise
-----
The module keeps no noise state; ``forward(x, noise)`` takes one of:

* ``NoiseDraw(seeds, draw)``: image i gets its own generator ``generator_factory(seeds, draw)[i]``, by
  default ``torch.Generator("cpu").manual_seed(derive_seed(seeds[i], "defended/draw", draw))``. So
  different draws k = 0, 1, 2, … give different noise (what EOT averages over), the same
  (seeds, draw) gives the same noise, and an image's noise depends on its own seed, not on the batch
  it sits in;
* one ``torch.Generator`` or one per image, used as they are;
* nothing (None): the documented deterministic default, ``NoiseDraw`` of the positional seeds
  ``derive_seed(seed, "defended", i)`` for batch positions i, draw 0 -- the same noise on every call.
  Loops that need fresh noise per pass (:class:`udcshield.defenses.adaptive.AdaptivePGD`,
  :func:`udcshield.defenses.eot.eot_loss_grad`) pass their draws explicitly; :class:`DrawSequence`
  hands out consecutive draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from udcshield.defenses.bpda import bpda, gradient_blocked
from udcshield.defenses.purifier import DiffusionPurifier
from udcshield.defenses.samplers import SamplerConfig, reverse_chain
from udcshield.defenses.schedule import Generators, check_t_star
from udcshield.seeding import derive_seed

__all__ = ["DefendedRestorer", "GRADIENT_MODES", "GeneratorFactory", "NoiseDraw", "DrawSequence",
           "default_generator_factory"]

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


@dataclass(frozen=True)
class NoiseDraw:
    """The purification noise of one forward pass: per-image seeds and the index of the draw.

    Attributes:
        seeds: one int in [0, 2**64) per image of the batch (stored as a tuple).
        draw: non-negative int; draw k of the same seeds is the k-th independent noise sample (EOT,
            Athalye et al. 2018, averages over draws 0, 1, …).
    """

    seeds: tuple[int, ...]
    draw: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(_check_seeds(self.seeds)))
        if isinstance(self.draw, bool) or not isinstance(self.draw, int) or self.draw < 0:
            raise ValueError(f"draw must be a non-negative int, got {self.draw!r}")


class DrawSequence(Iterator[NoiseDraw]):
    """Consecutive draws ``NoiseDraw(seeds, start)``, ``NoiseDraw(seeds, start + 1)``, … for one loop.

    A caller-owned iterator (e.g. one per :class:`udcshield.defenses.adaptive.AdaptivePGD` call) so that
    each forward pass of the loop sees fresh noise in a reproducible order; ``used`` is the number of
    draws handed out so far.
    """

    def __init__(self, seeds: Sequence[int], start: int = 0) -> None:
        self._first = NoiseDraw(tuple(_check_seeds(seeds)), start)
        self.used = 0

    @property
    def seeds(self) -> tuple[int, ...]:
        """The per-image seeds of every draw."""
        return self._first.seeds

    def __next__(self) -> NoiseDraw:
        draw = NoiseDraw(self._first.seeds, self._first.draw + self.used)
        self.used += 1
        return draw


Noise = NoiseDraw | torch.Generator | Sequence[torch.Generator]


class DefendedRestorer(nn.Module):
    """Purify → restore (Nie et al. 2022; Song et al., arXiv 2402.13629) as one ``nn.Module``.

    ``forward(x, noise) = restorer(purify(x))`` maps (B, 3, H, W) float32 in [0, 1] to the restorer's
    output (B, 3, H, W), nominally in [0, 1]. The module holds no state besides its configuration and
    its two networks: a forward pass is a function of ``x``, ``noise`` and the weights.

    Args:
        purifier: a trained :class:`DiffusionPurifier` (DDPM, Ho et al. 2020).
        restorer: image-to-image module, (B, 3, H, W) in [0, 1] → same shape.
        t_star: diffusion depth in [0, T] (0 = no purification, the restorer alone).
        num_steps: reverse-chain network evaluations (None = every step t*, …, 1).
        sampler: "ddpm" (Ho et al. 2020) or "ddim" (Song, Meng, Ermon 2021).
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
        seed: base of the positional default seeds used when a forward pass is given no noise.
        generator_factory: ``(seeds, draw) -> one generator per image`` turning a :class:`NoiseDraw`
            into generators; default :func:`default_generator_factory`. See the module docstring.

    The reverse chain is ``sampler_config`` (a :class:`udcshield.defenses.samplers.SamplerConfig`, run
    by :func:`udcshield.defenses.samplers.reverse_chain`); ``t_star``, ``num_steps``, ``sampler``,
    ``eta``, ``guidance_scale``, ``reference_noise`` and ``clip_denoised`` read its fields. The cost of
    one forward pass is :attr:`evaluations_per_forward` batched UNet calls; callers that report a cost
    count their forward passes (as :class:`udcshield.defenses.adaptive.AdaptivePGD` does).
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
        check_t_star(purifier, t_star)
        self.sampler_config = SamplerConfig(kind=sampler, t_star=t_star, num_steps=num_steps, eta=eta,
                                            guidance_scale=guidance_scale, reference_noise=reference_noise,
                                            clip_denoised=bool(clip_denoised))
        self.gradient = gradient
        self.checkpoint = bool(checkpoint)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = seed
        if generator_factory is not None and not callable(generator_factory):
            raise ValueError(f"generator_factory must be callable, got {type(generator_factory).__name__}")
        self.generator_factory: GeneratorFactory = generator_factory or default_generator_factory
        self.purifier = purifier
        self.restorer = restorer

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
    def t_star(self) -> int:
        """Diffusion depth t* of the reverse chain."""
        return self.sampler_config.t_star

    @property
    def num_steps(self) -> int | None:
        """Network evaluations of the reverse chain (None = every step)."""
        return self.sampler_config.num_steps

    @property
    def sampler(self) -> str:
        """Reverse-chain kind, "ddpm" or "ddim"."""
        return self.sampler_config.kind

    @property
    def eta(self) -> float:
        """DDIM stochasticity (Song et al. 2021)."""
        return self.sampler_config.eta

    @property
    def guidance_scale(self) -> float:
        """GDMP guidance strength (Wang et al. 2022); 0 = unguided."""
        return self.sampler_config.guidance_scale

    @property
    def reference_noise(self) -> str:
        """GDMP reference noise, "fresh" or "forward"."""
        return self.sampler_config.reference_noise

    @property
    def clip_denoised(self) -> bool:
        """Whether x̂0 is clipped to [-1, 1] in each reverse step."""
        return self.sampler_config.clip_denoised

    @property
    def steps(self) -> list[int]:
        """Descending timesteps where the reverse chain evaluates the UNet ([] when t_star = 0)."""
        return self.sampler_config.timesteps

    @property
    def evaluations_per_forward(self) -> int:
        """Batched UNet calls per forward pass (len of the strided timesteps; 0 when t_star = 0)."""
        return self.sampler_config.evaluations

    def extra_repr(self) -> str:
        return (f"t_star={self.t_star}, num_steps={self.num_steps}, sampler={self.sampler!r}, eta={self.eta}, "
                f"guidance_scale={self.guidance_scale}, gradient={self.gradient!r}, checkpoint={self.checkpoint}")

    # ---- noise ----------------------------------------------------------------------------------
    def default_noise(self, batch: int) -> NoiseDraw:
        """The noise of a forward pass given none: positional seeds derive_seed(seed, "defended", i), draw 0."""
        return NoiseDraw(tuple(derive_seed(self.seed, "defended", i) for i in range(batch)), 0)

    def generators(self, noise: NoiseDraw) -> list[torch.Generator]:
        """One generator per image for ``noise``, from the generator factory (checked)."""
        if not isinstance(noise, NoiseDraw):
            raise ValueError(f"noise must be a NoiseDraw, got {type(noise).__name__}")
        gens = list(self.generator_factory(noise.seeds, noise.draw))
        if len(gens) != len(noise.seeds) or not all(isinstance(g, torch.Generator) for g in gens):
            raise ValueError(f"generator_factory must return {len(noise.seeds)} torch.Generator objects, got {gens!r}")
        return gens

    def _generators_for(self, noise: Noise | None, batch: int) -> Generators:
        if noise is None:
            noise = self.default_noise(batch)
        if isinstance(noise, NoiseDraw):
            if len(noise.seeds) != batch:
                raise ValueError(f"the NoiseDraw has {len(noise.seeds)} seeds but the batch has {batch} images")
            return self.generators(noise)
        if isinstance(noise, torch.Generator):
            return noise
        if isinstance(noise, Sequence) and not isinstance(noise, (str, bytes)) \
                and all(isinstance(g, torch.Generator) for g in noise):
            return list(noise)
        raise ValueError("noise must be a NoiseDraw, a torch.Generator, a sequence of generators or None, "
                         f"got {type(noise).__name__}")

    # ---- forward --------------------------------------------------------------------------------
    def _purify_fn(self, x: torch.Tensor, generator: Generators, checkpoint: bool) -> torch.Tensor:
        return reverse_chain(self.purifier, x, self.sampler_config, generator, checkpoint=checkpoint)

    def purify(self, x: torch.Tensor, noise: Noise | None = None) -> torch.Tensor:
        """Purified input (B, 3, H, W) in [0, 1], with this module's gradient mode applied.

        ``noise``: a :class:`NoiseDraw`, one generator or one per image, or None for the deterministic
        default (see the module docstring).
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DefendedRestorer input must be a (B, 3, H, W) tensor, got {got}")
        generator = self._generators_for(noise, x.shape[0])
        if self.gradient == "full":
            return self._purify_fn(x, generator, self.checkpoint)
        fn = partial(self._purify_fn, generator=generator, checkpoint=False)
        if self.gradient == "bpda":
            return bpda(x, fn)
        return gradient_blocked(x, fn, "DefendedRestorer(gradient='none') has no gradient path through the "
                                       "purifier (non-adaptive evaluation); use gradient='full' or 'bpda' "
                                       "for adaptive attacks")

    def forward(self, x: torch.Tensor, noise: Noise | None = None) -> torch.Tensor:
        """restorer(purify(x, noise)): (B, 3, H, W) float32 in [0, 1] → (B, 3, H, W) (see the class docstring)."""
        return self.restorer(self.purify(x, noise))
