"""k-means with faiss (its GPU build where CUDA and faiss' GPU support are present)."""

from __future__ import annotations

import faiss
import numpy as np
import torch

from dscl._arrays import as_float_matrix, to_numpy32

__all__ = ["kmeans", "faiss_gpu_available"]


def faiss_gpu_available() -> bool:
    """True when a CUDA device is visible and the installed faiss has GPU support."""
    return (
        torch.cuda.is_available()
        and hasattr(faiss, "StandardGpuResources")
        and faiss.get_num_gpus() > 0
    )


def kmeans(
    x,
    n_clusters: int,
    seed: int = 0,
    niter: int = 20,
    nredo: int = 1,
    max_points_per_centroid: int = 1_000_000,
    early_stop_threshold: float = 0.0,
) -> np.ndarray:
    """Lloyd's k-means with the squared Euclidean distance (faiss).

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

    Returns
    -------
    ndarray of shape (n,), int64
        The cluster index of each row.
    """
    data = to_numpy32(as_float_matrix(x, "x"))
    n, d = data.shape
    if not 1 <= int(n_clusters) <= n:
        raise ValueError(f"n_clusters must be in [1, {n}] for {n} points, got {n_clusters}")
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
