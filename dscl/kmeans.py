"""k-means: faiss (its GPU build where CUDA and faiss' GPU support are present), or a
chunked torch implementation that runs on any torch device (the GPU path when the
installed faiss has no GPU support)."""

from __future__ import annotations

import faiss
import numpy as np
import torch

from dscl._arrays import as_float_matrix, to_numpy32

__all__ = ["KMEANS_BACKENDS", "faiss_gpu_available", "kmeans", "torch_kmeans"]

KMEANS_BACKENDS = ("auto", "faiss", "torch")


def faiss_gpu_available() -> bool:
    """True when a CUDA device is visible and the installed faiss has GPU support."""
    return torch.cuda.is_available() and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def kmeans(
    x,
    n_clusters: int,
    seed: int = 0,
    niter: int = 20,
    nredo: int = 1,
    max_points_per_centroid: int = 1_000_000,
    early_stop_threshold: float = 0.0,
    backend: str = "auto",
) -> np.ndarray:
    """Lloyd's k-means with the squared Euclidean distance.

    Parameters
    ----------
    x : ndarray or Tensor of shape (n, d)
    n_clusters : int
        Number of clusters, 1 <= n_clusters <= n.
    seed : int
        Seed of the initialisation (faiss samples the initial centroids).
    niter : int
        Lloyd iterations per run.
    nredo : int
        Independent runs; the one of lowest objective is kept.
    max_points_per_centroid : int
        faiss subsamples the training set above ``n_clusters * max_points_per_centroid``;
        the large default keeps every point, as the paper's protocol clusters the whole
        test set.
    early_stop_threshold : float
        faiss stops before ``niter`` iterations once the objective improves by no more
        than this fraction; the default 0.0 stops only at a fixed point, where further
        iterations change nothing. A negative value runs every iteration.
    backend : {"auto", "faiss", "torch"}
        "auto": faiss on its GPU build where there is one, else :func:`torch_kmeans` on
        CUDA where a GPU is present, else faiss on the CPU. (``max_points_per_centroid``
        and ``early_stop_threshold`` are faiss' own; the torch path uses every point and
        stops at a fixed point.)

    Returns
    -------
    ndarray of shape (n,), int64
        The cluster index of each row.
    """
    if backend not in KMEANS_BACKENDS:
        raise ValueError(f"backend must be one of {KMEANS_BACKENDS}, got {backend!r}")
    x = as_float_matrix(x, "x")
    n, d = x.shape
    if not 1 <= int(n_clusters) <= n:
        raise ValueError(f"n_clusters must be in [1, {n}] for {n} points, got {n_clusters}")
    if backend == "torch" or (
        backend == "auto" and not faiss_gpu_available() and (x.is_cuda or torch.cuda.is_available())
    ):
        device = x.device if x.is_cuda or backend == "torch" else torch.device("cuda")
        return torch_kmeans(x.to(device), int(n_clusters), seed=seed, niter=niter, nredo=nredo)
    data = to_numpy32(x)
    km = faiss.Kmeans(
        d,
        int(n_clusters),
        niter=int(niter),
        nredo=int(nredo),
        seed=int(seed),
        gpu=faiss_gpu_available(),
        max_points_per_centroid=int(max_points_per_centroid),
        early_stop_threshold=float(early_stop_threshold),
        verbose=False,
    )
    km.train(data)
    _, assignment = km.index.search(data, 1)  # (n, 1)
    return assignment[:, 0].astype(np.int64)


def torch_kmeans(
    x: torch.Tensor, n_clusters: int, seed: int = 0, niter: int = 20, nredo: int = 1, chunk_size: int = 4096
) -> np.ndarray:
    """Lloyd's k-means in torch, on ``x``'s device, as faiss does it: initial centroids
    sampled among the points (seeded), ``niter`` iterations at most, stopping at a fixed
    point (no assignment changes), the best of ``nredo`` runs by objective. An emptied
    cluster takes the point farthest from its centroid. Distances are computed for
    ``chunk_size`` points at a time: memory is O(chunk_size * n_clusters), never n x n.

    Parameters
    ----------
    x : Tensor of shape (n, d)

    Returns
    -------
    ndarray of shape (n,), int64
    """
    x = as_float_matrix(x, "x").float()
    n = x.shape[0]
    k = int(n_clusters)
    if not 1 <= k <= n:
        raise ValueError(f"n_clusters must be in [1, {n}] for {n} points, got {n_clusters}")
    generator = torch.Generator().manual_seed(int(seed))  # on the CPU: the same draws everywhere
    sq = x.square().sum(dim=1)  # (n,)
    best, best_objective = None, float("inf")
    for _ in range(max(1, int(nredo))):
        centroids = x[torch.randperm(n, generator=generator)[:k].to(x.device)].clone()  # (k, d)
        assignment = None
        for _ in range(max(1, int(niter))):
            new, dist = _nearest(x, sq, centroids, chunk_size)
            if assignment is not None and torch.equal(new, assignment):
                break  # a fixed point: further iterations change nothing
            assignment = new
            centroids = _centroids(x, assignment, dist, k)
        assignment, dist = _nearest(x, sq, centroids, chunk_size)
        objective = float(dist.sum())
        if objective < best_objective:
            best, best_objective = assignment, objective
    return best.cpu().numpy().astype(np.int64)


def _nearest(x: torch.Tensor, sq: torch.Tensor, centroids: torch.Tensor, chunk_size: int):
    """Index of the nearest centroid of every point, and the squared distance to it."""
    csq = centroids.square().sum(dim=1)  # (k,)
    ids, dists = [], []
    for start in range(0, x.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        d2 = sq[rows, None] - 2.0 * (x[rows] @ centroids.T) + csq[None, :]  # (m, k)
        dist, idx = d2.min(dim=1)
        ids.append(idx)
        dists.append(dist.clamp_min(0.0))
    return torch.cat(ids), torch.cat(dists)


def _centroids(x: torch.Tensor, assignment: torch.Tensor, dist: torch.Tensor, k: int) -> torch.Tensor:
    """The mean of each cluster; an empty cluster is moved onto the points farthest from
    their centroids (deterministic)."""
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, assignment, x)
    counts = torch.bincount(assignment, minlength=k)  # (k,)
    centroids = sums / counts.clamp_min(1)[:, None].to(x.dtype)
    empty = torch.nonzero(counts == 0).flatten()
    if empty.numel():
        far = torch.topk(dist, empty.numel()).indices
        centroids[empty] = x[far]
    return centroids
