"""The test metrics, one table: each metric's name, its label in the tables, and the
per-query values its score is the mean of (NMI: the k-means partition's), which the
point estimate, the bootstrap over test classes (:mod:`dscl.evaluation.bootstrap`) and the
report's columns all read. A metric is added here, as one entry; training's validation
computes the few that model selection may read (:mod:`dscl.scoring`), so adding one
re-runs no training.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
.. [2] Musgrave, Belongie, Lim. A Metric Learning Reality Check. ECCV 2020.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dscl._arrays import as_float_matrix
from dscl.scoring.retrieval import (
    MAP_AT_R,
    R_PRECISION,
    RECALL,
    QueryMetric,
    each_k,
    query_scores,
    retrieval_details,
)

__all__ = [
    "METRICS",
    "Metric",
    "label",
    "metric_names",
    "recall_at_k",
    "retrieval_scores",
    "summarize_runs",
    "table_scores",
]


@dataclass(frozen=True)
class Metric:
    """One test metric: ``name`` as the metrics files spell it (``{k}``: one per K of
    Recall@K), ``label`` as the tables print it, ``query`` its per-query values (None:
    NMI, a score of the k-means partition), and ``paper``: whether Tables 1-3 report it."""

    name: str
    label: str
    query: QueryMetric | None
    paper: bool = True

    def names(self, ks: Sequence[int]) -> list[str]:
        return [name for _, name in each_k(self.name, ks)]


METRICS = (
    Metric("nmi", "NMI", None),
    Metric("recall@{k}", "R@{k}", RECALL),
    Metric("map@r", "MAP@R", MAP_AT_R, paper=False),  # [2]; the paper has no such column
    Metric("r_precision", "RP", R_PRECISION, paper=False),
)


def table_scores(details: dict, ks: Sequence[int]) -> dict[str, float]:
    """Every retrieval metric of :data:`METRICS` that ``details`` (the per-query
    quantities of :func:`dscl.scoring.retrieval.retrieval_details`) can give: a metric
    added to the table is computed with no other change."""
    return query_scores(details, ks, [m.query for m in METRICS if m.query is not None])


def metric_names(ks: Sequence[int]) -> list[str]:
    """Every metric's name, in the table's order, for the K of ``ks`` (in their order)."""
    return [name for m in METRICS for name in m.names(ks)]


def label(name: str) -> str:
    """How the tables print the metric ``name`` (``recall@4`` -> ``R@4``)."""
    for m in METRICS:
        found = re.fullmatch(re.escape(m.name).replace(r"\{k\}", r"(?P<k>\d+)"), name)
        if found:
            return m.label.format(**found.groupdict())
    raise ValueError(f"unknown metric {name!r}; expected one of {[m.name for m in METRICS]}")


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
        See :func:`dscl.scoring.neighbors.iter_neighbors`.

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
    return query_scores(details, ks)


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
        See :func:`dscl.scoring.neighbors.iter_neighbors`.

    Returns
    -------
    dict mapping K to the recall in [0, 1].
    """
    scores = retrieval_scores(embeddings, labels, ks, map_at_r=False, chunk=chunk, backend=backend)
    return {int(name.split("@")[1]): value for name, value in scores.items()}


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
