"""What the test NMI over k-means seeds costs, side by side on the same embeddings: one
k-means of 200 runs (validation's, and the evaluation before), the evaluation's 50 seeds
of 10 runs computed as one batch (``dscl.evaluation.evaluate_test``), and the same 50
seeds one after another (``dscl.scoring.kmeans.kmeans`` per seed).

    dvc repro && python benchmarks/bench_nmi.py                     # digits' embeddings
    python benchmarks/bench_nmi.py --dataset cub200_mini --methods dscl_last vanilla

Prints, per embedding, the seconds of each (Recall@K, MAP@R and the spectral embedding
included, as the evaluate stage runs them) and the ratios to the single k-means.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dscl import layout
from dscl.evaluation.protocol import evaluate_test
from dscl.linalg import l2_normalize
from dscl.scoring.kmeans import kmeans
from dscl.scoring.scores import evaluate_embedding
from dscl.scoring.spectral import spectral_embedding


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def per_seed(x: np.ndarray, y: np.ndarray, ks: tuple[int, ...]) -> None:
    """The 50 x 10 evaluation with the seeds one after another."""
    evaluate_embedding(x, y, ks, kmeans_nredo=10)
    k = int(np.unique(y).size)
    for rep in (spectral_embedding(x), l2_normalize(x)):
        for s in range(1, 50):
            kmeans(rep, k, seed=s, nredo=10)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--methods", nargs="+", default=["dscl_last", "vanilla"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ks = (1, 2, 4, 8)
    print(f"{'embedding':20} {'1 x 200':>9} {'50 x 10, batched':>17} {'50 x 10, per seed':>18}")
    for method in args.methods:
        folder = args.embeddings / args.dataset / method
        if not layout.labels_file(folder).is_file():
            print(f"error: no embedding in {folder}: run the embed stage first", file=sys.stderr)
            return 2
        x, y = np.load(layout.embedding_file(folder)), np.loadlayout.labels_file(folder)
        single = timed(evaluate_embedding, x, y, ks, kmeans_nredo=200)
        batched = timed(evaluate_test, x, y, ks, seeds=50, restarts=10)
        serial = timed(per_seed, x, y, ks)
        print(
            f"{method:20} {single:8.2f}s {batched:8.2f}s ({batched / single:3.1f}x) "
            f"{serial:8.2f}s ({serial / single:3.1f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
