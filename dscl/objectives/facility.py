"""The NMI-based facility-location loss of Song et al. [1] (the "NMI-based" row of Tables
1-3 of [2]), vectorised in torch.

Its semantics are those of TensorFlow 1's ``tf.contrib.losses.metric_learning.cluster_loss``,
the authors' reference: greedy loss-augmented inference of k medoids, PAM refinement
(:data:`PAM_SWEEPS` sweeps), the margin ``margin_multiplier * (1 - score)``, ties to the
first index, no gradient through the search. Only the arithmetic differs: each point's
distance to its nearest medoid is kept, every candidate's clustering score is computed for
all candidates at once from exact counts (``ami`` alone calls scikit-learn per candidate),
and PAM keeps each point's two nearest medoids. The docs' Baselines page lists each choice
and how the tests check it against the reference.

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
TABLE_PER_POINT = 8  # the contingency tables are built whole up to k m = this x n cells


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
    (``sum_cells N log N = sum_points log N_cell``); each point's cell size is read from
    the tables where they are small, counted by sorting each row where they are not.

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
    b = assignments.shape[0]
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
    if k * m <= TABLE_PER_POINT * assignments.shape[1]:  # the contingency tables themselves
        cont = torch.zeros(b, k * m, dtype=f64, device=dev).scatter_add_(
            1, cell, torch.ones(cell.shape, dtype=f64, device=dev)
        )
        n_cell, n_cells = cont.gather(1, cell), (cont > 0).sum(1)
    else:
        n_cell, n_cells = _cell_sizes(cell)
    cols = torch.zeros(b, m, dtype=f64, device=dev).scatter_add_(
        1, assignments, torch.ones(assignments.shape, dtype=f64, device=dev)
    )
    return _scores(labels, n_cell, cols.gather(1, assignments), (cols > 0).sum(1), n_cells, margin_type)


def _scores(labels, n_cell, n_col, n_clusters, n_cells, margin_type: str) -> Tensor:
    """:func:`clustering_scores` from each point's cell size and cluster size (B, n),
    float64, and the numbers of non-empty clusters and cells (B,): every count exact, so
    any way of counting gives the same bits."""
    n, f64 = labels.shape[0], torch.float64
    k = int(labels.max()) + 1
    n_row = torch.bincount(labels, minlength=k).to(f64)  # class sizes, (k,)
    if margin_type == "const":
        return (n_cells == k).logical_and(n_clusters == k).to(f64)
    if margin_type == "ari":  # scikit-learn's pair confusion matrix
        s = n_cell.sum(1)  # sum of squared cell sizes
        tp, fp, fn = s - n, n_col.sum(1) - s, (n_row * n_row).sum() - s
        tn = float(n) ** 2 - fp - fn - s
        ari = 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
        return torch.where((fn == 0) & (fp == 0), torch.ones_like(ari), ari).clamp_min(0.0)
    log_n = torch.log(torch.tensor(float(n), dtype=f64))
    rows_xlogx = (n_row * torch.log(n_row)).sum()
    h_y = log_n - rows_xlogx / n
    cols_log = torch.log(n_col).sum(1)
    h_p = log_n - cols_log / n
    mi = (torch.log(n_cell).sum(1) - rows_xlogx - cols_log) / n + log_n
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


def _cell_sizes(cell: Tensor) -> tuple[Tensor, Tensor]:
    """For each row of ``cell`` (B, n), integer ids of the contingency table's cells: the
    size of each point's cell (B, n), float64, and the number of non-empty cells (B,).
    Counted by sorting each row, O(n log n), never the (B, k m) table: at SOP's batch
    (hundreds of classes and clusters) that table is gigabytes per greedy step."""
    ordered, order = cell.sort(1)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = starts.cumsum(1) - 1  # (B, n): each sorted point's run, its cell's rank in the row
    sizes = torch.zeros(cell.shape, dtype=torch.float64, device=cell.device).scatter_add_(
        1, run, torch.ones(cell.shape, dtype=torch.float64, device=cell.device)
    )
    n_cell = torch.empty_like(sizes).scatter_(1, order, sizes.gather(1, run))
    return n_cell, starts.sum(1)


def _greedy_counts(labels: Tensor, assign: Tensor, move: Tensor, m: int):
    """The counts :func:`_scores` reads for each candidate of a greedy step: the partition
    ``assign`` (n,) of the ``m`` medoids chosen so far, each candidate's new cluster ``m``
    taking the points of its row of ``move`` (B, n). Counted from what moves (one
    bincount over the moving points), not from B partitions: O(B n) per step, not
    O(B k m) (gigabytes at SOP's batch of hundreds of classes)."""
    b, n = move.shape
    f64 = torch.float64
    k = int(labels.max()) + 1
    cells, cell = torch.unique(labels * max(m, 1) + assign, return_inverse=True)  # the base's cells
    c, cols = len(cells), max(m, 1)
    row, point = move.nonzero(as_tuple=True)  # the moving points
    size = move.sum(1).to(f64)  # (B,): the new cluster's
    gained = torch.bincount(row * k + labels[point], minlength=b * k).view(b, k).to(f64)  # its cells
    left = torch.bincount(row * c + cell[point], minlength=b * c).view(b, c).to(f64)  # from each base cell
    lost = torch.bincount(row * cols + assign[point], minlength=b * cols).view(b, cols).to(f64)  # per cluster
    base_cell = torch.bincount(cell, minlength=c).to(f64)
    base_col = torch.bincount(assign, minlength=cols).to(f64)
    n_cell = torch.where(
        move, gained.gather(1, labels.expand(b, n)), base_cell[cell] - left.gather(1, cell.expand(b, n))
    )
    n_col = torch.where(move, size[:, None], base_col[assign] - lost.gather(1, assign.expand(b, n)))
    n_clusters = (base_col - lost > 0).sum(1) + (size > 0)
    n_cells = (base_cell - left > 0).sum(1) + (gained > 0).sum(1)
    return n_cell, n_col, n_clusters, n_cells


class _NearestTwo:
    """Each point's nearest and second-nearest medoid (by distance, then by position, as
    ``argmin`` breaks ties), kept up to date as medoids are replaced: a PAM step reads the
    nearest medoid other than one in O(n), not O(k n) (at SOP's batch, k is hundreds)."""

    def __init__(self, rows: Tensor):
        self.rows = rows.clone()  # (k, n): each medoid's distances
        k, n = rows.shape
        self.first = torch.zeros(n, dtype=torch.long, device=rows.device)
        self.second = torch.zeros_like(self.first)
        if k > 1:
            self._refresh(torch.arange(n, device=rows.device))

    def _refresh(self, points: Tensor) -> None:
        sub = self.rows[:, points]
        first = sub.argmin(0)
        sub[first, torch.arange(len(points), device=sub.device)] = float("inf")
        self.first[points], self.second[points] = first, sub.argmin(0)

    def other_than(self, idx: int) -> tuple[Tensor, Tensor]:
        """Each point's nearest medoid other than ``idx`` (positions, (n,)) and its distance
        (inf where ``idx`` is the only medoid)."""
        if self.rows.shape[0] == 1:
            return self.first, torch.full_like(self.rows[0], float("inf"))
        nearest = torch.where(self.first == idx, self.second, self.first)
        return nearest, self.rows.gather(0, nearest[None]).squeeze(0)

    def replace(self, idx: int, row: Tensor) -> None:
        """Medoid ``idx`` now has the distances ``row`` (n,)."""
        self.rows[idx] = row
        if self.rows.shape[0] == 1:
            return
        stale = (self.first == idx) | (self.second == idx)
        self._refresh(stale.nonzero().squeeze(1))
        v1 = self.rows.gather(0, self.first[None]).squeeze(0)
        v2 = self.rows.gather(0, self.second[None]).squeeze(0)
        before_first = ~stale & ((row < v1) | ((row == v1) & (idx < self.first)))
        before_second = ~stale & ~before_first & ((row < v2) | ((row == v2) & (idx < self.second)))
        self.second = torch.where(before_first, self.first, torch.where(before_second, idx, self.second))
        self.first = torch.where(before_first, idx, self.first)


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


def _greedy(dist: Tensor, labels: Tensor, margin_multiplier: float, margin_type: str) -> Tensor:
    """The greedy loss-augmented search: k medoids (indices, in cluster order)."""
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
        if chosen:
            move[:, chosen] = False  # a medoid stays in its own cluster
        if margin_type == "ami":  # scored by scikit-learn, from the partitions themselves
            clusters = torch.where(move, torch.full_like(assign, m), assign)
            score = clustering_scores(labels, clusters, m + 1, margin_type)
        else:
            score = _scores(labels, *_greedy_counts(labels, assign, move, m), margin_type)
        total = facility + margin_multiplier * (1.0 - score)
        pick = int(cand[int(total.argmax())])
        assign = torch.where(dist[pick] < best, torch.full_like(assign, m), assign)
        assign[pick] = m
        best = torch.minimum(best, dist[pick])
        free[pick] = False
        chosen.append(pick)
    return torch.tensor(chosen, dtype=torch.long, device=dev)


def _pam_sweep(
    dist: Tensor, labels: Tensor, medoids: Tensor, margin_multiplier: float, margin_type: str
) -> Tensor:
    """One PAM sweep: each medoid in turn replaced by the member of its cluster that
    scores best (the memberships of the sweep's start, as the reference)."""
    dev, k = dist.device, len(medoids)
    positions = torch.arange(k, device=dev)
    members_of = _assign(dist, medoids)  # the memberships, once per sweep
    two = _NearestTwo(dist[medoids])
    for idx in range(k):
        members = (members_of == idx).nonzero().squeeze(1)
        facility = -dist[members][:, members].sum(0)
        nearest, nearest_d = two.other_than(idx)  # the nearest other medoid, its distance
        rows = dist[members]  # (B, n): each candidate as medoid idx
        take = (rows < nearest_d) | ((rows == nearest_d) & (idx < nearest))
        if k == 1:
            take = torch.ones_like(take)
        clusters = torch.where(take, torch.full_like(nearest, idx), nearest.expand_as(rows))
        keep = positions != idx
        clusters[:, medoids[keep]] = positions[keep]
        clusters[torch.arange(len(members), device=dev), members] = idx
        total = facility + margin_multiplier * (1.0 - clustering_scores(labels, clusters, k, margin_type))
        pick = members[int(total.argmax())]
        if pick != medoids[idx]:
            medoids = medoids.clone()
            medoids[idx] = pick
            two.replace(idx, dist[pick])
    return medoids


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
    medoids = _greedy(dist, labels, margin_multiplier, margin_type)
    if enable_pam_finetuning:
        for _ in range(PAM_SWEEPS):
            medoids = _pam_sweep(dist, labels, medoids, margin_multiplier, margin_type)
    k = len(medoids)
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
