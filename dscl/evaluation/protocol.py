"""The test evaluation: NMI as the mean over several k-means seeds (each the best of
``restarts`` runs), with its spread, beside Recall@K, MAP@R and R-Precision
(:func:`dscl.scoring.scores.evaluate_embedding`).

Why a mean over seeds: on a test set of few classes the NMI of one k-means moves with
its seed by points, and more restarts do not steady it; the mean of 50 seeds moves by
0.4 points or less on the committed embeddings (the docs' Reproducibility page has the
measurements). Validation during training keeps one k-means of ``evaluate.kmeans_nredo``
runs (:func:`dscl.scoring.scores.validation_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dscl._arrays import as_float_matrix
from dscl.choices import KMEANS_SEEDINGS
from dscl.evaluation.metrics import table_scores
from dscl.linalg import l2_normalize
from dscl.scoring.kmeans import (
    BUDGET,
    KMEANS_BACKENDS,
    NITER,
    kmeans,
    lloyd,
    objectives,
    sampled_kmeans,
    seed_centroids,
)
from dscl.scoring.nmi import nmi
from dscl.scoring.scores import evaluate_embedding
from dscl.scoring.spectral import spectral_embedding

__all__ = ["NMI_RESTARTS", "NMI_SEEDS", "best_partitions", "evaluate_test", "kmeans_spread"]

# The defaults of params.yaml's evaluate.nmi (the docs' "Reproducibility" page).
NMI_SEEDS = 50
NMI_RESTARTS = 10


def evaluate_test(
    embeddings,
    labels,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    seed: int = 0,
    kmeans_niter: int = NITER,
    kmeans_backend: str = "auto",
    seeds: int = NMI_SEEDS,
    restarts: int = NMI_RESTARTS,
    seeding: str = "kmeans++",
    backend: str = "auto",
):
    """The scores of :func:`dscl.scoring.scores.evaluate_embedding`, with and without SC, where
    the NMI is the mean over k-means seeds ``seed, seed + 1, ..., seed + seeds - 1``.

    Parameters
    ----------
    embeddings : ndarray or Tensor of shape (n, d)
    labels : array-like of shape (n,), integers
    ks : sequence of int
        The K of Recall@K.
    seed, kmeans_niter, kmeans_backend :
        k-means settings (:func:`dscl.scoring.kmeans.kmeans`).
    seeds : int
        k-means seeds whose NMIs are averaged; 1 gives one k-means, as validation clusters.
    restarts : int
        Runs of each seed's k-means, the lowest objective kept.
    seeding : {"kmeans++", "random"}
        How each run is seeded: greedy k-means++ (:func:`dscl.scoring.kmeans.kmeans`), or,
        for many clusters, faiss's own (:func:`dscl.scoring.kmeans.sampled_kmeans`).
    backend : {"auto", "faiss", "torch"}
        Nearest-neighbour backend, see :func:`dscl.scoring.neighbors.iter_neighbors`.

    Returns
    -------
    ``(scores, details, nmis)``: ``scores`` as :func:`~dscl.scoring.scores.evaluate_embedding`
    (fractions; ``nmi`` the mean over seeds); ``details`` per variant, its per-query
    quantities and ``assignment``, (seeds, n): each seed's partition, what the
    report's bootstrap resamples; ``nmis`` per variant, each seed's NMI (fractions).
    """
    if int(seeds) < 1 or int(restarts) < 1:
        raise ValueError(f"seeds and restarts must be >= 1, got {seeds} and {restarts}")
    if seeding not in KMEANS_SEEDINGS:
        raise ValueError(f"seeding must be one of {list(KMEANS_SEEDINGS)}, got {seeding!r}")
    if seeding == "random":
        return _evaluate_sampled(
            embeddings, labels, ks, range(seed, seed + int(seeds)), restarts, kmeans_niter, backend
        )
    scores, details = evaluate_embedding(
        embeddings,
        labels,
        ks=ks,
        seed=seed,
        kmeans_niter=kmeans_niter,
        kmeans_nredo=restarts,
        kmeans_backend=kmeans_backend,
        backend=backend,
        return_details=True,
    )
    y = np.asarray(labels)
    k = int(np.unique(y).size)
    nmis = {}
    for variant, rep in (("with_sc", spectral_embedding), ("without_sc", l2_normalize)):
        if seeds > 1:  # one seed: evaluate_embedding's k-means is that seed's (the same runs)
            found = best_partitions(
                rep(embeddings), k, range(seed, seed + int(seeds)), restarts, kmeans_niter, kmeans_backend
            )
            details[variant]["assignment"] = found
        assignments = np.atleast_2d(details[variant]["assignment"]).astype(np.int64)
        nmis[variant] = [nmi(y, a) for a in assignments]
        details[variant]["assignment"] = assignments
        scores[variant]["nmi"] = float(np.mean(nmis[variant]))
    return _with_table(scores, details, ks), details, nmis


def _evaluate_sampled(embeddings, labels, ks, seeds, restarts: int, niter: int, backend: str):
    """:func:`evaluate_test` with k-means seeded by faiss (:func:`dscl.scoring.kmeans.sampled_kmeans`), one
    partition per seed: each variant's one neighbour search and its k-means, nothing else."""

    def partition(rep, k: int) -> np.ndarray:
        return np.stack([sampled_kmeans(rep, k, seed=s, niter=niter, nredo=restarts) for s in seeds])

    scores, details = evaluate_embedding(
        embeddings, labels, ks=ks, backend=backend, return_details=True, partition=partition
    )
    y = np.asarray(labels)
    nmis = {variant: [nmi(y, a) for a in found["assignment"]] for variant, found in details.items()}
    return _with_table(scores, details, ks), details, nmis


def _with_table(scores: dict, details: dict, ks) -> dict:
    """``scores`` with every metric of the table (:data:`dscl.evaluation.metrics.METRICS`)
    that the details give, each variant's."""
    for variant, found in details.items():
        scores[variant].update(table_scores(found, ks))
    return scores


def best_partitions(x, n_clusters: int, seeds, restarts: int, niter: int, backend: str) -> np.ndarray:
    """For each k-means seed of ``seeds``, the partition :func:`dscl.scoring.kmeans.kmeans` keeps
    (the lowest objective of ``restarts`` runs seeded by k-means++ from that seed's
    streams, the first on a tie), all seeds' runs computed as one batch of tensor
    operations: the per-call cost of a small k-means (the seeding's and Lloyd's Python
    steps) is paid once rather than once per seed (7 times less time on digits). The
    faiss backend runs one seed at a time (:func:`dscl.scoring.kmeans.kmeans`).

    Returns
    -------
    ndarray of shape (len(seeds), n), int64
    """
    seeds = [int(s) for s in seeds]
    if backend == "faiss":
        return np.stack(
            [kmeans(x, n_clusters, seed=s, niter=niter, nredo=restarts, backend="faiss") for s in seeds]
        )
    if backend not in KMEANS_BACKENDS:
        raise ValueError(f"backend must be one of {KMEANS_BACKENDS}, got {backend!r}")
    x = as_float_matrix(x, "x")
    if backend == "auto" and torch.cuda.is_available() and not x.is_cuda:
        x = x.to("cuda")
    x = x.float()
    n, d = x.shape
    k = int(n_clusters)
    streams = [np.random.default_rng([s, r]) for s in seeds for r in range(int(restarts))]  # kmeans' streams
    group = max(1, BUDGET // (n * max(k, d)))  # runs computed together, as kmeans does
    partitions, values = [], []
    for first in range(0, len(streams), group):
        centroids = seed_centroids(x, k, streams[first : first + group])
        found = lloyd(x, centroids, niter)
        partitions.append(found)
        values.append(objectives(x, found, k))
    partitions = np.concatenate(partitions).reshape(len(seeds), int(restarts), n)
    best = np.concatenate(values).reshape(len(seeds), int(restarts)).argmin(axis=1)  # the first lowest
    return partitions[np.arange(len(seeds)), best]


def kmeans_spread(nmis: list[dict[str, list[float]]], seeds: int, first: int, restarts: int) -> dict:
    """What the metrics file records of the k-means behind its NMIs: the seeds, the
    restarts of each, every run's per-seed NMIs (points) and, per variant, ``nmi_sd``:
    the standard deviation of the NMI over the k-means seeds (the root mean square over
    the training runs when there are several; None with one seed), in points.

    Parameters
    ----------
    nmis : list of dict
        One per training run: :func:`evaluate_test`'s ``nmis``.
    seeds, first, restarts : int
        The k-means seeds, the first of them, and the restarts of each.
    """
    out = {"seeds": int(seeds), "first_seed": int(first), "restarts": int(restarts), "nmi_sd": {}}
    for variant in nmis[0]:
        values = np.array([run[variant] for run in nmis]) * 100.0  # (runs, seeds)
        sd = None if seeds < 2 else float(np.sqrt(np.mean(values.var(axis=1, ddof=1))))
        out["nmi_sd"][variant] = None if sd is None else round(sd, 2)
    out["nmi"] = [
        {variant: [round(float(v) * 100.0, 2) for v in run[variant]] for variant in run} for run in nmis
    ]
    return out
