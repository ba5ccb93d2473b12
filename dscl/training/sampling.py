"""Drawing the training batches (Algorithm 1 of [1], step 2).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

import numpy as np

from dscl.choices import ClassSampling

__all__ = ["BatchSampler", "ClassSampling", "sample_batch", "training_pool"]


def sample_batch(pool: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """``batch_size`` indices drawn uniformly without replacement from ``pool``
    (Algorithm 1 of [1], step 2); the whole pool when it is smaller."""
    if len(pool) <= batch_size:
        return rng.permutation(pool)
    return rng.choice(pool, size=batch_size, replace=False)


class BatchSampler:
    """Draws the training batches.

    ``classes_per_batch`` None: ``batch_size`` examples uniformly from ``pool``.
    Otherwise each batch first draws ``classes_per_batch`` of the pool's classes, then
    ``batch_size`` examples among theirs: SOP's "512 randomly sampled training
    categories" (Section 4.1), sampled anew for every batch so that training sees every
    training image. ``labels`` are the labels of all examples (``pool`` indexes them).
    """

    def __init__(
        self,
        pool: np.ndarray,
        batch_size: int,
        labels: np.ndarray | None = None,
        classes_per_batch: int | None = None,
    ):
        self.pool = np.asarray(pool)
        self.batch_size = batch_size
        self.classes_per_batch = classes_per_batch
        if classes_per_batch is not None:
            if labels is None:
                raise ValueError("classes_per_batch needs the labels")
            pool_labels = np.asarray(labels)[self.pool]
            self.classes, inverse = np.unique(pool_labels, return_inverse=True)
            if not 2 <= classes_per_batch <= len(self.classes):
                raise ValueError(
                    f"classes per batch must be in [2, {len(self.classes)}] (the "
                    f"training classes), got {classes_per_batch}"
                )
            order = np.argsort(inverse, kind="stable")
            self.members = np.split(self.pool[order], np.cumsum(np.bincount(inverse))[:-1])

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        if self.classes_per_batch is None:
            return sample_batch(self.pool, self.batch_size, rng)
        chosen = np.sort(rng.choice(len(self.classes), self.classes_per_batch, replace=False))
        return sample_batch(np.concatenate([self.members[c] for c in chosen]), self.batch_size, rng)


def training_pool(
    labels: np.ndarray,
    candidates: np.ndarray,
    class_subsample: int | None,
    class_sampling: ClassSampling,
    seed: int,
) -> tuple[np.ndarray, int | None]:
    """The examples training draws from (indices into ``labels``, among ``candidates``)
    and the number of classes per batch (None: batches drawn from the whole pool).

    ``class_subsample`` with "per_batch": every batch draws that many classes anew;
    with "once": that many classes are drawn once and only they are trained on.
    """
    classes = np.unique(labels[candidates])
    if class_subsample is None:
        return candidates, None
    if not 2 <= class_subsample <= len(classes):
        raise ValueError(
            f"class_subsample must be in [2, {len(classes)}] (the training classes less the "
            f"validation classes), got {class_subsample}"
        )
    if class_sampling == "per_batch":
        return candidates, class_subsample
    chosen = np.sort(np.random.default_rng(seed).choice(classes, class_subsample, replace=False))
    return candidates[np.isin(labels[candidates], chosen)], None
