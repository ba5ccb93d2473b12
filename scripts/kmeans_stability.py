"""How far the NMI of a fixed embedding moves with the k-means seed and backend.

For every method's test embedding of a dataset (``data/embeddings/<dataset>/<method>``,
every seed's run), with and without spectral clustering, k-means (k = the test classes)
is run with each of ``--seeds`` on each of ``--backends``, for each number of restarts
of ``--nredo``; the script prints, per embedding and setting, the range of the NMI over
seeds and backends (max - min, in points) and the largest range of all embeddings.

    python scripts/kmeans_stability.py --dataset digits --nredo 1 5 10 20 --seeds 0 1 2 3 4 5 6 7 8 9

``--nmi-seeds S`` measures the evaluation's NMI instead (:mod:`dscl.evaluation.protocol`): the
mean over the S k-means seeds ``s, s + 1, ..., s + S - 1`` that follow each first seed
``s`` of ``--seeds``, each keeping the lowest objective of ``nredo`` restarts; give
first seeds whose runs do not overlap (the evaluation's own setting, 50 seeds of 10):

    python scripts/kmeans_stability.py --dataset cub200_mini --nredo 10 --nmi-seeds 50 \
        --seeds 0 1000 2000 3000 4000 --backends torch

``--init random`` runs faiss' own k-means (centroids sampled at random) instead, the
evaluation's k-means before k-means++ seeding, for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dscl import layout
from dscl.evaluation.protocol import best_partitions
from dscl.linalg import l2_normalize
from dscl.scoring.kmeans import NITER
from dscl.scoring.nmi import nmi
from dscl.scoring.spectral import spectral_embedding


def random_init_kmeans(x: np.ndarray, k: int, seed: int, nredo: int) -> np.ndarray:
    """faiss' k-means from centroids sampled among the points (20 iterations)."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=20, nredo=nredo, seed=seed, max_points_per_centroid=1 << 30)
    km.train(x)
    return km.index.search(x, 1)[1][:, 0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--methods", nargs="*", help="default: every embedded method")
    parser.add_argument("--nredo", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--backends", nargs="+", default=["faiss", "torch"])
    parser.add_argument("--init", choices=["kmeans++", "random"], default="kmeans++")
    parser.add_argument(
        "--nmi-seeds", type=int, default=1, help="the NMI: the mean over this many k-means seeds (default 1)"
    )
    args = parser.parse_args(argv)
    root = args.embeddings / args.dataset
    methods = args.methods or sorted(p.name for p in root.iterdir() if layout.embedding_file(p).is_file())
    if not methods:
        print(f"error: no embeddings under {root}: run the embed stages first", file=sys.stderr)
        return 2
    worst: dict[tuple[str, int], float] = {}
    backends = args.backends if args.init == "kmeans++" else ["faiss"]
    print(f"{'embedding':34} {'variant':10} " + " ".join(f"nredo={r:<3}" for r in args.nredo))
    start = time.perf_counter()
    for method in methods:
        labels = np.load(layout.labels_file(root / method))
        k = int(np.unique(labels).size)
        for seed, path in layout.embedding_files(root / method):
            x = np.load(path)
            name = method if seed is None else f"{method} (seed {seed})"
            for variant, rep in (("with_sc", spectral_embedding(x)), ("without_sc", l2_normalize(x))):
                rep = np.asarray(rep)
                cells = []
                for nredo in args.nredo:
                    scores = []
                    for backend in backends:
                        for s in args.seeds:
                            if args.init == "random":
                                scores.append(100 * nmi(labels, random_init_kmeans(rep, k, s, nredo)))
                                continue
                            seeds = range(s, s + args.nmi_seeds)
                            found = best_partitions(rep, k, seeds, nredo, NITER, backend)  # as evaluate_test
                            scores.append(100 * float(np.mean([nmi(labels, a) for a in found])))
                    spread = max(scores) - min(scores)
                    worst[(variant, nredo)] = max(worst.get((variant, nredo), 0.0), spread)
                    cells.append(f"{np.mean(scores):5.1f}±{spread:4.1f}")
                print(f"{name:34} {variant:10} " + " ".join(cells), flush=True)
    what = "first seeds" if args.nmi_seeds > 1 else "seeds"
    print(f"\nlargest NMI range (max - min over {len(args.seeds)} {what} x {backends}), points:")
    for variant in ("with_sc", "without_sc"):
        print(f"  {variant:10} " + "  ".join(f"nredo={r}: {worst[(variant, r)]:.2f}" for r in args.nredo))
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
