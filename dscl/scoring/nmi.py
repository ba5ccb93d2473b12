"""Normalised mutual information between two partitions: the clustering score of [1],
computed on validation classes during training and on test classes after.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

import numpy as np

from dscl._arrays import as_label_vector

__all__ = ["NMI_AVERAGES", "nmi"]

NMI_AVERAGES = ("arithmetic", "geometric", "min", "max")


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
