import pytest
import torch
from torch import nn

from udcshield.attacks import QueryBudgetExceeded, QueryOracle


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rows = 0
        self.grad_seen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        self.grad_seen |= torch.is_grad_enabled()
        return 2 * x


def test_counts_per_image_and_budget():
    model = Counting()
    oracle = QueryOracle(model, budget=3)
    x = torch.rand(4, 3, 2, 2)
    torch.testing.assert_close(oracle.query(x), 2 * x)
    oracle.query(x[[1, 3]], index=[1, 3])
    oracle.query(x[[3]], index=torch.tensor([3]))
    assert oracle.counts.tolist() == [1, 2, 1, 3] and oracle.total == 7 and oracle.calls == 3
    assert oracle.remaining().tolist() == [2, 1, 2, 0]
    assert oracle.remaining([3, 7]).tolist() == [0, 3]
    with pytest.raises(QueryBudgetExceeded, match=r"\[3\]"):
        oracle.query(x[[0, 3]], index=[0, 3])
    assert model.rows == 7  # the refused query never reached the model
    assert oracle.counts.tolist() == [1, 2, 1, 3]
    oracle.charge([0])
    assert oracle.counts.tolist() == [2, 2, 1, 3]
    assert not model.grad_seen


def test_outputs_carry_no_graph():
    oracle = QueryOracle(Counting(), budget=2)
    x = torch.rand(1, 3, 2, 2, requires_grad=True)
    out = oracle.query(x)
    assert not out.requires_grad and out.grad_fn is None


def test_validation():
    with pytest.raises(ValueError, match="budget"):
        QueryOracle(Counting(), budget=0)
    with pytest.raises(ValueError, match="model"):
        QueryOracle(3, budget=1)
    oracle = QueryOracle(Counting(), budget=2)
    x = torch.rand(2, 3, 2, 2)
    with pytest.raises(ValueError, match="index"):
        oracle.query(x, index=[0])
    with pytest.raises(ValueError, match="index"):
        oracle.query(x, index=[1, 1])
    with pytest.raises(ValueError, match="index"):
        oracle.query(x, index=[-1, 0])
