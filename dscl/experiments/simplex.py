"""The authors' visual demo: learning a clustering of points on the probability simplex.

Points of ``R^d`` constrained to the simplex ``{x >= 0, sum(x) = 1}`` are moved by
projected gradient descent on the DSCL loss, so that the points of each desired cluster
gather (Section 3.3 of [1]: the representation space may be the simplex).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dscl.objectives.dscl import dscl_gradient, dscl_loss

__all__ = ["SimplexDemo", "project_to_simplex", "run_simplex_demo"]


def project_to_simplex(x: Tensor) -> Tensor:
    """Euclidean projection of each row of ``x`` (n, d) onto the probability simplex.

    The sort-based algorithm of Held et al. (1974) / Duchi et al. (2008), vectorised.
    """
    d = x.shape[1]
    u, _ = torch.sort(x, dim=1, descending=True)  # (n, d)
    css = u.cumsum(dim=1) - 1.0  # (n, d)
    ind = torch.arange(1, d + 1, dtype=x.dtype, device=x.device)
    cond = u - css / ind > 0  # (n, d), true on a prefix
    rho = cond.sum(dim=1, keepdim=True)  # (n, 1), >= 1
    theta = css.gather(1, rho - 1) / rho.to(x.dtype)  # (n, 1)
    return (x - theta).clamp_min(0.0)


@dataclass(frozen=True)
class SimplexDemo:
    """Result of :func:`run_simplex_demo`: positions before and after, and the losses."""

    initial: Tensor  # (n, d)
    final: Tensor  # (n, d)
    labels: Tensor  # (n,)
    losses: list[float]


def run_simplex_demo(
    n_clusters: int = 6,
    per_cluster: int = 20,
    dim: int = 3,
    iterations: int = 150,
    lr: float = 0.2,
    seed: int = 0,
) -> SimplexDemo:
    """Random points on the ``dim``-simplex with ``n_clusters`` desired clusters, moved
    by projected gradient descent on the DSCL loss.

    Parameters
    ----------
    n_clusters, per_cluster, dim : int
        The problem: ``n = n_clusters * per_cluster`` points in ``R^dim``.
    iterations : int
        Projected gradient steps.
    lr : float
        Step size.
    seed : int
        Seed of the random initial positions.

    Returns
    -------
    SimplexDemo
    """
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_clusters).repeat_interleave(per_cluster)  # (n,)
    x = torch.rand(n_clusters * per_cluster, dim, generator=gen, dtype=torch.float64)
    x = x / x.sum(dim=1, keepdim=True)  # random points on the simplex
    initial = x.clone()
    losses = []
    for _ in range(iterations):
        losses.append(float(dscl_loss(x, labels)))
        x = project_to_simplex(x - lr * dscl_gradient(x, labels))
    losses.append(float(dscl_loss(x, labels)))
    return SimplexDemo(initial=initial, final=x, labels=labels, losses=losses)
