"""Query oracle for black-box attacks: outputs only, no gradients, counted queries, a hard budget.

Black-box attacks on restorers (SimBA, Guo et al. ICML 2019; Square, Andriushchenko et al. ECCV 2020;
used by Song et al., arXiv 2402.13629) may only observe the model's output for chosen inputs. The oracle
enforces that: every evaluation runs under ``torch.no_grad`` and is charged to the
images it concerns; a query that would take any image past its budget raises before the model runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from udcshield.attacks.base import ImageAttack, check_int


class QueryBudgetExceeded(RuntimeError):
    """Raised when a query would exceed an image's query budget."""


class QueryOracle:
    """Counted, gradient-free access to an image-to-image model.

    Args:
        model: the attacked module (or any callable mapping B x 3 x H x W in [0, 1] to an image batch).
        budget: queries allowed per image (>= 1).

    ``query(x, index)`` evaluates the rows of ``x`` (one query per row) for the images whose positions
    in the attacked batch are ``index`` (default 0..B-1): a batched call costs one query for each image
    in it. ``counts`` holds the per-image totals so far; ``remaining(index)`` what is left.
    """

    def __init__(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], budget: int) -> None:
        if not callable(model):
            raise ValueError(f"model must be callable, got {type(model).__name__}")
        self._model = model
        self.budget = check_int(budget, "budget")
        self._counts = torch.zeros(0, dtype=torch.int64)
        self.calls = 0

    @property
    def counts(self) -> torch.Tensor:
        """Queries charged to each image so far (int64, one entry per image index seen)."""
        return self._counts.clone()

    @property
    def total(self) -> int:
        """All queries charged so far."""
        return int(self._counts.sum())

    def _index(self, index: Sequence[int] | torch.Tensor | None, n: int) -> torch.Tensor:
        if index is None:
            idx = torch.arange(n)
        else:
            idx = torch.as_tensor(index).detach().to("cpu", torch.int64).flatten()
        if idx.numel() != n:
            raise ValueError(f"index must name one image per query row ({n}), got {idx.numel()}")
        if n and int(idx.min()) < 0:
            raise ValueError("index entries must be >= 0")
        if idx.unique().numel() != n:
            raise ValueError("index must not repeat an image within one query")
        if n and int(idx.max()) >= self._counts.numel():
            grown = torch.zeros(int(idx.max()) + 1, dtype=torch.int64)
            grown[: self._counts.numel()] = self._counts
            self._counts = grown
        return idx

    def remaining(self, index: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Queries left (int64) for ``index`` (default: every image seen so far)."""
        if index is None:
            return self.budget - self._counts
        idx = torch.as_tensor(index).to("cpu", torch.int64).flatten()
        counts = torch.zeros(idx.shape, dtype=torch.int64)
        known = idx < self._counts.numel()
        counts[known] = self._counts[idx[known]]
        return self.budget - counts

    def charge(self, index: Sequence[int] | torch.Tensor, n: int = 1) -> None:
        """Charge ``n`` queries to each image in ``index`` for an evaluation made outside the oracle."""
        idx = self._index(index, len(torch.as_tensor(index).flatten()))
        self._check(idx, n)
        self._counts[idx] += n

    def _check(self, idx: torch.Tensor, n: int) -> None:
        over = self._counts[idx] + n > self.budget
        if bool(over.any()):
            raise QueryBudgetExceeded(
                f"query budget of {self.budget} per image exceeded for image(s) {idx[over].tolist()}")

    def query(self, x: torch.Tensor, index: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Model output for ``x`` (n x 3 x H x W) under no_grad; charges one query per row."""
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
            raise ValueError("x must be a non-empty batch tensor")
        idx = self._index(index, x.shape[0])
        self._check(idx, 1)
        self._counts[idx] += 1
        self.calls += 1
        with torch.no_grad():
            out = self._model(x.detach())
        if not isinstance(out, torch.Tensor) or out.shape[0] != x.shape[0]:
            raise ValueError("model must return a tensor with one output per query row")
        return out.detach()


class QueryAttack(ImageAttack):
    """Base of the black-box attacks (SimBA, Square): the model is observed only through a
    :class:`QueryOracle` allowing ``self.max_queries`` queries per image. After a call, ``last_queries``
    (B,) holds the queries each image used and ``last_cost`` adds "queries" (sum) and "queries_max"."""

    max_queries: int

    def _open_oracle(self, batch: int) -> tuple[QueryOracle, torch.Tensor]:
        """The oracle for one call and the batch positions 0..B-1; with reference="clean_output" the clean
        output serving as reference is charged as one query per image."""
        oracle = QueryOracle(self._predict, self.max_queries)
        all_idx = torch.arange(batch)
        if self.reference == "clean_output":
            oracle.charge(all_idx)  # the clean output serving as reference was one query
        return oracle, all_idx

    def _close_oracle(self, oracle: QueryOracle, batch: int, iterations: int) -> None:
        """Record the call's per-image queries, iterations and oracle evaluations."""
        counts = oracle.counts
        self.last_queries = torch.zeros(batch, dtype=torch.int64)
        self.last_queries[: counts.numel()] = counts
        self._cost["iterations"] = iterations
        self._cost["forward_only"] += oracle.calls
        self._cost["queries"] = int(self.last_queries.sum())
        self._cost["queries_max"] = int(self.last_queries.max())
