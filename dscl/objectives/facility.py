"""The NMI-based facility-location loss of Song et al. [1] (the "NMI-based" row of Tables
1-3 of [2]), vectorised in torch.

Its semantics are those of TensorFlow 1's ``tf.contrib.losses.metric_learning.cluster_loss``,
the authors' reference: greedy loss-augmented inference of k medoids, PAM refinement
(:data:`PAM_SWEEPS` sweeps), the margin ``margin_multiplier * (1 - score)``, ties to the
first index, no gradient through the search. Only the arithmetic differs: each point's
distance to its nearest medoid is kept, and every candidate's clustering score comes from
one contingency tensor (``ami`` alone calls scikit-learn per candidate). The docs'
Baselines page lists each choice and how the tests check it against the reference.

References
----------
.. [1] Song, Jegelka, Rathod, Murphy. Deep Metric Learning via Facility Location. CVPR 2017.
.. [2] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dscl.choices import MARGIN_TYPES

__all__ = [
    "MARGIN_TYPES",
    "PAM_SWEEPS",
    "FacilitySolution",
    "clustering_scores",
    "euclidean_distances",
    "facility_location_loss",
    "facility_medoids",
]

PAM_SWEEPS = 5  # the reference's pam_max_iter


def euclidean_distances(x: Tensor) -> Tensor:
    """(n, n) Euclidean distances of the rows of ``x`` (n, d): the reference's
    ``pairwise_distance(squared=False)``: squared distances clamped at 0, a square root
    with a zero gradient where they are 0, and an exact zero diagonal."""
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
    zero = (d2 <= 0.0).to(x.dtype)
    d = torch.sqrt(d2 + zero * 1e-16) * (1.0 - zero)
    return d * (1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))


def clustering_scores(
    labels: Tensor, assignments: Tensor, num_clusters: int, margin_type: str = "nmi"
) -> Tensor:
    """The agreement of ``labels`` with each row of ``assignments``, as scikit-learn
    scores it, clamped at 0 as the reference does (``const``: 1 where the two partitions
    are the same up to renaming).

    Every sum over the cells of a contingency table is taken over the points instead
    (``sum_cells N log N = sum_points log N_cell``), so a row costs O(n), not O(k m).

    Parameters
    ----------
    labels : Tensor of shape (n,)
        Integers in ``[0, k)``, every value present.
    assignments : Tensor of shape (B, n)
        Integers in ``[0, num_clusters)``.
    num_clusters : int
    margin_type : {"nmi", "ami", "ari", "vmeasure", "const"}

    Returns
    -------
    Tensor of shape (B,), float64.
    """
    if margin_type not in MARGIN_TYPES:
        raise ValueError(f"margin_type must be one of {list(MARGIN_TYPES)}, got {margin_type!r}")
    b, n = assignments.shape
    dev = labels.device
    if margin_type == "ami":  # exact, one scikit-learn call per row (see the module's notes)
        from sklearn.metrics import adjusted_mutual_info_score

        y = labels.cpu().numpy()
        rows = assignments.cpu().numpy()
        scores = [max(0.0, adjusted_mutual_info_score(y, row)) for row in rows]
        return torch.tensor(scores, dtype=torch.float64, device=dev)
    k, m = int(labels.max()) + 1, int(num_clusters)
    f64 = torch.float64
    cell = labels[None, :] * m + assignments  # (B, n)
    cont = torch.zeros(b, k * m, dtype=f64, device=dev).scatter_add_(
        1, cell, torch.ones(cell.shape, dtype=f64, device=dev)
    )
    cols = torch.zeros(b, m, dtype=f64, device=dev).scatter_add_(
        1, assignments, torch.ones(cell.shape, dtype=f64, device=dev)
    )
    n_cell = cont.gather(1, cell)  # (B, n): the size of each point's cell ...
    n_col = cols.gather(1, assignments)  # ... and of its cluster
    n_row = torch.bincount(labels, minlength=k).to(f64)  # class sizes, (k,)
    n_clusters = (cols > 0).sum(1)  # (B,)
    if margin_type == "const":
        return ((cont > 0).sum(1) == k).logical_and(n_clusters == k).to(f64)
    if margin_type == "ari":  # scikit-learn's pair confusion matrix
        s = n_cell.sum(1)  # sum of squared cell sizes
        tp, fp, fn = s - n, n_col.sum(1) - s, (n_row * n_row).sum() - s
        tn = float(n) ** 2 - fp - fn - s
        ari = 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
        return torch.where((fn == 0) & (fp == 0), torch.ones_like(ari), ari).clamp_min(0.0)
    log_n = torch.log(torch.tensor(float(n), dtype=f64))
    rows_xlogx = (n_row * torch.log(n_row)).sum()
    h_y = log_n - rows_xlogx / n
    h_p = log_n - torch.log(n_col).sum(1) / n
    mi = (torch.log(n_cell).sum(1) - rows_xlogx - torch.log(n_col).sum(1)) / n + log_n
    degenerate = (n_clusters == 1) | (k == 1)  # a single cluster or class: MI = 0 exactly
    mi = torch.where(degenerate, torch.zeros_like(mi), mi.clamp_min(0))
    if margin_type == "nmi":
        nmi = torch.where(mi == 0, torch.zeros_like(mi), mi / ((h_y + h_p) / 2).clamp_min(1e-300))
        return torch.where((n_clusters == 1) & (k == 1), torch.ones_like(nmi), nmi)
    # vmeasure: the harmonic mean of homogeneity and completeness
    h = torch.ones_like(mi) if k == 1 else mi / h_y
    c = torch.where(n_clusters == 1, torch.ones_like(mi), mi / h_p.clamp_min(1e-300))
    v = torch.where(h + c == 0, torch.zeros_like(mi), 2.0 * h * c / (h + c).clamp_min(1e-300))
    return v.clamp_min(0.0)


def _assign(dist: Tensor, chosen: Tensor) -> Tensor:
    """Each point's cluster: its nearest medoid (the first on ties), a medoid its own."""
    p = dist[chosen].argmin(0)
    p[chosen] = torch.arange(len(chosen), device=dist.device)
    return p


@dataclass(frozen=True)
class FacilitySolution:
    """The medoids of the loss-augmented inference and what the loss reads of them.

    Attributes
    ----------
    medoids : Tensor of shape (k,)
        Indices of the batch, in cluster order.
    assignment : Tensor of shape (n,)
        Each point's cluster under ``medoids``.
    score : float
        The clustering score of ``assignment`` against the labels.
    """

    medoids: Tensor
    assignment: Tensor
    score: float


def facility_medoids(
    dist: Tensor,
    labels: Tensor,
    margin_multiplier: float,
    enable_pam_finetuning: bool = True,
    margin_type: str = "nmi",
) -> FacilitySolution:
    """The loss-augmented facility location over a batch: greedy, then PAM sweeps.

    Parameters
    ----------
    dist : Tensor of shape (n, n)
        Distances (:func:`euclidean_distances`), no gradient needed.
    labels : Tensor of shape (n,)
        Integers in ``[0, k)``, every value present.
    margin_multiplier, enable_pam_finetuning, margin_type :
        As :func:`facility_location_loss`.
    """
    n, dev = dist.shape[0], dist.device
    k = int(labels.max()) + 1
    best = torch.full((n,), float("inf"), dtype=dist.dtype, device=dev)  # distance to the nearest medoid
    assign = torch.zeros(n, dtype=torch.long, device=dev)
    free = torch.ones(n, dtype=torch.bool, device=dev)
    chosen: list[int] = []
    for m in range(k):
        cand = free.nonzero().squeeze(1)
        rows = dist[cand]  # (B, n)
        facility = -torch.minimum(best, rows).sum(1)
        move = rows < best  # a tie stays with the medoid chosen first
        move[torch.arange(len(cand), device=dev), cand] = True
        clusters = torch.where(move, torch.full_like(assign, m), assign)
        if chosen:
            clusters[:, chosen] = torch.arange(m, device=dev)
        total = facility + margin_multiplier * (1.0 - clustering_scores(labels, clusters, m + 1, margin_type))
        pick = int(cand[int(total.argmax())])
        assign = torch.where(dist[pick] < best, torch.full_like(assign, m), assign)
        assign[pick] = m
        best = torch.minimum(best, dist[pick])
        free[pick] = False
        chosen.append(pick)
    medoids = torch.tensor(chosen, dtype=torch.long, device=dev)
    if enable_pam_finetuning:
        positions = torch.arange(k, device=dev)
        for _ in range(PAM_SWEEPS):
            members_of = _assign(dist, medoids)  # the memberships, once per sweep
            for idx in range(k):
                members = (members_of == idx).nonzero().squeeze(1)
                facility = -dist[members][:, members].sum(0)
                others = dist[medoids].clone()  # (k, n)
                others[idx] = float("inf")
                nearest = others.argmin(0)  # the nearest other medoid's position
                nearest_d = others.gather(0, nearest[None]).squeeze(0)
                rows = dist[members]  # (B, n): each candidate as medoid idx
                take = (rows < nearest_d) | ((rows == nearest_d) & (idx < nearest))
                if k == 1:
                    take = torch.ones_like(take)
                clusters = torch.where(take, torch.full_like(nearest, idx), nearest.expand_as(rows))
                keep = positions != idx
                clusters[:, medoids[keep]] = positions[keep]
                clusters[torch.arange(len(members), device=dev), members] = idx
                total = facility + margin_multiplier * (
                    1.0 - clustering_scores(labels, clusters, k, margin_type)
                )
                medoids = medoids.clone()
                medoids[idx] = members[int(total.argmax())]
    assignment = _assign(dist, medoids)
    score = float(clustering_scores(labels, assignment[None], k, margin_type)[0])
    return FacilitySolution(medoids, assignment, score)


def facility_location_loss(
    embeddings: Tensor,
    labels: Tensor,
    margin_multiplier: float,
    enable_pam_finetuning: bool,
    margin_type: str,
) -> Tensor:
    """The clustering loss of Song et al. [1] (``cluster_loss`` of the reference).

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
        Used as given (l2-normalise them first, as the reference's caller does).
    labels : Tensor of shape (n,)
        Any integers; k = the number of distinct values.
    margin_multiplier : float
        The weight of the structured margin ``1 - score``.
    enable_pam_finetuning : bool
        Refine the greedy medoids with :data:`PAM_SWEEPS` PAM sweeps.
    margin_type : {"nmi", "ami", "ari", "vmeasure", "const"}
        The clustering score of the margin.

    Returns
    -------
    Tensor of shape (), differentiable in ``embeddings``. A batch of a single class has a
    loss of exactly 0 and a zero gradient (its one medoid is the class's own: the
    reference gives 0 up to rounding).
    """
    if margin_type not in MARGIN_TYPES:
        raise ValueError(f"margin_type must be one of {list(MARGIN_TYPES)}, got {margin_type!r}")
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(
            "expected embeddings (n, d) and labels (n,), got "
            f"{tuple(embeddings.shape)} and {tuple(labels.shape)}"
        )
    classes, y = torch.unique(labels, return_inverse=True)
    if len(classes) == 1:  # its one medoid is the class's own: the hinge is 0 (rounding aside)
        return (embeddings * 0.0).sum()
    with torch.no_grad():
        search = euclidean_distances(embeddings.detach().double())
        sol = facility_medoids(search, y, margin_multiplier, enable_pam_finetuning, margin_type)
    d = euclidean_distances(embeddings)
    score_pred = -d[sol.medoids].amin(0).sum()
    member = torch.nn.functional.one_hot(y).to(d.dtype)  # (n, k)
    within = (d @ member).masked_fill(member == 0, float("inf"))  # each member's sum to its class
    score_gt = -within.amin(0).sum()
    return torch.clamp(score_pred + margin_multiplier * (1.0 - sol.score) - score_gt, min=0.0)
