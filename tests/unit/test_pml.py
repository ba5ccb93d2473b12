"""DSCL as a pytorch-metric-learning loss: the project's own loss and gradient, through
PML's interface."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import BaseMetricLossFunction

from dscl.objectives.dscl import dscl_loss
from dscl.pml import DSCLLoss


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(60, 8, generator=g, dtype=torch.float64), torch.randint(0, 5, (60,), generator=g)


def test_the_pml_loss_is_dscl_loss_value_and_gradient():
    f, y = _batch()
    ours = f.clone().requires_grad_(True)
    expected = dscl_loss(ours, y)
    expected.backward()
    theirs = f.clone().requires_grad_(True)
    loss_fn = DSCLLoss()
    assert isinstance(loss_fn, BaseMetricLossFunction)
    got = loss_fn(theirs, y)
    got.backward()
    assert float(got.detach()) == float(expected.detach())
    assert torch.equal(theirs.grad, ours.grad)


def test_pml_options_reach_the_loss():
    """PML's embedding regulariser adds to the DSCL loss, as it does for its own losses."""
    from pytorch_metric_learning.regularizers import LpRegularizer

    f, y = _batch(1)
    plain = float(DSCLLoss()(f, y))
    regularised = float(DSCLLoss(embedding_regularizer=LpRegularizer())(f, y))
    assert regularised == pytest.approx(plain + float(f.norm(dim=1).mean()))


def test_pairs_and_reference_sets_are_refused():
    f, y = _batch()
    with pytest.raises(ValueError, match="indices_tuple"):
        DSCLLoss()(f, y, indices_tuple=(torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
    with pytest.raises(ValueError, match="ref_emb"):
        DSCLLoss()(f, y, ref_emb=f[:10], ref_labels=y[:10])
