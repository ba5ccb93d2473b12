"""Evaluation metrics of [1]: NMI of a k-means partition and Recall@K; and MAP@R and
R-Precision, the retrieval metrics of [2].

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
.. [2] Musgrave, Belongie, Lim. A Metric Learning Reality Check. ECCV 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dscl._arrays import as_float_matrix, as_label_vector
from dscl.evaluation.kmeans import NITER, NREDO, kmeans
from dscl.evaluation.neighbors import iter_neighbors
from dscl.evaluation.spectral import spectral_embedding

__all__ = [
    "evaluate_embedding",
    "in_percent",
    "l2_normalize",
    "nmi",
    "recall_at_k",
    "retrieval_details",
    "retrieval_scores",
    "scores_from_details",
    "summarize_runs",
]


def retrieval_details(
    embeddings,
    labels,
    kmax: int,
    map_at_r: bool = True,
    chunk: int = 4096,
    backend="auto",
) -> dict[str, np.ndarray]:
    """Per-query retrieval quantities from one exact nearest-neighbour search (Euclidean
    distance, the query itself excluded), in chunks of queries: what
    :func:`retrieval_scores` averages, and what a bootstrap over test classes resamples
    (:mod:`dscl.evaluation.bootstrap`) without searching again.

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    labels : array-like of shape (n,), integers
    kmax : int
        The largest K of Recall@K (0: none), in [0, n - 1].
    map_at_r, chunk, backend :
        As :func:`retrieval_scores`.

    Returns
    -------
    ``{"first_hit": (n,) int64, "r": (n,) int64}`` and, with ``map_at_r``,
    ``{"ap": (n,), "rp": (n,)}``: the rank (0-based) of each query's first same-class
    neighbour among its ``max(kmax, R)`` nearest (that number where there is none), the
    other points of its class R, and its average precision at R and R-Precision.
    """
    x = as_float_matrix(embeddings)
    y = as_label_vector(labels, x.shape[0])
    n = x.shape[0]
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    r = counts[inverse] - 1  # (n,) the other points of each query's class
    if map_at_r and not r.any():
        raise ValueError("MAP@R needs a class with at least two points; every class has one")
    if not 0 <= kmax < n:
        raise ValueError(f"every K must be in [1, {n - 1}], got {kmax}")
    kmax = max(kmax, int(r.max()) if map_at_r else 0)
    chunk = max(1, min(chunk, (1 << 24) // kmax))  # neighbour lists of at most 2^24 entries
    first_hit = np.empty(n, dtype=np.int64)  # rank of the first same-class hit
    ap = np.zeros(n)  # average precision at R of each query
    rp = np.zeros(n)  # R-Precision of each query
    for start, ids in iter_neighbors(x, kmax, chunk=chunk, backend=backend):
        stop = start + ids.shape[0]
        match = y[ids] == y[start:stop, None]  # (m, kmax)
        first_hit[start:stop] = np.where(match.any(axis=1), match.argmax(axis=1), kmax)
        if map_at_r:
            rq = r[start:stop]
            within = match & (np.arange(kmax)[None, :] < rq[:, None])  # hits among the first R
            hits = np.cumsum(within, axis=1)
            precision = np.where(within, hits / np.arange(1, kmax + 1)[None, :], 0.0)
            safe = np.maximum(rq, 1)
            ap[start:stop] = precision.sum(axis=1) / safe
            rp[start:stop] = hits[:, -1] / safe
    out = {"first_hit": first_hit, "r": r.astype(np.int64)}
    if map_at_r:
        out.update(ap=ap, rp=rp)
    return out


def scores_from_details(details: dict[str, np.ndarray], ks: Sequence[int]) -> dict[str, float]:
    """Recall@K (each K of ``ks``), MAP@R and R-Precision (where ``details`` has them)
    from :func:`retrieval_details`. Queries alone in their class (R = 0) are left out of
    MAP@R and R-Precision."""
    scores = {f"recall@{k}": float(np.mean(details["first_hit"] < k)) for k in sorted({int(k) for k in ks})}
    if "ap" in details:
        kept = details["r"] > 0
        scores["map@r"] = float(details["ap"][kept].mean())
        scores["r_precision"] = float(details["rp"][kept].mean())
    return scores


def retrieval_scores(
    embeddings,
    labels,
    ks: Sequence[int] = (1, 2, 4, 8),
    map_at_r: bool = True,
    chunk: int = 4096,
    backend="auto",
) -> dict[str, float]:
    """Recall@K, and MAP@R and R-Precision, the retrieval metrics of [2], from one exact
    nearest-neighbour search (Euclidean distance, the query itself excluded), in chunks
    of queries.

    * ``recall@K``: the fraction of queries with a same-class point among their K
      nearest neighbours [1].
    * ``r_precision``: for a query whose class has R other points, the fraction of its R
      nearest neighbours that share its class; averaged over queries.
    * ``map@r``: ``(1 / R) * sum_{i <= R} P@i * [neighbour i shares the class]``, averaged
      over queries: R-Precision that also rewards ranking the matches first.

    Queries alone in their class (R = 0) are left out of MAP@R and R-Precision, as in
    pytorch-metric-learning's ``AccuracyCalculator``.

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    labels : array-like of shape (n,), integers
    ks : sequence of int
        Each K in [1, n - 1]; may be empty when ``map_at_r``.
    map_at_r : bool
        Also compute ``map@r`` and ``r_precision``.
    chunk : int
        Queries per chunk: at most ``chunk * n`` distances exist at once, and the
        neighbour lists hold ``chunk * max(K, R)`` ids.
    backend : {"auto", "faiss", "torch"}
        See :func:`dscl.evaluation.neighbors.iter_neighbors`.

    Returns
    -------
    ``{"recall@1": .., ..., "map@r": .., "r_precision": ..}``, fractions in [0, 1].
    """
    ks = sorted({int(k) for k in ks})
    if not ks and not map_at_r:
        raise ValueError("ks must name at least one K")
    n = as_float_matrix(embeddings).shape[0]
    if ks and (ks[0] < 1 or ks[-1] >= n):
        raise ValueError(f"every K must be in [1, {n - 1}], got {ks}")
    details = retrieval_details(embeddings, labels, ks[-1] if ks else 0, map_at_r, chunk, backend)
    return scores_from_details(details, ks)


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
        See :func:`dscl.evaluation.neighbors.iter_neighbors`.

    Returns
    -------
    dict mapping K to the recall in [0, 1].
    """
    scores = retrieval_scores(embeddings, labels, ks, map_at_r=False, chunk=chunk, backend=backend)
    return {int(name.split("@")[1]): value for name, value in scores.items()}


def nmi(labels, assignments, average_method: str = "arithmetic") -> float:
    """Normalised mutual information between two partitions, as scikit-learn's
    ``normalized_mutual_info_score`` defines it (the arithmetic mean of the entropies by
    default, the convention of deep-metric-learning code; the tests check the two agree).

    ``NMI = I(U; V) / mean(H(U), H(V))``, natural logarithms.

    Written here from the contingency table rather than imported: scikit-learn's metrics
    take 0.8 s to import, paid by every train and evaluate stage process, for twenty
    lines of arithmetic.

    Parameters
    ----------
    labels, assignments : array-like of shape (n,), integers
    average_method : {"arithmetic", "geometric", "min", "max"}

    Returns
    -------
    float in [0, 1]; 1.0 when both partitions are a single cluster, 0.0 when only one is.
    """
    a = as_label_vector(labels, name="labels")
    b = as_label_vector(assignments, a.shape[0], name="assignments")
    if average_method not in NMI_AVERAGES:
        raise ValueError(f"average_method must be one of {sorted(NMI_AVERAGES)}, got {average_method!r}")
    _, u = np.unique(a, return_inverse=True)
    _, v = np.unique(b, return_inverse=True)
    ku, kv = int(u.max()) + 1, int(v.max()) + 1
    if ku == kv == 1:
        return 1.0
    n = float(a.shape[0])
    joint = np.bincount(u * kv + v, minlength=ku * kv).astype(np.float64)  # (ku * kv,) contingency
    cells = joint[joint > 0]
    pu, pv = np.bincount(u) / n, np.bincount(v) / n
    outer = np.outer(pu, pv).ravel()[joint > 0]
    mi = max(float(np.sum(cells / n * (np.log(cells / n) - np.log(outer)))), 0.0)
    if mi == 0.0:
        return 0.0
    hu, hv = float(-np.sum(pu * np.log(pu))), float(-np.sum(pv * np.log(pv)))
    mean = {
        "arithmetic": (hu + hv) / 2,
        "geometric": np.sqrt(hu * hv),
        "min": min(hu, hv),
        "max": max(hu, hv),
    }
    return float(mi / max(mean[average_method], np.finfo(np.float64).eps))


NMI_AVERAGES = ("arithmetic", "geometric", "min", "max")


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
    *,
    seed: int = 0,
    kmeans_niter: int = NITER,
    kmeans_nredo: int = NREDO,
    backend: str = "auto",
    kmeans_backend: str = "auto",
    map_at_r: bool = True,
    return_details: bool = False,
):
    """NMI and Recall@K of a test embedding "with SC" and "without SC", as in [1], and
    MAP@R and R-Precision [2] (see :func:`retrieval_scores`).

    * with SC: the rows of T from Algorithm 2 (:func:`dscl.evaluation.spectral.spectral_embedding`);
    * without SC: the l2-normalised embedding (Section 4.2 of [1]).

    k-means uses k = the number of classes in ``labels``.

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    labels : array-like of shape (n,), integers
    ks : sequence of int
        The K of Recall@K.
    seed, kmeans_niter, kmeans_nredo :
        k-means settings (:func:`dscl.evaluation.kmeans.kmeans`: the best of ``kmeans_nredo``
        k-means++ runs).
    backend : {"auto", "faiss", "torch"}
        Nearest-neighbour backend, see :func:`dscl.evaluation.neighbors.iter_neighbors`.
    kmeans_backend : {"auto", "faiss", "torch"}
        k-means backend, see :func:`dscl.evaluation.kmeans.kmeans`.
    map_at_r : bool
        Also compute ``map@r`` and ``r_precision``.
    return_details : bool
        Also return, per variant, the per-query quantities of :func:`retrieval_details`
        and the k-means ``assignment`` (n,): what :mod:`dscl.evaluation.bootstrap` resamples.

    Returns
    -------
    ``{"with_sc": {"nmi": .., "recall@1": .., ..., "map@r": .., "r_precision": ..},
    "without_sc": {...}}``, in [0, 1]; with ``return_details``, the pair
    ``(scores, {"with_sc": {...arrays}, "without_sc": {...}})``.
    """
    x = as_float_matrix(embeddings)
    y = as_label_vector(labels, x.shape[0])
    n_classes = int(np.unique(y).size)
    if n_classes < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {n_classes}")
    ks = sorted({int(k) for k in ks})
    if ks and (ks[0] < 1 or ks[-1] >= x.shape[0]):
        raise ValueError(f"every K must be in [1, {x.shape[0] - 1}], got {ks}")
    results, details = {}, {}
    for variant, rep in (("with_sc", spectral_embedding(x)), ("without_sc", l2_normalize(x))):
        assignment = kmeans(
            rep, n_classes, seed=seed, niter=kmeans_niter, nredo=kmeans_nredo, backend=kmeans_backend
        )
        found = retrieval_details(rep, y, ks[-1] if ks else 0, map_at_r=map_at_r, backend=backend)
        results[variant] = {"nmi": nmi(y, assignment), **scores_from_details(found, ks)}
        details[variant] = {**found, "assignment": np.asarray(assignment, dtype=np.int64)}
    return (results, details) if return_details else results


def in_percent(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Scores of :func:`evaluate_embedding` in percent, rounded to 0.01 as the paper prints them."""
    return {variant: {name: round(100.0 * v, 2) for name, v in s.items()} for variant, s in scores.items()}


def summarize_runs(results: list[dict], seeds: list[int | None]) -> dict:
    """The scores of one or several training runs (one per seed) of a method.

    One run: its scores. Several: the mean of each score over the runs under
    ``with_sc``/``without_sc`` (what tables and the regression gate read), the sample
    standard deviation under ``std``, and each run's scores under ``runs``.
    """
    if len(results) == 1:
        return results[0]
    out: dict = {}
    std: dict = {}
    for variant, scores in results[0].items():
        out[variant], std[variant] = {}, {}
        for name in scores:
            values = np.array([r[variant][name] for r in results])
            out[variant][name] = round(float(values.mean()), 2)
            std[variant][name] = round(float(values.std(ddof=1)), 2)
    out["std"] = std
    out["runs"] = [{"seed": seed, **r} for seed, r in zip(seeds, results)]
    return out
