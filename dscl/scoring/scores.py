"""The scores of an embedding with and without spectral clustering: NMI of a k-means
partition and the retrieval metrics of one neighbour search, on the rows of Algorithm 2
and on the l2-normalised embedding. Training's validation and the test protocol
(:mod:`dscl.evaluation.protocol`) both compute them.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
.. [2] Musgrave, Belongie, Lim. A Metric Learning Reality Check. ECCV 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dscl._arrays import as_float_matrix, as_label_vector
from dscl.choices import KMEANS_SEEDINGS
from dscl.linalg import l2_normalize
from dscl.scoring.kmeans import NITER, NREDO, kmeans, sampled_kmeans
from dscl.scoring.nmi import nmi
from dscl.scoring.retrieval import query_scores, retrieval_details
from dscl.scoring.spectral import spectral_embedding

__all__ = ["evaluate_embedding", "in_percent", "validation_scores"]


def evaluate_embedding(
    embeddings,
    labels,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    seed: int = 0,
    kmeans_niter: int = NITER,
    kmeans_nredo: int = NREDO,
    backend: str = "auto",
    kmeans_backend: str = "auto",
    seeding: str = "kmeans++",
    map_at_r: bool = True,
    return_details: bool = False,
    partition: Callable[[object, int], np.ndarray] | None = None,
):
    """NMI and Recall@K of a test embedding "with SC" and "without SC", as in [1], and
    MAP@R and R-Precision [2] (see :func:`dscl.evaluation.metrics.retrieval_scores`).

    * with SC: the rows of T from Algorithm 2 (:func:`dscl.scoring.spectral.spectral_embedding`);
    * without SC: the l2-normalised embedding (Section 4.2 of [1]).

    k-means uses k = the number of classes in ``labels``.

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    labels : array-like of shape (n,), integers
    ks : sequence of int
        The K of Recall@K.
    seed, kmeans_niter, kmeans_nredo :
        k-means settings (:func:`dscl.scoring.kmeans.kmeans`: the best of ``kmeans_nredo``
        k-means++ runs).
    backend : {"auto", "faiss", "torch"}
        Nearest-neighbour backend, see :func:`dscl.scoring.neighbors.iter_neighbors`.
    kmeans_backend : {"auto", "faiss", "torch"}
        k-means backend, see :func:`dscl.scoring.kmeans.kmeans`.
    seeding : {"kmeans++", "random"}
        greedy k-means++ (:func:`dscl.scoring.kmeans.kmeans`), or, for many clusters,
        faiss's k-means from points drawn at random (:func:`dscl.scoring.kmeans.sampled_kmeans`,
        ``kmeans_niter`` iterations, the best of ``kmeans_nredo`` runs).
    map_at_r : bool
        Also compute ``map@r`` and ``r_precision``.
    return_details : bool
        Also return, per variant, the per-query quantities of :func:`dscl.scoring.retrieval.retrieval_details`
        and the k-means ``assignment`` (n,): what :mod:`dscl.evaluation.bootstrap` resamples.
    partition : callable, optional
        ``partition(representation, k)``: the partition (n,), or several (R, n) whose NMIs
        are averaged, in place of the k-means above (the test protocol's many-cluster k-means).

    Returns
    -------
    ``{"with_sc": {"nmi": .., "recall@1": .., ..., "map@r": .., "r_precision": ..},
    "without_sc": {...}}``, in [0, 1]; with ``return_details``, the pair
    ``(scores, {"with_sc": {...arrays}, "without_sc": {...}})``.
    """
    if seeding not in KMEANS_SEEDINGS:
        raise ValueError(f"seeding must be one of {list(KMEANS_SEEDINGS)}, got {seeding!r}")
    x = as_float_matrix(embeddings)
    y = as_label_vector(labels, x.shape[0])
    n_classes = int(np.unique(y).size)
    if n_classes < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {n_classes}")
    ks = sorted({int(k) for k in ks})
    if ks and (ks[0] < 1 or ks[-1] >= x.shape[0]):
        raise ValueError(f"every K must be in [1, {x.shape[0] - 1}], got {ks}")
    results, details = {}, {}
    if partition is None:

        def partition(rep, k: int) -> np.ndarray:
            if seeding == "random":
                return sampled_kmeans(rep, k, seed=seed, niter=kmeans_niter, nredo=kmeans_nredo)
            return kmeans(rep, k, seed=seed, niter=kmeans_niter, nredo=kmeans_nredo, backend=kmeans_backend)

    for variant, rep in (("with_sc", spectral_embedding(x)), ("without_sc", l2_normalize(x))):
        assignment = np.asarray(partition(rep, n_classes), dtype=np.int64)  # (n,) or (R, n)
        found = retrieval_details(rep, y, ks[-1] if ks else 0, map_at_r=map_at_r, backend=backend)
        score = float(np.mean([nmi(y, a) for a in np.atleast_2d(assignment)]))
        results[variant] = {"nmi": score, **query_scores(found, ks)}
        details[variant] = {**found, "assignment": assignment}
    return (results, details) if return_details else results


def in_percent(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Scores of :func:`evaluate_embedding` in percent, rounded to 0.01 as the paper prints them."""
    return {variant: {name: round(100.0 * v, 2) for name, v in s.items()} for variant, s in scores.items()}


def validation_scores(embeddings, labels, seed: int = 0, **kmeans) -> dict[str, dict[str, float]]:
    """What model selection reads (:mod:`dscl.scoring.selection`): NMI, R@1, MAP@R and
    R-Precision with and without SC, in percent (rounded to 0.01) as the reports;
    ``kmeans``: the k-means options of :func:`evaluate_embedding` (``kmeans_nredo``,
    ``seeding``, ...)."""
    return in_percent(evaluate_embedding(embeddings, labels, ks=(1,), seed=seed, **kmeans))
