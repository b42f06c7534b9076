"""Carlini-Wagner L2 attack adapted to image restoration (Carlini & Wagner 2017)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.base import ImageAttack, check_float, check_int
from udcshield.attacks.bim import _forced_random_start
from udcshield.attacks.budget import BUDGET_UNIT, L2, LINF, PROJECTED, UNBOUNDED
from udcshield.attacks.objectives import UNTARGETED, distortion

_C_UPPER = 1e10  # C&W's "no successful constant yet" sentinel


def output_psnr(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (B,) of images in [0, 1] (peak 1, no quantization); +inf when identical."""
    mse = (output.detach().double() - reference.detach().double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


class CW(ImageAttack):
    """C&W-L2 for restorers: minimize ||delta||_2^2 - c * distortion(f(x + delta), ref), binary search on c.

    Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017. The
    classification margin is replaced by the restoration distortion (Song et al., arXiv 2402.13629, run
    C&W-L2 with 9 binary-search steps and confidence 0 on UDC restorers). As in the paper, the
    perturbed image is parameterized as x + delta = (tanh(w) + 1) / 2, so it always lies in [0, 1], and
    w is optimized with Adam.

    Success rule (the restoration analogue of "misclassified"): an iterate succeeds when the PSNR of its
    output against the reference dropped by at least ``tau_db`` relative to the clean output's PSNR,
    PSNR(f(x + delta), ref) <= min(PSNR(f(x), ref), psnr_cap) - tau_db. With reference="clean_output"
    the clean PSNR is infinite, so the cap applies (success then means PSNR vs the clean output
    <= psnr_cap - tau_db). Per image, the binary search over c (start ``c``; x10 until a success, then
    bisection between the largest failing and smallest successful c) keeps the successful iterate with
    the smallest ||delta||_2; an image that never succeeds gets its most distorting iterate.
    ``confidence`` > 0 demands the drop to exceed tau_db by that many extra dB. The distortion is a
    per-value mean while ||delta||_2^2 is a sum, so useful constants grow with the pixel count (about
    c > C*H*W for an identity restorer); the x10 search from c = 1e-2 reaches them in a few steps.

    Threat model: the objective, and ``norm``, are L2, but C&W is a minimum-norm attack with no radius
    argument. Registered as ``cw`` it is the *L-infinity-clipped* variant: the caller projects the result
    onto the L-infinity ball of the budget (:func:`udcshield.attacks.project_linf`), so
    ``threat_norm = "linf"`` and ``budget_mode = "projected"`` (:mod:`udcshield.attacks.budget`); report it
    as clipped. :class:`CWL2` (``cw_l2``) is the attack as published, unbounded.

    Args:
        model: image-to-image module, B x 3 x H x W float32 in [0, 1] -> same shape.
        c: initial trade-off constant (> 0), default 1e-2.
        binary_search_steps: outer steps over c (>= 1), default 9 as in the study.
        steps: Adam iterations per binary-search step (>= 1).
        lr: Adam learning rate on w (> 0), default 1e-2 as in the paper.
        tau_db: required PSNR drop in dB (> 0) for success.
        confidence: extra dB beyond tau_db (>= 0), default 0.
        psnr_cap: cap on the clean PSNR in dB (> 0), see above.
        random_start: start w from x + U(-1/256, 1/256) (per-image generator) instead of x; forced with
            a UserWarning for reference="clean_output" (zero gradient at the clean input).
        objective: "mse" or "l1" distortion in the loss (success is always judged by PSNR).
        reference: "target" (ground truth) or "clean_output".
        seed: base seed used when a call passes no ``seeds``.

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x 3 x H x W in [0, 1]. Afterwards, per image
    (tensors of shape (B,)): ``last_c`` (the c that produced the returned example), ``last_l2``
    (||adv - x||_2), ``last_success`` (bool), ``last_psnr_drop`` (dB); ``last_cost`` additionally holds
    "successes" (count) and "mean_l2".
    """

    norm: ClassVar[str] = "L2"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = PROJECTED

    def __init__(
        self,
        model: nn.Module,
        c: float = 1e-2,
        binary_search_steps: int = 9,
        steps: int = 100,
        lr: float = 1e-2,
        tau_db: float = 3.0,
        confidence: float = 0.0,
        psnr_cap: float = 60.0,
        random_start: bool = False,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
    ) -> None:
        super().__init__("CW", model, 1.0, objective=objective, reference=reference, seed=seed)
        if objective not in UNTARGETED:
            raise ValueError(f"objective must be one of {list(UNTARGETED)} for CW, got {objective!r}")
        self.c = check_float(c, "c", strict=True)
        self.binary_search_steps = check_int(binary_search_steps, "binary_search_steps")
        self.steps = check_int(steps, "steps")
        self.lr = check_float(lr, "lr", strict=True)
        self.tau_db = check_float(tau_db, "tau_db", strict=True)
        self.confidence = check_float(confidence, "confidence")
        self.psnr_cap = check_float(psnr_cap, "psnr_cap", strict=True)
        self.random_start = _forced_random_start("CW", reference, random_start)
        self.last_c = torch.empty(0)
        self.last_l2 = torch.empty(0)
        self.last_success = torch.empty(0, dtype=torch.bool)
        self.last_psnr_drop = torch.empty(0)

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        b = x.shape[0]
        view = (-1,) + (1,) * (x.ndim - 1)
        dev = x.device
        if self.reference == "target":
            with torch.no_grad():
                clean_out = self._predict(x)
            self._cost["forward_only"] += 1
            clean_psnr = output_psnr(clean_out, ref).clamp(max=self.psnr_cap)
        else:
            clean_psnr = torch.full((b,), self.psnr_cap, dtype=torch.float64, device=dev)
        threshold = clean_psnr - self.tau_db - self.confidence

        start = x
        if self.random_start:
            noise = torch.stack([torch.rand(x.shape[1:], generator=g, dtype=x.dtype)
                                 for g in self._generators(seeds)]).to(dev)
            start = (x + (2 * noise - 1) / BUDGET_UNIT).clamp(0.0, 1.0)  # U(-1/256, 1/256)
        limit = 1 - 1e-6
        w0 = torch.atanh((2 * start.double() - 1).clamp(-limit, limit)).to(x.dtype)

        c = torch.full((b,), self.c, dtype=torch.float64, device=dev)
        lower = torch.zeros_like(c)
        upper = torch.full_like(c, _C_UPPER)
        best_l2 = torch.full_like(c, math.inf)
        best_adv, best_c, best_psnr = x.clone(), c.clone(), clean_psnr.clone()
        fail_dist = torch.full_like(c, -math.inf)
        fail_adv, fail_c, fail_psnr = x.clone(), c.clone(), clean_psnr.clone()
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8

        for _ in range(self.binary_search_steps):
            w = w0.clone()
            m, v = torch.zeros_like(w), torch.zeros_like(w)
            succeeded = torch.zeros(b, dtype=torch.bool, device=dev)
            c_x = c.to(x.dtype)
            for t in range(1, self.steps + 1):
                with torch.enable_grad():
                    wv = w.detach().requires_grad_(True)
                    adv = (torch.tanh(wv) + 1) / 2
                    out = self._predict(adv)
                    dist = distortion(out, ref, self.objective)
                    l2sq = (adv - x).pow(2).flatten(1).sum(dim=1)
                    (grad,) = torch.autograd.grad((l2sq - c_x * dist).sum(), wv)
                self._cost["forward_backward"] += 1
                adv, dist = adv.detach(), dist.detach().double()
                psnr = output_psnr(out, ref)
                l2 = l2sq.detach().double().sqrt()
                success = psnr <= threshold
                succeeded |= success
                better = success & (l2 < best_l2)
                best_l2 = torch.where(better, l2, best_l2)
                best_adv = torch.where(better.view(view), adv, best_adv)
                best_c = torch.where(better, c, best_c)
                best_psnr = torch.where(better, psnr, best_psnr)
                worse = dist > fail_dist
                fail_dist = torch.where(worse, dist, fail_dist)
                fail_adv = torch.where(worse.view(view), adv, fail_adv)
                fail_c = torch.where(worse, c, fail_c)
                fail_psnr = torch.where(worse, psnr, fail_psnr)
                m = beta1 * m + (1 - beta1) * grad
                v = beta2 * v + (1 - beta2) * grad * grad
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                w = w - self.lr * m_hat / (v_hat.sqrt() + adam_eps)
            upper = torch.where(succeeded, torch.minimum(upper, c), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, c))
            bracketed = upper < _C_UPPER / 10
            c = torch.where(bracketed, (lower + upper) / 2, c * 10)
        self._cost["iterations"] = self.binary_search_steps * self.steps

        found = torch.isfinite(best_l2)
        adv = torch.where(found.view(view), best_adv, fail_adv)
        self.last_success = found.cpu()
        self.last_c = torch.where(found, best_c, fail_c).cpu()
        self.last_psnr_drop = (clean_psnr - torch.where(found, best_psnr, fail_psnr)).cpu()
        self.last_l2 = (adv.double() - x.double()).flatten(1).norm(dim=1).cpu()
        self._cost["successes"] = int(found.sum())
        self._cost["mean_l2"] = float(self.last_l2.mean())
        return adv


class CWL2(CW):
    """C&W-L2 as published and as the study runs it (9 binary-search steps, confidence 0): a minimum-norm
    attack in L2, not clipped to any ball (Carlini & Wagner, IEEE S&P 2017; Song et al., arXiv 2402.13629).

    Same algorithm and arguments as :class:`CW`; only the threat model differs: ``threat_norm = "l2"`` and
    ``budget_mode = "unbounded"``, so the stage runs it at the one budget 256 (a ball holding the whole
    [0, 1] domain) and reports the realised L2 norm (``last_l2``, the set's ``l2_mean``) beside the PSNR.
    The PSNR it reaches is set by the success rule (``tau_db`` below the clean PSNR), the norm it needed
    is the measurement.
    """

    threat_norm: ClassVar[str] = L2
    budget_mode: ClassVar[str] = UNBOUNDED
