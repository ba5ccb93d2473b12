"""Test-time spectral clustering, Algorithm 2 of [1].

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

import numpy as np
import torch

from dscl._arrays import as_float_matrix
from dscl.linalg import rank_truncated_svd
from dscl.scoring.kmeans import kmeans

__all__ = ["spectral_clustering", "spectral_embedding"]


def spectral_embedding(embeddings, rtol: float | None = None):
    """Rows of the normalised left singular vectors, steps 1-4 of Algorithm 2 of [1].

    1. mean-centre the test representation: ``M = F - 1 mean(F)``;
    2. ``r = rank(M)``, with singular values below ``rtol * max(S)`` counted as zero;
    3. ``U`` (n, r): the left singular vectors of M, so that ``M M^+ = U U^T``;
    4. ``T``: the rows of U, each l2-normalised.

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    rtol : float, optional
        Relative singular-value threshold; default ``max(n, d) * eps(dtype)``.

    Returns
    -------
    T : same type as ``embeddings`` (NumPy in, NumPy out), shape (n, r)

    References
    ----------
    .. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
    """
    was_numpy = isinstance(embeddings, np.ndarray)
    f = as_float_matrix(embeddings)
    m = f - f.mean(dim=0, keepdim=True)  # step 1, (n, d)
    # steps 2-3: U (n, r), the left singular vectors of the numerical rank r
    u, _, _ = rank_truncated_svd(m, rtol, zero_rank="embeddings are constant: the centred matrix has rank 0")
    norms = u.norm(dim=1, keepdim=True)
    t = u / norms.clamp_min(torch.finfo(u.dtype).tiny)  # step 4
    return t.cpu().numpy() if was_numpy else t


def spectral_clustering(
    embeddings, n_clusters: int, seed: int = 0, niter: int = 20, rtol: float | None = None
) -> np.ndarray:
    """Algorithm 2 of [1]: :func:`spectral_embedding`, then k-means on its rows (step 5).

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    n_clusters : int
        k of k-means.
    seed : int
        Seed of the k-means initialisation.
    niter : int
        Number of k-means iterations.
    rtol : float, optional
        See :func:`spectral_embedding`.

    Returns
    -------
    ndarray of shape (n,), int64
        Cluster index of each row.
    """
    return kmeans(spectral_embedding(embeddings, rtol), n_clusters, seed=seed, niter=niter)
