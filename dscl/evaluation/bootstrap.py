"""Confidence intervals of the test metrics by a bootstrap over *test classes*.

The protocol is class-disjoint, so a resample draws test classes with replacement and
keeps every image of each (Musgrave et al. 2020). Nothing is searched or clustered
again: Recall@K, MAP@R and R-Precision are per-query values summed per class (a
resample's score is ``(W @ sums) / (W @ counts)``, W the (resamples x classes)
multiplicities), and the NMI comes from the k-means partition's (classes x clusters)
contingency with its rows weighted by W. Percentile intervals; a paired difference of two
methods uses the same resamples for both; with several training runs, a resample's score
is their mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from dscl.evaluation.metrics import METRICS
from dscl.scoring.retrieval import each_k

__all__ = ["Interval", "class_resamples", "interval", "paired_difference", "resampled_scores"]


def class_resamples(labels, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(resamples, C) multiplicities of the C test classes (sorted ids) in each draw of
    C classes with replacement, seeded."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    n_classes = np.unique(np.asarray(labels)).size
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_classes, np.full(n_classes, 1.0 / n_classes), size=resamples).astype(np.float64)


def _xlogx(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def _resampled_nmi(inverse: np.ndarray, assignment: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The NMI (arithmetic normalisation, as scikit-learn's) of every resample: each class's
    row of the (classes x clusters) contingency weighted by how often it was drawn. A class
    drawn twice stays one class with twice its images (two copies of a class could not be
    told apart by any clustering, so counting them as two classes would bias NMI down)."""
    n_classes = weights.shape[1]
    _, clusters = np.unique(assignment, return_inverse=True)
    cont = sparse.csr_matrix(
        (np.ones(len(inverse)), (inverse, clusters)), shape=(n_classes, int(clusters.max()) + 1)
    )
    cont.sum_duplicates()
    sizes = np.asarray(cont.sum(axis=1)).ravel()  # images per class
    per_class = np.asarray(
        sparse.csr_matrix((_xlogx(cont.data), cont.indices, cont.indptr)).sum(axis=1)
    ).ravel()
    w_log_w = _xlogx(weights)  # W log W, 0 where a class is not drawn
    n = weights @ sizes
    cols = sparse.csr_matrix(weights) @ cont  # (B, K) cluster sizes of each resample
    cols_xlogx = np.asarray(
        sparse.csr_matrix((_xlogx(cols.data), cols.indices, cols.indptr)).sum(axis=1)
    ).ravel()
    # sums of x log x over the weighted cells and classes: sum_c W_c (A_c + N_c log W_c)
    cells = weights @ per_class + w_log_w @ sizes
    rows = weights @ _xlogx(sizes) + w_log_w @ sizes
    log_n = np.log(n)
    h_y, h_p = log_n - rows / n, log_n - cols_xlogx / n
    mi = np.clip((cells - rows - cols_xlogx) / n + log_n, 0.0, None)
    single = ((weights > 0).sum(1) == 1) | (np.diff(cols.indptr) == 1)  # one class or one cluster
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(single | (mi == 0), 0.0, mi / ((h_y + h_p) / 2))
    both = ((weights > 0).sum(1) == 1) & (np.diff(cols.indptr) == 1)
    return np.where(both, 1.0, out)


def resampled_scores(
    labels, details: Mapping[str, np.ndarray], weights: np.ndarray, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Each metric of one evaluated embedding under every resample.

    Parameters
    ----------
    labels : array-like of shape (n,)
    details : mapping
        One variant's per-query quantities and k-means ``assignment``: (n,), or
        (seeds, n) whose NMIs are averaged (:func:`dscl.evaluation.protocol.evaluate_test`).
    weights : ndarray of shape (B, C)
        :func:`class_resamples`.
    ks : sequence of int

    Returns
    -------
    ``{"nmi": (B,), "recall@K": (B,), ..., "map@r": (B,), "r_precision": (B,)}``, fractions.
    """
    _, inverse = np.unique(np.asarray(labels), return_inverse=True)
    n_classes = weights.shape[1]

    def rate(values, mask=None):
        mask = np.ones(len(inverse), dtype=bool) if mask is None else mask
        sums = np.bincount(inverse, np.where(mask, values, 0.0), minlength=n_classes)
        counts = np.bincount(inverse, mask.astype(np.float64), minlength=n_classes)
        with np.errstate(invalid="ignore"):
            return (weights @ sums) / (weights @ counts)

    arrays = {key: np.asarray(value) for key, value in details.items()}
    out = {}
    for metric in METRICS:
        if metric.query is None:  # NMI: every k-means seed's partition, averaged as the evaluation does
            partitions = np.atleast_2d(arrays["assignment"])  # (seeds, n)
            out[metric.name] = np.mean([_resampled_nmi(inverse, a, weights) for a in partitions], axis=0)
            continue
        if not metric.query.computable(arrays):  # MAP@R and RP where they were computed
            continue
        for k, name in each_k(metric.name, ks):
            out[name] = rate(*metric.query.values(arrays, k))
    return out


@dataclass(frozen=True)
class Interval:
    """A percentile interval (``low``, ``high``) of a bootstrapped quantity; for a
    difference, ``holds``: the interval excludes 0."""

    low: float
    high: float

    @property
    def holds(self) -> bool:
        return self.low > 0 or self.high < 0


def interval(values: np.ndarray, level: float = 0.95) -> Interval:
    """The central ``level`` percentile interval of ``values`` (resamples where the metric
    is undefined, NaN, are left out)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(lo), float(hi))


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> Interval:
    """The interval of ``a - b`` over the same resamples."""
    return interval(np.asarray(a) - np.asarray(b), level)
