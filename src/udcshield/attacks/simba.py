"""SimBA: Simple Black-box Attack, adapted to maximizing restoration distortion (Guo et al. 2019)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from udcshield.attacks.base import check_eps, check_float, check_int
from udcshield.attacks.budget import LINF, RADIUS, budget_to_linf
from udcshield.attacks.objectives import distortion
from udcshield.attacks.oracle import QueryAttack

BASES: tuple[str, ...] = ("pixel", "dct")


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n x n): D[k, i] = a_k cos(pi (2i + 1) k / 2n), D @ D.T = I."""
    n = check_int(n, "n")
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


def idct2(coeffs: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D inverse DCT over the last two dimensions (..., H, W): D_H^T X D_W."""
    h, w = coeffs.shape[-2:]
    dh, dw = dct_matrix(h, coeffs.dtype).to(coeffs.device), dct_matrix(w, coeffs.dtype).to(coeffs.device)
    return dh.transpose(0, 1) @ coeffs @ dw


def dct_basis_vector(index: int, shape: tuple[int, int, int], dtype: torch.dtype = torch.float32,
                     dh: torch.Tensor | None = None, dw: torch.Tensor | None = None) -> torch.Tensor:
    """The inverse DCT of a one-hot coefficient: basis vector ``index`` = c*H*W + u*W + v, shape C x H x W.

    Channel c holds the separable cosine D_H[u]^T D_W[v] (unit L2 norm); other channels are zero. Only
    this one vector is built; pass precomputed 1-D DCT matrices ``dh``/``dw`` to avoid recomputing them.
    """
    c_dim, h, w = shape
    if not 0 <= index < c_dim * h * w:
        raise ValueError(f"index must lie in [0, {c_dim * h * w}), got {index}")
    dh = dct_matrix(h) if dh is None else dh
    dw = dct_matrix(w) if dw is None else dw
    c, rest = divmod(index, h * w)
    u, v = divmod(rest, w)
    out = torch.zeros(shape, dtype=torch.float64)
    out[c] = torch.outer(dh[u].double(), dw[v].double())
    return out.to(dtype)


def low_frequency_order(shape: tuple[int, int, int], freq_dims: int, stride: int,
                        generator: torch.Generator) -> torch.Tensor:
    """Coefficient indices (c*H*W + u*W + v), lowest frequencies first, random within each band.

    Band 0 is every (c, u, v) with u, v < freq_dims; band k adds the frequencies with
    max(u, v) in [freq_dims + (k-1) stride, freq_dims + k stride) (Guo et al.'s strided order).
    Returns an int64 permutation of all C*H*W indices.
    """
    c_dim, h, w = shape
    u = torch.arange(h).view(-1, 1).expand(h, w)
    v = torch.arange(w).view(1, -1).expand(h, w)
    level = torch.maximum(u, v)
    band = torch.where(level < freq_dims, torch.zeros_like(level),
                       1 + torch.div(level - freq_dims, stride, rounding_mode="floor"))
    band = band.reshape(1, -1).expand(c_dim, -1).reshape(-1)
    order = []
    for b in torch.unique(band).tolist():
        members = torch.nonzero(band == b).flatten()
        order.append(members[torch.randperm(members.numel(), generator=generator)])
    return torch.cat(order)


class SimBA(QueryAttack):
    """SimBA, black-box, untargeted: try +-eps along random orthonormal directions, keep improvements.

    Guo et al., "Simple Black-box Adversarial Attacks", ICML 2019. Each iteration takes the next
    direction q of a per-image random order over an orthonormal basis, queries x' = P(adv + step q);
    if the distortion of f(x') against the reference increased it is kept, otherwise P(adv - step q) is
    queried and kept if it increased. Only outputs are observed, through a :class:`QueryOracle` (no
    gradient is ever computed). Song et al. (arXiv 2402.13629) run SimBA for 1000 iterations with step
    4/256 on UDC restorers: ``step=4/256`` is the default here; for their iteration count use
    ``max_iters=1000`` with ``max_queries=2001``.

    Args:
        model: image-to-image module, B x 3 x H x W float32 in [0, 1] -> same shape.
        step: length of each move along a unit-L2 direction (> 0); for the pixel basis it is the change
            of one value (default 4/256). DCT directions spread it over the whole channel.
        max_queries: hard per-image budget (>= 1), the evaluation of the start point included.
        max_iters: directions tried at most (None: until the budget or the basis is exhausted).
        basis: "pixel" (standard basis, random order) or "dct" (low-frequency DCT basis, strided order).
        freq_dims: side of the low-frequency block of the first band (None: round(min(H, W) / 8)).
        stride: width of each later band (None: round(min(H, W) / 32), at least 1).
        eps: optional L-infinity budget in [0, 1] around the clean input; None (default) applies only
            the [0, 1] box (the attribute ``eps`` is then 1.0).
        objective: a kind of :func:`udcshield.attacks.objectives.distortion`.
        reference: "target" (ground truth) or "clean_output" (the clean output is charged one query).
        seed: base seed used when a call passes no ``seeds``.

    Call: ``adv = atk(inputs, targets, seeds=None)`` -> B x 3 x H x W in [0, 1]. ``last_queries`` (B,)
    holds the queries each image used; ``last_cost`` adds "queries" (sum) and "queries_max".
    """

    norm: ClassVar[str] = "Linf"
    threat_norm: ClassVar[str] = LINF
    budget_mode: ClassVar[str] = RADIUS

    def __init__(
        self,
        model: nn.Module,
        step: float = budget_to_linf(4),
        max_queries: int = 1000,
        max_iters: int | None = None,
        basis: str = "pixel",
        freq_dims: int | None = None,
        stride: int | None = None,
        eps: float | None = None,
        objective: str = "mse",
        reference: str = "target",
        seed: int = 0,
    ) -> None:
        budget = 1.0 if eps is None else check_eps(eps)
        super().__init__("SimBA", model, budget, objective=objective, reference=reference, seed=seed)
        if basis not in BASES:
            raise ValueError(f"basis must be one of {list(BASES)}, got {basis!r}")
        self.step = check_float(step, "step", strict=True)
        self.max_queries = check_int(max_queries, "max_queries")
        self.max_iters = None if max_iters is None else check_int(max_iters, "max_iters")
        self.basis = basis
        self.freq_dims = None if freq_dims is None else check_int(freq_dims, "freq_dims")
        self.stride = None if stride is None else check_int(stride, "stride")
        self.last_queries = torch.zeros(0, dtype=torch.int64)

    def _orders(self, shape: tuple[int, int, int], gens: list[torch.Generator]) -> torch.Tensor:
        n = shape[0] * shape[1] * shape[2]
        if self.basis == "pixel":
            return torch.stack([torch.randperm(n, generator=g) for g in gens])
        side = min(shape[1], shape[2])
        freq = self.freq_dims if self.freq_dims is not None else max(1, round(side / 8))
        stride = self.stride if self.stride is not None else max(1, round(side / 32))
        return torch.stack([low_frequency_order(shape, freq, stride, g) for g in gens])

    def _directions(self, idx: torch.Tensor, shape: tuple[int, int, int], like: torch.Tensor,
                    dh: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
        """Unit directions (n x C x H x W) for coefficient indices ``idx`` (n,), built one by one."""
        c_dim, h, w = shape
        q = torch.zeros((idx.numel(), c_dim * h * w), dtype=like.dtype)
        if self.basis == "pixel":
            q[torch.arange(idx.numel()), idx] = 1.0
            return q.view(-1, c_dim, h, w).to(like.device)
        c, rest = idx // (h * w), idx % (h * w)
        planes = torch.einsum("nh,nw->nhw", dh[rest // w], dw[rest % w]).to(like.dtype)
        q = q.view(-1, c_dim, h, w)
        q[torch.arange(idx.numel()), c] = planes
        return q.to(like.device)

    def _attack(self, x: torch.Tensor, ref: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        b = x.shape[0]
        shape = (x.shape[1], x.shape[2], x.shape[3])
        view = (-1,) + (1,) * (x.ndim - 1)
        lo, hi = self._box(x)
        oracle, all_idx = self._open_oracle(b)
        if self.reference == "clean_output":
            current = distortion(ref, ref, self.objective)
        else:
            current = distortion(oracle.query(x, all_idx), ref, self.objective)
        orders = self._orders(shape, self._generators(seeds))
        dh, dw = dct_matrix(shape[1]), dct_matrix(shape[2])
        adv = x.clone()
        n_dirs = orders.shape[1]
        limit = n_dirs if self.max_iters is None else min(n_dirs, self.max_iters)
        iters = 0
        for k in range(limit):
            alive = oracle.remaining(all_idx) >= 1
            if not bool(alive.any()):
                break
            iters += 1
            q = self._directions(orders[:, k], shape, x, dh, dw)
            pending = alive.to(x.device)
            for sign in (1.0, -1.0):
                cand = torch.minimum(torch.maximum(adv + sign * self.step * q, lo), hi)
                moved = (cand != adv).flatten(1).any(dim=1)
                ask = pending & moved & (oracle.remaining(all_idx) >= 1).to(x.device)
                if not bool(ask.any()):
                    continue
                rows = torch.nonzero(ask).flatten()
                score = distortion(oracle.query(cand[rows], rows.cpu()), ref[rows], self.objective)
                better = torch.zeros_like(ask)
                better[rows] = score > current[rows]
                current = current.index_put((rows,), torch.where(better[rows], score, current[rows]))
                adv = torch.where(better.view(view), cand, adv)
                pending = pending & ~better
        self._close_oracle(oracle, b, iters)
        return adv
