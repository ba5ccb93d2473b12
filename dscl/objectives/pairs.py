"""Pair-based baselines of Tables 1-3 of [1], written in O(n^2) memory.

pytorch-metric-learning's semi-hard triplet miner and lifted structured loss materialise
an n x n x n mask of triplets or a (positive pairs x negative pairs) mask: at the
paper's batch of n = 1260 that is 2e9 entries for the miner and about 2e10 for the
lifted loss (CUB's 100 training classes). The two are therefore written here over the
n x n distance matrix, and the tests check them against pytorch-metric-learning on
batches small enough for both. Both share :func:`pair_masks` (after
pytorch-metric-learning's ``GenericPairLoss``, which builds the masks once).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
.. [2] Schroff, Kalenichenko, Philbin. FaceNet. CVPR 2015.
.. [3] Song, Xiang, Jegelka, Savarese. Deep Metric Learning via Lifted Structured
   Feature Embedding. CVPR 2016.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["lifted_structure_loss", "pair_masks", "squared_distances", "triplet_semihard_loss"]


def squared_distances(x: Tensor) -> Tensor:
    """Squared Euclidean distances of the rows of ``x`` (n, d) -> (n, n)."""
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)


def pair_masks(labels: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(same, positive)`` boolean (n, n) masks: same class, and same class off the
    diagonal. None when the batch has no positive pair or no negative pair: a pair
    loss then has nothing to learn from it (its value is 0, with a zero gradient)."""
    same = labels[:, None] == labels[None, :]  # (n, n)
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    if not bool(pos.any()) or bool(same.all()):
        return None
    return same, pos


def triplet_semihard_loss(embeddings: Tensor, labels: Tensor, margin: float) -> Tensor:
    """Triplet loss with semi-hard negatives [2] (TensorFlow's ``triplet_semihard_loss``).

    On l2-normalised embeddings and squared Euclidean distances D: for every positive
    pair (a, p), a != p, the negative n is the nearest to a with D(a, n) > D(a, p), or
    the farthest from a when no negative is that far; the loss is the mean over the
    positive pairs of ``max(0, D(a, p) - D(a, n) + margin)``. O(n^2) memory: each
    anchor's negative distances are sorted once and searched.

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
    labels : Tensor of shape (n,)
    margin : float

    Returns
    -------
    Tensor of shape (); 0 for a batch without a positive or a negative pair.
    """
    masks = pair_masks(labels)
    if masks is None:
        return embeddings.sum() * 0.0
    same, pos = masks
    d = squared_distances(F.normalize(embeddings, dim=1))
    dd = d.detach()
    # each anchor's negative distances in increasing order, its positives pushed past them
    neg_sorted, order = torch.sort(torch.where(same, dd.max() + 1.0, dd), dim=1)
    n_neg = (~same).sum(1, keepdim=True)
    first = torch.searchsorted(neg_sorted, dd.contiguous(), right=True)  # first one farther
    chosen = torch.gather(order, 1, torch.where(first < n_neg, first, n_neg - 1))  # (n, n)
    a, p = pos.nonzero(as_tuple=True)
    return torch.relu(d[a, p] - d[a, chosen[a, p]] + margin).mean()


def lifted_structure_loss(embeddings: Tensor, labels: Tensor, neg_margin: float, pos_margin: float) -> Tensor:
    """Lifted structured loss ([3], Eq. 4), on l2-normalised embeddings.

    For every positive pair (i, j), i < j:
    ``J_ij = log(sum_{k in N_i} exp(a - D_ik) + sum_{l in N_j} exp(a - D_jl)) + D_ij - b``
    with a = ``neg_margin``, b = ``pos_margin``, and the loss is ``mean(max(0, J_ij)^2) / 2``
    over the pairs: pytorch-metric-learning's ``LiftedStructureLoss`` (same distance,
    margins and reduction) in O(n^2) memory, the per-example sums computed once.

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
    labels : Tensor of shape (n,)
    neg_margin, pos_margin : float

    Returns
    -------
    Tensor of shape (); 0 for a batch without a positive or a negative pair.
    """
    masks = pair_masks(labels)
    if masks is None:
        return embeddings.sum() * 0.0
    same, pos = masks
    # Euclidean distances, with a gradient safe at 0
    d = torch.sqrt(squared_distances(F.normalize(embeddings, dim=1)) + 1e-12)
    # s_i = log sum_{k in N_i} exp(a - D_ik); -inf where i has no negative
    s = torch.logsumexp(torch.where(same, torch.full_like(d, -torch.inf), neg_margin - d), dim=1)
    # J for every ordered pair, kept on the positive ones (pml counts each unordered pair
    # twice and halves: the mean is the same). Dense on purpose: gathering s[i], s[j] for
    # the pairs back-propagates through an index accumulation whose order varies between
    # runs on the CPU, and the gradient with it; broadcasting keeps it bit-reproducible.
    j_all = torch.logaddexp(s[:, None], s[None, :]) + d - pos_margin
    return torch.where(pos, torch.relu(j_all) ** 2, 0.0).sum() / pos.sum() / 2
