"""Proxy-Anchor (Kim, Kim, Cho, Kwak, CVPR 2020): the modern reference a comparison made
today includes, taken from pytorch-metric-learning's ``ProxyAnchorLoss``.

The proxies (one per training class, learned) live in :class:`ProxyAnchor`, a module the
objective ``proxyanchor`` of :mod:`dscl.objectives` binds to the training classes of a run
(:meth:`dscl.objectives.Objective.bind`). The training loops give them their own learning
rate (``proxy_lr_multiplier`` times the last layer's), update them under the chunked update
(dLoss/dF and dLoss/dproxies from one autograd pass over F) and save them with the model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ProxyAnchor"]


class ProxyAnchor(nn.Module):
    """The Proxy-Anchor loss over the classes ``class_ids``.

    Parameters
    ----------
    class_ids : array-like of int
        The training classes (any ids); a batch label outside them is an error.
    embedding_dim : int
    margin, alpha : float
        As ``pytorch_metric_learning.losses.ProxyAnchorLoss`` (the paper's 0.1 and 32).
    """

    def __init__(self, class_ids, embedding_dim: int, margin: float, alpha: float):
        super().__init__()
        from pytorch_metric_learning import losses

        ids = torch.as_tensor(sorted({int(c) for c in class_ids}), dtype=torch.long)
        self.register_buffer("class_ids", ids)
        self.loss = losses.ProxyAnchorLoss(len(ids), int(embedding_dim), margin=margin, alpha=alpha)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The loss of a batch (n, d) with labels (n,) among ``class_ids``."""
        labels = labels.to(self.class_ids.device)
        targets = torch.searchsorted(self.class_ids, labels).clamp_max(len(self.class_ids) - 1)
        if not bool((self.class_ids[targets] == labels).all()):
            unknown = sorted(set(labels.tolist()) - set(self.class_ids.tolist()))
            raise ValueError(f"labels {unknown[:5]} are not among the proxies' classes")
        return self.loss(embeddings, targets)
