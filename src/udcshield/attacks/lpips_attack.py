"""LPIPS-guided PGD for image-to-image models (Zhang et al. 2018 metric; Madry et al. 2018 attack)."""

from __future__ import annotations

import os
from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.base import ImageAttack, check_float, check_int
from udcshield.attacks.bim import _forced_random_start
from udcshield.attacks.budget import LINF, RADIUS, budget_to_linf
from udcshield.attacks.lpips import LPIPS
from udcshield.attacks.objectives import UNTARGETED, distortion


class LPIPSPGD(ImageAttack):
    """PGD, L-infinity, maximizing LPIPS(f(x + delta), ref) (+ pixel_weight * distortion).

    The perceptual attack of Song et al. (arXiv 2402.13629), who report UFormer at 17.38 dB under an
    "LPIPS-guided attack": projected signed-gradient ascent (Madry et al., ICLR 2018) on the LPIPS
    distance (Zhang et al., CVPR 2018) between the restored image and the reference, optionally plus a
    pixel term ``pixel_weight * distortion(f(x + delta), ref, objective)``.

    Args:
        model: image-to-image module, B x 3 x H x W float32 in [0, 1] -> same shape (H, W >= 31).
        lpips: an :class:`LPIPS` module, or a path to its local safetensors weights. Required; moved to
            the attack's device and dtype when called. Its parameters are frozen and never updated.
        eps: L-infinity budget in [0, 1].
        alpha: step size; default 2.5 * eps / steps.
        steps: number of gradient steps (>= 1).
        pixel_weight: weight lambda >= 0 of the pixel term (0 = LPIPS only).
        random_start: start from x + U(-eps, eps) (per-image generator); default True. Forced with a
            UserWarning for reference="clean_output" (LPIPS has zero gradient between identical images).
        objective: "mse" or "l1", the pixel term's distortion.
        reference: "target" (ground truth) or "clean_output".
        seed: base seed used when a call passes no ``seeds``.

        keep_best: return each image's best iterate by the LPIPS objective (the default), not the last.

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x 3 x H x W in [0, 1], max|adv - x| <= eps.
    """

    norm: ClassVar[str] = "Linf"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = RADIUS

    def __init__(
        self,
        model: nn.Module,
        lpips: LPIPS | str | os.PathLike[str] | None = None,
        eps: float = budget_to_linf(8),
        alpha: float | None = None,
        steps: int = 20,
        pixel_weight: float = 0.0,
        random_start: bool = True,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
        keep_best: bool = True,
    ) -> None:
        super().__init__("LPIPSPGD", model, eps, objective=objective, reference=reference, seed=seed)
        if objective not in UNTARGETED:
            raise ValueError(f"objective must be one of {list(UNTARGETED)} for LPIPSPGD, got {objective!r}")
        if lpips is None:
            raise ValueError("lpips is required: pass an LPIPS module or the path of local LPIPS(AlexNet) "
                             "safetensors weights (nothing is downloaded)")
        if isinstance(lpips, (str, os.PathLike)):
            lpips = LPIPS.from_file(lpips)
        if not isinstance(lpips, LPIPS):
            raise ValueError(f"lpips must be an LPIPS module or a weights path, got {type(lpips).__name__}")
        self.lpips = lpips
        self.steps = check_int(steps, "steps")
        self.alpha = 2.5 * self.eps / self.steps if alpha is None else check_float(alpha, "alpha")
        self.pixel_weight = check_float(pixel_weight, "pixel_weight")
        self.random_start = _forced_random_start("LPIPSPGD", reference, random_start)
        self.keep_best = bool(keep_best)

    def _objective(self, out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        value = self.lpips(out, ref)
        if self.pixel_weight:
            value = value + self.pixel_weight * distortion(out, ref, self.objective)
        return value

    def _loss_grad(self, adv: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the summed per-image LPIPS objective w.r.t. ``adv`` and the objective (B,)."""
        with torch.enable_grad():
            a = adv.detach().requires_grad_(True)
            value = self._objective(self._predict(a), ref)
            (grad,) = torch.autograd.grad(value.sum(), a)
        self._cost["forward_backward"] += 1
        return grad, value.detach()

    def _score(self, adv: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """The LPIPS objective (B,) of ``adv`` without gradients (scores the last iterate)."""
        with torch.no_grad():
            value = self._objective(self._predict(adv), ref)
        self._cost["forward_only"] += 1
        return value

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        self.lpips.to(device=x.device, dtype=x.dtype)
        lo, hi = self._box(x)
        return self._sign_steps(self._start(x, lo, hi, seeds), ref, lo, hi)
