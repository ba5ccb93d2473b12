"""The test evaluation at Stanford Online Products' shape, beside the metric-learning
libraries' practice, in one run.

Synthetic embeddings: n points in d dimensions around ``--classes`` class centres (SOP's
test set: 60,502 points, 11,316 classes, d = 512). Timed side by side:

* the anchors' practice (pytorch-metric-learning's ``AccuracyCalculator``,
  Revisiting-DML): per variant (with and without spectral clustering), one faiss k-means
  of 20 iterations from k points drawn at random, and one exact search of the largest K;
* the evaluate stage's :func:`dscl.evaluation.protocol.evaluate_test` with SOP's settings
  of ``params.yaml`` (``evaluate.nmi.sop``: one seed, one run, seeding ``random``, 20
  iterations): NMI, Recall@K, MAP@R and R-Precision of both variants;
* with ``--kmeanspp``, the same evaluation seeded by greedy k-means++ (the small-k
  protocol), to measure what that seeding costs and gains at this k.

``--validation`` times instead validation during training at SOP's shape (1,000
validation classes, about 5,300 images): :func:`dscl.scoring.scores.validation_scores`
seeded as SOP's test k-means (what params.yaml runs) beside greedy k-means++ (before).

    python benchmarks/bench_sop_eval.py                         # SOP's shape
    python benchmarks/bench_sop_eval.py --scale 0.25 --kmeanspp  # a quarter, both seedings
    python benchmarks/bench_sop_eval.py --validation            # one validation, both seedings
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from dscl.evaluation.protocol import evaluate_test
from dscl.linalg import l2_normalize
from dscl.scoring.kmeans import sampled_kmeans
from dscl.scoring.neighbors import iter_neighbors
from dscl.scoring.nmi import nmi
from dscl.scoring.spectral import spectral_embedding


def synthetic(n: int, dim: int, classes: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(classes), rng.integers(0, classes, n - classes)])
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    return centres[labels] + noise * rng.normal(size=(n, dim)).astype(np.float32), labels


def anchors(x: np.ndarray, y: np.ndarray, kmax: int) -> dict[str, float]:
    """Per variant: one faiss k-means (20 iterations, random points) and one exact search."""
    k = int(np.unique(y).size)
    out = {}
    for variant, rep in (("with_sc", spectral_embedding(x)), ("without_sc", l2_normalize(x))):
        out[variant] = nmi(y, sampled_kmeans(rep, k, seed=0, niter=20))
        for _ in iter_neighbors(torch.as_tensor(rep), kmax):
            pass
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="of SOP's test set (default 1)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--noise", type=float, default=1.5)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--kmeanspp", action="store_true", help="also the k-means++ seeding")
    parser.add_argument("--validation", action="store_true", help="one validation at SOP's shape")
    args = parser.parse_args(argv)
    if args.validation:
        return validation(args)
    n, classes = round(60_502 * args.scale), round(11_316 * args.scale)
    x, y = synthetic(n, args.dim, classes, args.noise)
    print(f"n = {n:,}, d = {args.dim}, classes = {classes:,}, ks = {args.ks}")
    start = time.perf_counter()
    base = anchors(x, y, max(args.ks))
    t_base = time.perf_counter() - start
    print(
        f"anchors' practice: {t_base:.1f} s; NMI with SC {100 * base['with_sc']:.2f}, "
        f"without {100 * base['without_sc']:.2f}"
    )
    runs = [("random", 1)] + ([("kmeans++", 1)] if args.kmeanspp else [])
    for seeding, restarts in runs:
        start = time.perf_counter()
        scores, _, _ = evaluate_test(
            x,
            y,
            ks=args.ks,
            seeds=1,
            restarts=restarts,
            seeding=seeding,
            kmeans_niter=20 if seeding == "random" else 100,
        )
        took = time.perf_counter() - start
        cells = ", ".join(
            f"{v} NMI {100 * s['nmi']:.2f} (anchors' {100 * base[v]:.2f}), R@1 {100 * s['recall@1']:.2f}, "
            f"MAP@R {100 * s['map@r']:.2f}"
            for v, s in scores.items()
        )
        print(f"evaluate_test, seeding {seeding}: {took:.1f} s = {took / t_base:.2f} x the anchors'; {cells}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak:.2f} GiB")
    return 0


def validation(args) -> int:
    """One validation at SOP's shape, seeded as params.yaml seeds it and by k-means++."""
    from dscl import config
    from dscl.scoring.scores import validation_scores

    n, classes = round(5_300 * args.scale), round(1_000 * args.scale)
    x, y = synthetic(n, args.dim, classes, args.noise)
    options = config.load().kmeans_options("sop")
    print(f"validation: n = {n:,}, d = {args.dim}, classes = {classes:,}; params.yaml's: {options}")
    seedings = [
        ("params.yaml", options),
        ("kmeans++, 100 iterations", {**options, "seeding": "kmeans++", "kmeans_niter": 100}),
    ]
    times = []
    for name, kmeans in seedings:
        start = time.perf_counter()
        scores = validation_scores(x, y, **kmeans)
        times.append(time.perf_counter() - start)
        nmis = ", ".join(f"{v} {s['nmi']:.2f}" for v, s in scores.items())
        print(f"{name}: {times[-1]:.1f} s; NMI {nmis}; R@1 without SC {scores['without_sc']['recall@1']:.2f}")
    print(f"ratio k-means++ / params.yaml's: {times[1] / times[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
