"""The per-query quantities of one exact neighbour search, and the retrieval metrics
defined on them: Recall@K of [1], MAP@R and R-Precision of [2]. Training's validation
and the test evaluation both compute them.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
.. [2] Musgrave, Belongie, Lim. A Metric Learning Reality Check. ECCV 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dscl._arrays import as_float_matrix, as_label_vector
from dscl.scoring.neighbors import iter_neighbors

__all__ = ["MAP_AT_R", "RECALL", "R_PRECISION", "QueryMetric", "each_k", "query_scores", "retrieval_details"]


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


Details = Mapping[str, np.ndarray]


def each_k(name: str, ks: Sequence[int]) -> list[tuple[int, str]]:
    """``(K, the metric's name at K)`` for each K of ``ks`` where ``name`` holds ``{k}``
    (``recall@{k}``), else the one ``(0, name)``."""
    return [(k, name.format(k=k)) for k in ks] if "{k}" in name else [(0, name)]


@dataclass(frozen=True)
class QueryMetric:
    """A retrieval metric: the mean over queries of a per-query value.

    ``name`` (``{k}`` in it for a metric of each K); ``values(details, k)``: the
    ``(values, kept)`` of every query, ``kept`` None for all of them, or a mask (the
    queries the metric is defined for); ``needs``: the per-query quantities it reads.
    """

    name: str
    values: Callable[[Details, int], tuple[np.ndarray, np.ndarray | None]]
    needs: tuple[str, ...]

    def computable(self, details: Details) -> bool:
        return all(key in details for key in self.needs)

    def each(self, ks: Sequence[int]) -> list[tuple[int, str]]:
        return each_k(self.name, ks)


def _recall(details: Details, k: int):
    return details["first_hit"] < k, None  # a same-class point among the K nearest


def _map_at_r(details: Details, k: int):
    return details["ap"], details["r"] > 0  # queries alone in their class left out


def _r_precision(details: Details, k: int):
    return details["rp"], details["r"] > 0


RECALL = QueryMetric("recall@{k}", _recall, needs=("first_hit",))
MAP_AT_R = QueryMetric("map@r", _map_at_r, needs=("ap", "r"))
R_PRECISION = QueryMetric("r_precision", _r_precision, needs=("rp", "r"))


def query_scores(
    details: Details, ks: Sequence[int], metrics: Sequence[QueryMetric] = (RECALL, MAP_AT_R, R_PRECISION)
) -> dict[str, float]:
    """Each of ``metrics`` (by default Recall@K of each K of ``ks``, MAP@R and R-Precision)
    that ``details`` of :func:`retrieval_details` can give: the mean of its per-query values."""
    ks = sorted({int(k) for k in ks})
    scores = {}
    for metric in (m for m in metrics if m.computable(details)):
        for k, name in metric.each(ks):
            values, kept = metric.values(details, k)
            scores[name] = float(np.mean(values if kept is None else values[kept]))
    return scores
