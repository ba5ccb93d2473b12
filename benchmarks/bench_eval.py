"""Evaluation at Stanford Online Products scale on synthetic data.

60,502 points in 512 dimensions drawn around 11,316 class centres (about 5.3 points per
class, as the SOP test set); NMI, Recall@{1,10,100,1000}, MAP@R and R-Precision (one
exact neighbour search gives the last three), with and without spectral clustering,
each step timed. Run: ``python benchmarks/bench_eval.py``.

k-means is timed twice, side by side: the evaluation's (:func:`dscl.scoring.kmeans.kmeans`:
k-means++ seeding and Lloyd's iterations to a fixed point, the best of ``--nredo`` runs,
each of ``--seeds``: SOP's setting is one run, ``evaluate.kmeans_nredo.sop``) and, for
comparison, the single faiss run from random centroids (20 iterations) that the
evaluation used before; the NMI of each is printed, and its range over the seeds.

``--bootstrap B`` (default 1000) also times the report's 95% intervals: B resamples of the
test classes from the per-query quantities of the one search above (dscl.evaluation.bootstrap),
printed beside the search's own time.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from dscl.evaluation.bootstrap import class_resamples, interval, resampled_scores
from dscl.linalg import l2_normalize
from dscl.scoring.kmeans import kmeans
from dscl.scoring.nmi import nmi
from dscl.scoring.retrieval import query_scores, retrieval_details
from dscl.scoring.spectral import spectral_embedding

LABELS = {"map@r": "MAP@R", "r_precision": "RP"}


def synthetic(n: int, dim: int, classes: int, noise: float, seed: int, data: str = "clustered"):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(classes), rng.integers(0, classes, n - classes)])
    if data == "random":
        return rng.normal(size=(n, dim)).astype(np.float32), labels
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    x = centres[labels] + noise * rng.normal(size=(n, dim)).astype(np.float32)
    return x, labels


def random_init_faiss(x, k: int, seed: int) -> np.ndarray:
    """The evaluation's k-means before k-means++ seeding: one faiss run, 20 iterations from
    centroids sampled among the points."""
    import faiss

    data = np.ascontiguousarray(x.detach().cpu().float().numpy())
    km = faiss.Kmeans(data.shape[1], k, niter=20, seed=seed, max_points_per_centroid=1 << 30)
    km.train(data)
    return km.index.search(data, 1)[1][:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60502)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=11316)
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--data", choices=["clustered", "random"], default="clustered")
    parser.add_argument("--nredo", type=int, default=1, help="k-means runs (SOP's evaluate.kmeans_nredo)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="k-means seeds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--kmeans-backend",
        choices=["auto", "faiss", "torch"],
        default="auto",
        help="faiss, or the torch k-means (the GPU path without faiss-gpu)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="class resamples (0: none)")
    args = parser.parse_args()
    x, y = synthetic(args.n, args.dim, args.classes, args.noise, seed=0, data=args.data)
    x = torch.from_numpy(x).to(args.device)
    print(
        f"device={args.device} threads={torch.get_num_threads()} n={args.n} d={args.dim} "
        f"clusters={args.classes} ks={args.ks} data={args.data} kmeans={args.kmeans_backend}"
    )
    total = time.perf_counter()
    for variant in ("with_sc", "without_sc"):
        t0 = time.perf_counter()
        rep = spectral_embedding(x) if variant == "with_sc" else l2_normalize(x)
        t1 = time.perf_counter()
        scores = []
        for seed in args.seeds:
            assign = kmeans(rep, args.classes, seed=seed, nredo=args.nredo, backend=args.kmeans_backend)
            scores.append(nmi(y, assign))
        t2 = time.perf_counter()
        before = nmi(y, random_init_faiss(rep, args.classes, seed=0))
        t3 = time.perf_counter()
        details = retrieval_details(rep, y, max(args.ks))
        ret = query_scores(details, args.ks)
        t4 = time.perf_counter()
        ours = (t2 - t1) / len(args.seeds)
        print(
            f"{variant:>10}: NMI {100 * scores[0]:.2f}  "
            + "  ".join(f"{LABELS.get(k, k.replace('recall@', 'R@'))} {100 * v:.2f}" for k, v in ret.items())
        )
        print(
            f"{'':>10}  representation {t1 - t0:.1f} s | k-means {ours:.1f} s a seed | "
            f"Recall@K, MAP@R, RP {t4 - t3:.1f} s"
        )
        print(
            f"{'':>10}  k-means++, nredo {args.nredo}: NMI "
            + " / ".join(f"{100 * v:.2f}" for v in scores)
            + f" over seeds {args.seeds} (range {100 * (max(scores) - min(scores)):.2f}); one faiss run "
            f"from random centroids (before): {t3 - t2:.1f} s, NMI {100 * before:.2f}; "
            f"time ratio {ours / (t3 - t2):.1f}"
        )
        if args.bootstrap:
            t5 = time.perf_counter()
            weights = class_resamples(y, args.bootstrap, seed=0)
            resampled = resampled_scores(y, {**details, "assignment": np.asarray(assign)}, weights, args.ks)
            t6 = time.perf_counter()
            r1 = interval(resampled[f"recall@{args.ks[0]}"])
            print(
                f"{'':>10}  bootstrap of {args.bootstrap} class resamples {t6 - t5:.2f} s "
                f"({(t6 - t5) / (t4 - t3):.2f} x the search); R@{args.ks[0]} 95% interval "
                f"[{100 * r1.low:.2f}, {100 * r1.high:.2f}]"
            )
    elapsed = time.perf_counter() - total
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    on_gpu = torch.device(args.device).type == "cuda"
    target, limit = ("20 s on a GPU", 20) if on_gpu else ("5 min on a 2-core CPU", 300)
    print(
        f"total {elapsed:.1f} s ({elapsed / 60:.2f} min), peak RSS {peak:.2f} GiB, "
        f"target < {target}: {'met' if elapsed < limit else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
