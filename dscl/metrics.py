"""Evaluation metrics of [1]: NMI of a k-means partition and Recall@K.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dscl._arrays import as_float_matrix, as_label_vector
from dscl.kmeans import kmeans
from dscl.neighbors import iter_neighbors
from dscl.spectral import spectral_embedding

__all__ = ["recall_at_k", "nmi", "l2_normalize", "evaluate_embedding"]


def recall_at_k(
    embeddings, labels, ks: Sequence[int] = (1, 2, 4, 8), chunk: int = 4096, backend="auto"
) -> dict[int, float]:
    """Recall@K: the fraction of queries with a same-class point among their K nearest
    neighbours (Euclidean distance), the query itself excluded. Exact.

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    labels : array-like of shape (n,), integers
    ks : sequence of int
        Each K in [1, n - 1].
    chunk : int
        Queries per chunk: at most ``chunk * n`` distances exist at once.
    backend : {"auto", "faiss", "torch"}
        See :func:`dscl.neighbors.iter_neighbors`.

    Returns
    -------
    dict mapping K to the recall in [0, 1].
    """
    x = as_float_matrix(embeddings)
    y = as_label_vector(labels, x.shape[0])
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("ks must name at least one K")
    kmax = ks[-1]
    if ks[0] < 1 or kmax >= x.shape[0]:
        raise ValueError(f"every K must be in [1, {x.shape[0] - 1}], got {ks}")
    first_hit = np.empty(x.shape[0], dtype=np.int64)  # rank of the first same-class hit
    for start, ids in iter_neighbors(x, kmax, chunk=chunk, backend=backend):
        match = y[ids] == y[start : start + ids.shape[0], None]  # (m, kmax)
        first_hit[start : start + ids.shape[0]] = np.where(
            match.any(axis=1), match.argmax(axis=1), kmax
        )
    return {k: float(np.mean(first_hit < k)) for k in ks}


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(labels, assignments, average_method: str = "arithmetic") -> float:
    """Normalised mutual information between two partitions.

    ``NMI = I(U; V) / mean(H(U), H(V))`` with natural logarithms; the mean is
    scikit-learn's default (arithmetic), the convention of deep-metric-learning code.

    Parameters
    ----------
    labels, assignments : array-like of shape (n,), integers
    average_method : {"arithmetic", "geometric", "min", "max"}

    Returns
    -------
    float in [0, 1]; 1.0 when both partitions are a single cluster.
    """
    a = as_label_vector(labels, name="labels")
    b = as_label_vector(assignments, a.shape[0], name="assignments")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    na, nb = ai.max() + 1, bi.max() + 1
    if na == nb == 1:
        return 1.0
    # the non-zero cells of the contingency table (never the dense na x nb table)
    cells, joint = np.unique(ai * nb + bi, return_counts=True)
    pij = joint / a.shape[0]
    pa = np.bincount(ai) / a.shape[0]
    pb = np.bincount(bi) / a.shape[0]
    mi = float((pij * (np.log(pij) - np.log(pa[cells // nb]) - np.log(pb[cells % nb]))).sum())
    ha, hb = _entropy(np.bincount(ai)), _entropy(np.bincount(bi))
    means = {
        "arithmetic": (ha + hb) / 2,
        "geometric": np.sqrt(ha * hb),
        "min": min(ha, hb),
        "max": max(ha, hb),
    }
    if average_method not in means:
        raise ValueError(f"average_method must be one of {sorted(means)}, got {average_method!r}")
    denom = means[average_method]
    return float(np.clip(mi / denom, 0.0, 1.0)) if denom > 0 else 0.0


def l2_normalize(embeddings):
    """Rows scaled to unit Euclidean norm (zero rows stay zero); keeps the array type."""
    was_numpy = isinstance(embeddings, np.ndarray)
    x = as_float_matrix(embeddings)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return x.cpu().numpy() if was_numpy else x


def evaluate_embedding(
    embeddings,
    labels,
    ks: Sequence[int] = (1, 2, 4, 8),
    seed: int = 0,
    kmeans_niter: int = 20,
    kmeans_nredo: int = 1,
    backend: str = "auto",
    kmeans_backend: str = "auto",
) -> dict[str, dict[str, float]]:
    """NMI and Recall@K of a test embedding "with SC" and "without SC", as in [1].

    * with SC: the rows of T from Algorithm 2 (:func:`dscl.spectral.spectral_embedding`);
    * without SC: the l2-normalised embedding (Section 4.2 of [1]).

    k-means uses k = the number of classes in ``labels``.

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    labels : array-like of shape (n,), integers
    ks : sequence of int
        The K of Recall@K.
    seed, kmeans_niter, kmeans_nredo :
        k-means settings.
    backend : {"auto", "faiss", "torch"}
        Nearest-neighbour backend, see :func:`dscl.neighbors.iter_neighbors`.
    kmeans_backend : {"auto", "faiss", "torch"}
        k-means backend, see :func:`dscl.kmeans.kmeans`.

    Returns
    -------
    ``{"with_sc": {"nmi": .., "recall@1": .., ...}, "without_sc": {...}}``, in [0, 1].
    """
    x = as_float_matrix(embeddings)
    y = as_label_vector(labels, x.shape[0])
    n_classes = int(np.unique(y).size)
    if n_classes < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {n_classes}")
    results = {}
    for variant, rep in (("with_sc", spectral_embedding(x)), ("without_sc", l2_normalize(x))):
        assignment = kmeans(rep, n_classes, seed=seed, niter=kmeans_niter, nredo=kmeans_nredo,
                            backend=kmeans_backend)
        scores = {"nmi": nmi(y, assignment)}
        for k, value in recall_at_k(rep, y, ks, backend=backend).items():
            scores[f"recall@{k}"] = value
        results[variant] = scores
    return results
