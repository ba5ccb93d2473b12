"""Render the authors' visual demo: points on the simplex, before and after DSCL.

Random points of the 2-simplex in R^3 (the triangle x + y + z = 1, x, y, z >= 0),
assigned to 6 desired clusters, are moved by projected gradient descent on the DSCL
loss. After 150 iterations k-means on the points recovers the 6 clusters.

    python scripts/simplex_demo.py --out reports/figures/simplex_demo.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import adjusted_rand_score

from dscl.atomic import atomic_path
from dscl.experiments.simplex import run_simplex_demo
from dscl.scoring.kmeans import kmeans


def to_plane(p: np.ndarray) -> np.ndarray:
    """Barycentric coordinates on the simplex -> 2-d points of an equilateral triangle."""
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    return p @ corners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/figures/simplex_demo.png"))
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    demo = run_simplex_demo(n_clusters=6, iterations=args.iterations, seed=args.seed)
    labels = demo.labels.numpy()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), dpi=100)
    for ax, pts, title in (
        (axes[0], demo.initial, "before (random)"),
        (axes[1], demo.final, f"after {args.iterations} iterations"),
    ):
        xy = to_plane(pts.numpy())
        ari = adjusted_rand_score(labels, kmeans(pts.numpy(), 6, seed=0, nredo=10))
        ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="0.6", lw=1)
        ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", vmin=0, vmax=9, s=14)
        ax.set_title(f"{title}\nk-means ARI = {ari:.2f}", fontsize=10)
        ax.set_aspect("equal")
        ax.axis("off")
    axes[2].plot(demo.losses)
    axes[2].set_xlabel("iteration")
    axes[2].set_ylabel("loss k - tr(C F F^+)")
    axes[2].set_title("DSCL loss (minimum k - d = 3)", fontsize=10)
    fig.suptitle("Projected gradient descent on the simplex: 6 desired clusters, d = 3")
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, format="png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
