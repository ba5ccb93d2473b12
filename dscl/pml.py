"""The DSCL loss as a pytorch-metric-learning loss function, so that PML's trainers,
testers, samplers and reducers take it like any of their own losses.

It computes :func:`dscl.objectives.dscl.dscl_loss` (Eq. (10), closed-form backward) on the
batch: a loss of the whole batch's partition, so it has no pairs or triplets to mine and
no reference set.
"""

from __future__ import annotations

from pytorch_metric_learning.losses import BaseMetricLossFunction

from dscl.objectives.dscl import dscl_loss

__all__ = ["DSCLLoss"]


class DSCLLoss(BaseMetricLossFunction):
    """``k - tr(C F F^+)`` of a batch F and its labels, as a PML loss function.

    Parameters
    ----------
    rtol : float, optional
        Relative singular-value threshold of the pseudo-inverse (see :func:`dscl_loss`).
    **kwargs :
        PML's own options of every loss (``embedding_regularizer``, ...).

    Examples
    --------
    >>> loss_fn = DSCLLoss()
    >>> loss = loss_fn(embeddings, labels)  # doctest: +SKIP
    """

    def __init__(self, rtol: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rtol = rtol

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        if indices_tuple is not None:
            raise ValueError("DSCLLoss takes no indices_tuple: its loss is of the whole batch, not of pairs")
        if ref_emb is not embeddings:
            raise ValueError("DSCLLoss takes no ref_emb: its loss is of the batch's own partition")
        loss = dscl_loss(embeddings, labels, self.rtol)
        return {"loss": {"losses": loss, "indices": None, "reduction_type": "already_reduced"}}
