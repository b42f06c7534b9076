"""Image-to-image attack base speaking torchattacks' interface (without depending on torchattacks).

White-box attacks on UDC restorers (Song et al., arXiv 2402.13629) perturb the tone-mapped input
(B x 3 x H x W, float32, in [0, 1]) within an L-infinity ball of radius eps to maximize the distortion
of the restored output (Goodfellow et al. 2015; Madry et al. 2018). Usage mirrors torchattacks::

    atk = PGD(model, eps=budget_to_linf(8))   # 8/256 (udcshield.attacks.budget)
    adv = atk(inputs, targets, seeds=[...])   # targets: ground truth, B x 3 x H x W
    atk.last_cost                              # {"iterations", "forward_backward", "forward_only", "seconds"}
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from udcshield.attacks.budget import check_threat_model
from udcshield.attacks.iterates import BestIterate
from udcshield.attacks.objectives import check_objective, distortion
from udcshield.seeding import derive_seed

REFERENCES: tuple[str, ...] = ("target", "clean_output")


def check_eps(eps: float, name: str = "eps") -> float:
    """Return ``eps`` as a float if it is a finite number in [0, 1] (image domain), else raise ValueError."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise ValueError(f"{name} must be a finite number, got {eps!r}")
    if eps < 0 or eps > 1:
        raise ValueError(f"{name} must lie in [0, 1] (image domain, e.g. 8/256), got {eps!r}")
    return float(eps)


def check_images(images: torch.Tensor, name: str = "inputs") -> torch.Tensor:
    """Validate a batch of images: 4-D (B x C x H x W), float32/float64, finite, values in [0, 1].

    Returns the tensor unchanged; raises ValueError naming ``name`` otherwise.
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"{name} must have shape B x C x H x W with B >= 1, got {tuple(images.shape)}")
    if images.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if bool((images < 0).any()) or bool((images > 1).any()):
        lo, hi = float(images.min()), float(images.max())
        raise ValueError(f"{name} must lie in [0, 1] (tone-mapped domain), got range [{lo}, {hi}]")
    return images


def representable_budget(eps: float, dtype: torch.dtype = torch.float32) -> float:
    """Largest value of ``dtype`` that is <= eps, so a check ``|adv - x| <= eps`` holds in any precision."""
    e = torch.tensor(eps, dtype=dtype)
    if float(e) > eps:
        e = torch.nextafter(e, torch.zeros_like(e))
    return float(e)


def check_projection_pair(adv: torch.Tensor, x: torch.Tensor) -> None:
    """ValueError unless ``x`` is a valid image batch in [0, 1] and ``adv`` a finite tensor of its shape."""
    check_images(x, "x")
    if not isinstance(adv, torch.Tensor) or adv.shape != x.shape:
        shape = tuple(adv.shape) if isinstance(adv, torch.Tensor) else type(adv).__name__
        raise ValueError(f"adv must be a tensor of shape {tuple(x.shape)}, got {shape}")
    if not bool(torch.isfinite(adv).all()):
        raise ValueError("adv contains NaN or infinite values")


def project_linf(adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``adv`` onto {a : max|a - x| <= eps, 0 <= a <= 1}, exactly in floating point.

    Clamping to ``x +- eps`` rounds, so a few elements may end one ulp outside the ball; those are moved
    toward ``x`` with ``torch.nextafter`` until the exact difference is within the largest representable
    budget <= eps. Afterwards ``(adv - x).abs().max() <= eps`` holds in float32 and in float64, and
    adv lies in [0, 1] (Madry et al. 2018 projection; budgets as in Song et al., arXiv 2402.13629).

    Args:
        adv: candidate adversarial images, B x C x H x W (any finite values).
        x: clean images, same shape, float32 or float64, in [0, 1].
        eps: L-infinity radius in the image domain, in [0, 1].

    Returns:
        A new detached tensor of x's dtype and shape.
    """
    eps = check_eps(eps)
    check_projection_pair(adv, x)
    x = x.detach()
    bound = representable_budget(eps, x.dtype)
    lo = (x - bound).clamp(min=0.0)
    hi = (x + bound).clamp(max=1.0)
    out = torch.minimum(torch.maximum(adv.detach().to(x.dtype), lo), hi)
    x64 = x.double()
    for _ in range(8):
        bad = (out.double() - x64).abs() > bound
        if not bool(bad.any()):
            return out
        out = torch.where(bad, torch.nextafter(out, x), out)
    return torch.where(bad, x, out)  # safety net; not reached in practice


class ImageAttack:
    """Base class for image-to-image (restoration) attacks with torchattacks' calling interface.

    Subclasses implement ``_attack(x, ref, seeds) -> adv``; this class validates inputs, builds the
    reference (ground truth or the clean output), projects the result exactly onto the budget
    (:func:`project_linf`), records the cost in ``last_cost`` and restores every submodule's
    train/eval flag, even when the attack raises. Model parameters are never modified: gradients are
    taken with ``torch.autograd.grad`` with respect to the input only.

    The interface is torchattacks' (Kim, "Torchattacks: A PyTorch Repository for Adversarial Attacks",
    arXiv 2010.01950): ``atk = PGD(model, eps=...)``, ``adv = atk(inputs, targets)``, ``set_device``,
    ``set_model``, ``set_model_training_mode``, ``set_normalization_used``, ``get_logits``, ``get_mode``
    and a ``repr`` listing the settings; label-targeted modes do not apply to restorers (use a targeted
    objective instead) and raise ValueError. torchattacks itself is not needed.

    Threat model: every concrete attack declares, as class attributes, ``threat_norm`` ("linf" or "l2",
    the norm its budget is measured in) and ``budget_mode`` ("radius": the budget is ``eps``;
    "projected": a minimum-norm attack whose result the caller projects onto the budget's ball); see
    :mod:`udcshield.attacks.budget`. ``norm`` names the geometry of the attack's own steps or objective.

    Args:
        name: attack name shown by ``repr`` (torchattacks convention).
        model: image-to-image module mapping B x C x H x W in [0, 1] to an image of the same shape.
        eps: L-infinity budget in the [0, 1] domain (the study uses 1, 2, 4, 8 / 256).
        objective: "mse" or "l1" distortion, maximized (untargeted).
        reference: "target" (distortion against the ground truth passed as the second call argument) or
            "clean_output" (against the model's own output on the clean input, computed under no_grad;
            the gradient vanishes at delta = 0, so attacks force a random start).
        seed: base seed for random starts when a call passes no ``seeds``; per-image seeds are then
            ``derive_seed(seed, "attack/<name>", position)`` and depend on the position in the batch.

    Iterative attacks keep each image's best iterate (:class:`BestIterate`; ``keep_best=False`` returns
    the last one) and leave the best objective after every scored iterate of each run in
    ``last_history``, (runs, scored iterates, B) float64, after a call (empty for one-shot attacks).

    Call: ``atk(inputs, targets=None, seeds=None)``; ``seeds`` is one int per image. Each image's
    random-start noise comes from ``torch.Generator("cpu").manual_seed(seed_i)``, so it does not
    depend on the batch composition or the device. Runs on ``self.device`` (the device of the model's
    first parameter, or set by ``set_device``), or on the inputs' device when that is None.
    """

    threat_norm: ClassVar[str]
    budget_mode: ClassVar[str]
    norm: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "threat_norm" in cls.__dict__ or "budget_mode" in cls.__dict__:
            check_threat_model(cls.__name__, getattr(cls, "threat_norm", None), getattr(cls, "budget_mode", None))

    def __init__(
        self,
        name: str,
        model: nn.Module,
        eps: float,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {list(REFERENCES)}, got {reference!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.attack = name
        self.set_model(model)
        first = next(iter(model.parameters()), None)
        self.device: torch.device | None = None if first is None else first.device
        self.attack_mode = "default"
        self.supported_mode = ["default"]
        self.targeted = False
        self.normalization_used: dict[str, torch.Tensor] | None = None
        self._normalization_applied: bool | None = None
        self._model_training = False
        self._batchnorm_training = False
        self._dropout_training = False
        self.eps = check_eps(eps)
        self.objective = check_objective(objective)
        self.reference = reference
        self.seed = seed
        self.last_cost: dict[str, float] = {
            "iterations": 0, "forward_backward": 0, "forward_only": 0, "seconds": 0.0
        }
        self.keep_best = True
        self.last_history = torch.empty(0)
        self._histories: list[torch.Tensor] = []

    # -- torchattacks' interface ------------------------------------------------------------------

    def _nested(self) -> list[ImageAttack]:
        """Attacks held as attributes (a composite attack); interface settings are passed on to them."""
        return [v for v in vars(self).values() if isinstance(v, ImageAttack)]

    def set_model(self, model: nn.Module) -> None:
        """Attack ``model`` from now on (also in nested attacks)."""
        self.model = model
        self.model_name = type(model).__name__
        for sub in self._nested():
            sub.set_model(model)

    def set_device(self, device: torch.device | str | None) -> None:
        """Run on ``device`` (None: on the inputs' device)."""
        self.device = device
        for sub in self._nested():
            sub.set_device(device)

    def set_model_training_mode(self, model_training: bool = False, batchnorm_training: bool = False,
                                dropout_training: bool = False) -> None:
        """Train/eval mode of the model during a call: eval by default; with ``model_training`` the
        model is put in train mode except its BatchNorm / Dropout layers unless those flags are set too.
        The flags the model had before the call are restored afterwards in any case."""
        self._model_training = bool(model_training)
        self._batchnorm_training = bool(batchnorm_training)
        self._dropout_training = bool(dropout_training)
        for sub in self._nested():
            sub.set_model_training_mode(model_training, batchnorm_training, dropout_training)

    def _change_model_mode(self, given_training: bool | None = None) -> None:
        """Put the model in the mode :meth:`set_model_training_mode` asks for (``given_training``, the
        model's flag before the call, is accepted for torchattacks' signature; flags are restored anyway)."""
        if self._model_training:
            self.model.train()
            for m in self.model.modules():
                kind = type(m).__name__
                if (not self._batchnorm_training and "BatchNorm" in kind) or \
                        (not self._dropout_training and "Dropout" in kind):
                    m.eval()
        else:
            self.model.eval()

    def set_normalization_used(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Declare that the model expects ``(x - mean) / std`` (per channel) while callers pass and receive
        normalized images: a call un-normalizes its inputs, attacks in [0, 1] and normalizes the result."""
        n = len(mean)
        self.normalization_used = {"mean": torch.tensor(mean).reshape(1, n, 1, 1),
                                   "std": torch.tensor(std).reshape(1, n, 1, 1)}
        self._normalization_applied = True
        for sub in self._nested():
            sub.set_normalization_used(mean, std)

    def normalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """(inputs - mean) / std with the statistics of :meth:`set_normalization_used`."""
        assert self.normalization_used is not None
        mean = self.normalization_used["mean"].to(inputs.device)
        std = self.normalization_used["std"].to(inputs.device)
        return (inputs - mean) / std

    def inverse_normalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs * std + mean, the inverse of :meth:`normalize`."""
        assert self.normalization_used is not None
        mean = self.normalization_used["mean"].to(inputs.device)
        std = self.normalization_used["std"].to(inputs.device)
        return inputs * std + mean

    def get_logits(self, inputs: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The model's output for ``inputs`` in [0, 1] (normalized first when the model expects it)."""
        if self._normalization_applied is False:
            inputs = self.normalize(inputs)
        return self.model(inputs)

    def get_mode(self) -> str:
        """The attack mode: always "default" (untargeted or objective-targeted)."""
        return self.attack_mode

    def set_mode_default(self) -> None:
        """Default (label-free) mode, the only one image-to-image attacks have."""
        self.attack_mode = "default"
        self.targeted = False

    def _refuse_label_target(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError(f"{self.attack}: label-targeted modes do not apply to image-to-image attacks; "
                         "use objective='targeted_mse' or 'targeted_l1' with the target image as reference")

    set_mode_targeted_by_label = _refuse_label_target
    set_mode_targeted_by_function = _refuse_label_target
    set_mode_targeted_random = _refuse_label_target
    set_mode_targeted_least_likely = _refuse_label_target

    def __repr__(self) -> str:
        info = {k: v for k, v in vars(self).items()
                if not k.startswith("_") and k not in ("model", "attack", "supported_mode")}
        info["normalization_used"] = self.normalization_used is not None
        return f"{self.attack}(" + ", ".join(f"{k}={v}" for k, v in info.items()) + ")"

    def __call__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Return adversarial inputs (B x C x H x W, in [0, 1], within eps of ``inputs``)."""
        modes = [(m, m.training) for m in self.model.modules()]
        try:
            self._change_model_mode()
            if not self._normalization_applied:
                return self.forward(inputs, targets, seeds=seeds)
            self._normalization_applied = False
            try:
                adv = self.forward(self.inverse_normalize(inputs), targets, seeds=seeds)
            finally:
                self._normalization_applied = True
            return self.normalize(adv)
        finally:
            for module, training in modes:
                module.training = training

    def forward(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor | None = None,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Validate, run ``_attack`` and project; see the class docstring."""
        start = time.perf_counter()
        check_images(inputs, "inputs")
        device = self.device if self.device is not None else inputs.device
        x = inputs.detach().clone().to(device)
        self._cost = {"iterations": 0, "forward_backward": 0, "forward_only": 0}
        self._histories = []
        seed_list = self._seed_list(seeds, x.shape[0])
        if self.reference == "target":
            if targets is None:
                raise ValueError("targets (ground truth) are required when reference='target'")
            check_images(targets, "targets")
            ref = targets.detach().to(device=device, dtype=x.dtype)
        else:
            with torch.no_grad():
                ref = self._predict(x).detach()
            self._cost["forward_only"] += 1
        with torch.no_grad():
            adv = self._project(self._attack(x, ref, seed_list), x)
        self.last_cost = {**self._cost, "seconds": time.perf_counter() - start}
        self.last_history = torch.stack(self._histories).cpu() if self._histories else torch.empty(0)
        return adv

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------------------

    def _project(self, adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Final exact projection onto the threat model (L-infinity ball of radius eps by default;
        attacks with another norm override this)."""
        return project_linf(adv, x, self.eps)

    def _seed_list(self, seeds: Sequence[int] | None, batch: int) -> list[int]:
        if seeds is None:
            return [derive_seed(self.seed, f"attack/{self.attack}", i) for i in range(batch)]
        if isinstance(seeds, torch.Tensor):
            seeds = seeds.tolist()
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
            raise ValueError(f"seeds must be a sequence of ints, got {type(seeds).__name__}")
        if len(seeds) != batch:
            raise ValueError(f"seeds must have one entry per image ({batch}), got {len(seeds)}")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**64:
                raise ValueError(f"seeds must be ints in [0, 2**64), got {s!r}")
        return list(seeds)

    def _generators(self, seeds: list[int]) -> list[torch.Generator]:
        return [torch.Generator(device="cpu").manual_seed(s) for s in seeds]

    def _uniform_noise(self, gens: list[torch.Generator], like: torch.Tensor) -> torch.Tensor:
        """Per-image uniform noise in [-eps, eps), drawn on CPU from each image's generator."""
        noise = torch.stack([torch.rand(like.shape[1:], generator=g, dtype=like.dtype) for g in gens])
        return ((2 * noise - 1) * self.eps).to(like.device)

    def _box(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Elementwise bounds of the feasible set: max(x - eps, 0) and min(x + eps, 1)."""
        return (x - self.eps).clamp(min=0.0), (x + self.eps).clamp(max=1.0)

    def _start(self, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, seeds: list[int] | None = None,
               gens: list[torch.Generator] | None = None) -> torch.Tensor:
        """First iterate of an L-infinity attack with a ``random_start`` flag: a copy of ``x``, or with a
        random start x + U(-eps, eps) clipped to [lo, hi], the noise drawn from ``gens`` (else from fresh
        generators for ``seeds``)."""
        if not self.random_start:
            return x.clone()
        noise = self._uniform_noise(self._generators(seeds) if gens is None else gens, x)
        return torch.minimum(torch.maximum(x + noise, lo), hi)

    def _sign_steps(self, adv: torch.Tensor, ref: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """``self.steps`` ascent steps adv <- clip_[lo, hi](adv + alpha * sign(grad)) on :meth:`_loss_grad`
        (BIM, Kurakin et al. 2017; PGD, Madry et al. 2018); adds the steps to the iteration count.

        Returns each image's best iterate (:class:`BestIterate`) when ``self.keep_best`` (the default of
        every iterative attack), else the last one; the run's objective history joins ``last_history``.
        """
        best = BestIterate()
        for _ in range(self.steps):
            grad, value = self._loss_grad(adv, ref)
            best.update(adv, value)
            adv = torch.minimum(torch.maximum(adv + self.alpha * grad.sign(), lo), hi)
        self._cost["iterations"] += self.steps
        return self._finish(best, adv, ref)

    def _finish(self, best: BestIterate, last: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """End of one run: with ``keep_best`` score the last iterate (one forward pass) and return each image's
        best iterate, else the last; record the run's history in ``last_history``."""
        if self.keep_best:
            best.update(last, self._score(last, ref))
        self._histories.append(best.history())
        return best.point if self.keep_best and best.point is not None else last

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.get_logits(x)
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"model must return a tensor, got {type(out).__name__}")
        return out

    def _loss_grad(self, adv: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the summed per-image distortion w.r.t. ``adv`` and the distortion (B,)."""
        with torch.enable_grad():
            a = adv.detach().requires_grad_(True)
            dist = distortion(self._predict(a), ref, self.objective)
            (grad,) = torch.autograd.grad(dist.sum(), a)
        self._cost["forward_backward"] += 1
        return grad, dist.detach()

    def _score(self, adv: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Distortion (B,) of ``adv`` without gradients."""
        with torch.no_grad():
            dist = distortion(self._predict(adv), ref, self.objective)
        self._cost["forward_only"] += 1
        return dist


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an int (not bool) >= ``minimum``, else raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_float(value: object, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    """Return ``value`` as a float if it is finite and >= ``minimum`` (> if ``strict``), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum}, got {value!r}")
    return float(value)
