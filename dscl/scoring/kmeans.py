"""k-means for the evaluation's NMI: greedy k-means++ seeding, Lloyd's iterations, and
several restarts of which the one of lowest objective is kept.

On a small test set one run's partition, and its NMI, depend on its seed; keeping the
lowest objective of ``nredo`` seeded runs (scikit-learn's ``n_init``, faiss' ``nredo``)
makes the NMI follow the embedding. The restarts run together as one batch of tensor
operations (one call per restart costs more in overhead than in arithmetic);
``backend="faiss"`` runs faiss' Lloyd iterations from the same seeded centroids.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dscl._arrays import as_float_matrix, to_numpy32
from dscl.choices import KMEANS_BACKENDS

__all__ = [
    "KMEANS_BACKENDS",
    "NITER",
    "NREDO",
    "faiss_gpu_available",
    "kmeans",
    "objectives",
    "sampled_kmeans",
]


# The defaults of params.yaml's evaluate.kmeans (the docs' "Reproducibility" page says
# how they were chosen).
NITER = 100
NREDO = 200

# At most this many floats in one intermediate tensor (distances, one-hot sums): restarts
# and points are processed in groups that fit it.
BUDGET = 1 << 24
ONE_HOT_MAX = 64  # clusters up to which the centroids' sums are one-hot products


def faiss_gpu_available() -> bool:
    """True when a CUDA device is visible and the installed faiss has GPU support."""
    import faiss

    return torch.cuda.is_available() and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def kmeans(
    x,
    n_clusters: int,
    seed: int = 0,
    niter: int = NITER,
    nredo: int = NREDO,
    backend: str = "auto",
) -> np.ndarray:
    """k-means (squared Euclidean distance): the best of ``nredo`` runs, each seeded by
    greedy k-means++ and refined by Lloyd's iterations.

    Parameters
    ----------
    x : ndarray or Tensor of shape (n, d)
    n_clusters : int
        Number of clusters, 1 <= n_clusters <= n.
    seed : int
        Seeds the k-means++ draws (uniform numbers drawn on the CPU, the same on any
        device). Run ``r`` has its own stream, so the first runs of a larger ``nredo``
        are those of a smaller one: more restarts never give a higher objective.
    niter : int
        Lloyd iterations per run at most; a run stops at a fixed point (no assignment
        changes; faiss: once the objective no longer decreases).
    nredo : int
        Runs; the one of lowest objective (:func:`objectives`, float64) is kept, the first
        on a tie.
    backend : {"auto", "faiss", "torch"}
        Lloyd's iterations: "torch" (on ``x``'s device, runs batched; "auto": this one, on
        CUDA where a GPU is present), or "faiss" (one run at a time, on the CPU or faiss'
        GPU build). The seeding is the same torch code for both.

    Returns
    -------
    ndarray of shape (n,), int64
        The cluster index of each row.
    """
    if backend not in KMEANS_BACKENDS:
        raise ValueError(f"backend must be one of {KMEANS_BACKENDS}, got {backend!r}")
    if int(niter) < 1 or int(nredo) < 1:
        raise ValueError(f"niter and nredo must be >= 1, got {niter} and {nredo}")
    x = as_float_matrix(x, "x")
    n, d = x.shape
    k = int(n_clusters)
    if not 1 <= k <= n:
        raise ValueError(f"n_clusters must be in [1, {n}] for {n} points, got {n_clusters}")
    if backend == "auto" and torch.cuda.is_available() and not x.is_cuda:
        x = x.to("cuda")
    x = x.float()
    group = max(1, min(int(nredo), BUDGET // (n * max(k, d))))  # runs computed together
    best, best_objective = None, math.inf
    for first in range(0, int(nredo), group):
        runs = range(first, min(first + group, int(nredo)))
        centroids = seed_centroids(x, k, [np.random.default_rng([seed, r]) for r in runs])  # (R, k, d)
        if backend == "faiss":
            assignments = np.stack([_faiss_lloyd(x, c, niter) for c in centroids])
        else:
            assignments = lloyd(x, centroids, niter)
        values = objectives(x, assignments, k)  # (R,)
        r = int(np.argmin(values))
        if values[r] < best_objective:
            best, best_objective = assignments[r], float(values[r])
    return best


def seed_centroids(x: torch.Tensor, n_clusters: int, rngs: list[np.random.Generator]) -> torch.Tensor:
    """Greedy k-means++ seeding of one run per generator, as scikit-learn's
    ``kmeans_plusplus``: the first centre a point drawn uniformly; each next one the best,
    by the potential (the sum of squared distances to the nearest centre), of
    ``2 + log(k)`` points drawn with probability proportional to their squared distance
    to the nearest centre chosen so far.

    Parameters
    ----------
    x : Tensor of shape (n, d), float32
    n_clusters : int
    rngs : list of R numpy Generators, one per run

    Returns
    -------
    Tensor of shape (R, n_clusters, d): the chosen points, on ``x``'s device.
    """
    n = x.shape[0]
    k, runs = int(n_clusters), len(rngs)
    trials = 2 + int(math.log(k))
    sq = x.square().sum(dim=1)  # (n,)
    first = torch.as_tensor([int(g.integers(n)) for g in rngs], device=x.device)  # (R,)
    chosen = [first]
    closest = _squared_distances(x, sq, x[first]).T.double()  # (R, n)
    for _ in range(1, k):
        cumulative = torch.cumsum(closest, dim=1)  # (R, n)
        uniform = torch.as_tensor(np.stack([g.random(trials) for g in rngs]), device=x.device)  # (R, t)
        candidates = torch.searchsorted(cumulative, uniform * cumulative[:, -1:]).clamp_max(n - 1)  # (R, t)
        d2 = _squared_distances(x, sq, x[candidates.flatten()]).T.double()  # (R * t, n)
        nearest = torch.minimum(closest[:, None, :], d2.view(runs, trials, n))  # (R, t, n)
        best = torch.argmin(nearest.sum(dim=2), dim=1)  # (R,)
        rows = torch.arange(runs, device=x.device)
        closest = nearest[rows, best]  # (R, n)
        chosen.append(candidates[rows, best])
    return x[torch.stack(chosen, dim=1)].clone()  # (R, k, d)


def lloyd(x: torch.Tensor, centroids: torch.Tensor, niter: int) -> np.ndarray:
    """Lloyd's iterations in torch, for R runs at once from ``centroids`` (R, k, d), on
    ``x``'s device: each run for at most ``niter`` iterations or until its assignment no
    longer changes (a fixed point: further iterations change nothing), after which it is
    left out of the batch. An emptied cluster takes the point farthest from its
    centroid. Distances are computed for a group of points at a time (never n x k x R
    floats at once when that is large).

    Returns
    -------
    ndarray of shape (R, n), int64: the nearest final centroid of each row, per run.
    """
    sq = x.square().sum(dim=1)  # (n,)
    k = centroids.shape[1]
    moving = torch.arange(centroids.shape[0], device=x.device)  # the runs still moving
    assignment, dist = _nearest(x, sq, centroids)  # (R', n) each: the moving runs'
    final = torch.empty_like(assignment)
    for _ in range(int(niter)):
        if not len(moving):
            break
        centroids = _centroids(x, assignment, dist, k)
        new, dist = _nearest(x, sq, centroids)
        changed = (new != assignment).any(dim=1)
        final[moving[~changed]] = new[~changed]  # at a fixed point
        moving, assignment, dist, centroids = moving[changed], new[changed], dist[changed], centroids[changed]
    final[moving] = assignment  # the runs that used every iteration
    return final.cpu().numpy().astype(np.int64)


def objectives(x: torch.Tensor, assignments: np.ndarray, n_clusters: int) -> np.ndarray:
    """The k-means objective of each partition: the sum of squared distances of the
    points to their cluster's mean, in float64 on the CPU (the same for every backend).

    Parameters
    ----------
    x : Tensor of shape (n, d)
    assignments : ndarray of shape (R, n), integers in [0, n_clusters)

    Returns
    -------
    ndarray of shape (R,)
    """
    data = x.detach().to("cpu", torch.float64).numpy()
    out = np.empty(len(assignments))
    for r, a in enumerate(assignments):
        order = np.argsort(a, kind="stable")
        counts = np.bincount(a, minlength=n_clusters)  # (k,)
        present = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]])
        means = np.zeros((n_clusters, data.shape[1]))
        means[present] = np.add.reduceat(data[order], starts, axis=0) / counts[present, None]  # (k, d)
        out[r] = np.square(data - means[a]).sum()
    return out


def _faiss_lloyd(x: torch.Tensor, centroids: torch.Tensor, niter: int) -> np.ndarray:
    """Lloyd's iterations by faiss from ``centroids`` (k, d): every point is used (no
    subsampling), and the run stops once the objective no longer decreases."""
    import faiss

    data = to_numpy32(x)
    km = faiss.Kmeans(
        data.shape[1],
        centroids.shape[0],
        niter=int(niter),
        nredo=1,
        gpu=faiss_gpu_available(),
        max_points_per_centroid=1 << 30,
        min_points_per_centroid=1,
        early_stop_threshold=0.0,
        verbose=False,
    )
    km.train(data, init_centroids=to_numpy32(centroids))
    _, assignment = km.index.search(data, 1)  # (n, 1)
    return assignment[:, 0].astype(np.int64)


def _chunks(n: int, width: int):
    """Row slices of ``n`` rows such that a (rows, width) block stays within BUDGET."""
    size = max(1, BUDGET // max(1, width))
    return [slice(s, s + size) for s in range(0, n, size)]


def _squared_distances(x: torch.Tensor, sq: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared distances of every row of ``x`` to each of ``centres`` (m, d) -> (n, m)."""
    csq = centres.square().sum(dim=1)  # (m,)
    return torch.cat(
        [
            (sq[rows, None] - 2.0 * (x[rows] @ centres.T) + csq[None, :]).clamp_min(0.0)
            for rows in _chunks(x.shape[0], centres.shape[0])
        ]
    )


def _nearest(x: torch.Tensor, sq: torch.Tensor, centroids: torch.Tensor):
    """Per run, the index of the nearest centroid of every point and the squared distance
    to it: two (R, n) tensors. The nearest is the argmin of ``|c|^2 - 2 x.c`` (a point's
    own ``|x|^2`` does not change it): one matrix product of the points with every run's
    centroids at once, group by group of points."""
    runs, k, d = centroids.shape
    flat = centroids.reshape(runs * k, d)
    csq = flat.square().sum(dim=1)  # (R * k,)
    ids, dists = [], []
    for rows in _chunks(x.shape[0], runs * k):
        part = torch.addmm(csq, x[rows], flat.T, alpha=-2.0).view(-1, runs, k)  # (m, R, k)
        dist, idx = part.min(dim=2)  # (m, R)
        ids.append(idx.T)
        dists.append((dist + sq[rows, None]).clamp_min(0.0).T)
    return torch.cat(ids, dim=1), torch.cat(dists, dim=1)


def _centroids(x: torch.Tensor, assignment: torch.Tensor, dist: torch.Tensor, k: int) -> torch.Tensor:
    """The mean of each cluster of each run (R, k, d); an empty cluster is moved onto the
    point farthest from its centroid. Sums in float64: for a few clusters as one product
    with the one-hot assignment (group by group of points), for many by ``index_add_``
    (k-fold less arithmetic), which accumulates in index order on the CPU, and on CUDA
    under deterministic algorithms (:func:`dscl.numerics.configure`)."""
    runs, n = assignment.shape
    d = x.shape[1]
    ids = assignment + k * torch.arange(runs, device=x.device)[:, None]  # (R, n)
    counts = torch.bincount(ids.flatten(), minlength=runs * k).view(runs, k)  # (R, k)
    data = x.double()
    if k <= ONE_HOT_MAX:
        sums = x.new_zeros(runs * k, d, dtype=torch.float64)
        for rows in _chunks(n, runs * k):
            part = ids[:, rows].T  # (m, R)
            onehot = data.new_zeros(part.shape[0], runs * k).scatter_(1, part, 1.0)  # (m, R * k)
            sums += onehot.T @ data[rows]
    else:
        source = data[None].expand(runs, n, d).reshape(runs * n, d)  # (R * n, d)
        sums = x.new_zeros(runs * k, d, dtype=torch.float64).index_add_(0, ids.flatten(), source)
    centroids = (sums.view(runs, k, d) / counts.clamp_min(1)[..., None]).to(x.dtype)
    for r, c in torch.nonzero(counts == 0).tolist():  # rare: a run whose cluster emptied
        far = int(torch.argmax(dist[r]))
        centroids[r, c] = x[far]
        dist[r, far] = -1.0  # the next emptied cluster of this run takes another point
    return centroids


def sampled_kmeans(x, n_clusters: int, seed: int, niter: int = 20, nredo: int = 1) -> np.ndarray:
    """k-means for many clusters, as the metric-learning libraries run it
    (pytorch-metric-learning's ``AccuracyCalculator``): faiss's ``Kmeans`` from k distinct
    points drawn at random (seeded), ``niter`` Lloyd iterations, the lowest objective of
    ``nredo`` runs, every point used. On SOP's 11,316 test classes greedy k-means++
    seeding is 11,316 sequential steps over all points; this seeding costs nothing, and
    its partitions score a lower NMI than greedy k-means++'s (docs, "Benchmarks": by
    7.7 points at a quarter of SOP's size), as the NMI the literature reports for SOP.

    Returns
    -------
    ndarray of shape (n,), int64
    """
    import faiss

    data = to_numpy32(as_float_matrix(x, "x"))
    km = faiss.Kmeans(
        data.shape[1],
        int(n_clusters),
        niter=int(niter),
        nredo=int(nredo),
        seed=int(seed),
        gpu=faiss_gpu_available(),
        max_points_per_centroid=1 << 30,
        min_points_per_centroid=1,  # SOP's classes hold 2 to 12 points: no warning
        verbose=False,
    )
    km.train(data)
    _, assignment = km.index.search(data, 1)  # (n, 1)
    return assignment[:, 0].astype(np.int64)
