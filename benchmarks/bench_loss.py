"""Loss + gradient at the paper's batch size: this implementation against two baselines.

(a) autograd through ``torch.linalg.pinv`` (the obvious implementation);
(b) the dense n x n formula of Eq. (8), ``-2 (I - F F^+) C (F^+)^T``.

All three are timed side by side in one run, on the same inputs; the printed ratios are
baseline time / this implementation's time. Run: ``python benchmarks/bench_loss.py``.

``--objectives`` then times every batch objective's ``loss_and_gradient`` (what the chunked
end-to-end update computes once per iteration) on the same batch, side by side with
DSCL's: the NMI-based facility location is the costly one (a greedy search over the batch
with a clustering score per candidate, then PAM sweeps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dscl.objectives import OBJECTIVES, make_objective
from dscl.objectives.dscl import dscl_loss


def onehot_c(labels: torch.Tensor, dtype) -> torch.Tensor:
    uniq = torch.unique(labels)
    y = (labels[:, None] == uniq[None, :]).to(dtype)  # (n, k)
    return y @ torch.linalg.pinv(y), len(uniq)  # C = Y Y^+, (n, n)


def ours(f, labels):
    f = f.detach().requires_grad_(True)
    loss = dscl_loss(f, labels)
    loss.backward()
    return loss, f.grad


def autograd_pinv(f, labels):
    f = f.detach().requires_grad_(True)
    c, k = onehot_c(labels, f.dtype)
    loss = k - torch.trace(c @ f @ torch.linalg.pinv(f))
    loss.backward()
    return loss, f.grad


def dense_formula(f, labels):
    c, k = onehot_c(labels, f.dtype)
    fp = torch.linalg.pinv(f)  # (d, n)
    proj = f @ fp  # (n, n)
    loss = k - torch.trace(c @ proj)
    eye = torch.eye(f.shape[0], dtype=f.dtype, device=f.device)
    return loss, -2.0 * (eye - proj) @ c @ fp.T


def timeit(fn, f, labels, repeats: int) -> float:
    sync = torch.cuda.synchronize if f.is_cuda else (lambda: None)
    for _ in range(min(3, repeats)):
        fn(f, labels)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(f, labels)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1260)
    parser.add_argument("--dims", type=int, nargs="+", default=[100, 512])
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's)")
    parser.add_argument(
        "--objectives", action="store_true", help="also every objective's loss and gradient at the first d"
    )
    parser.add_argument("--only", nargs="+", choices=OBJECTIVES, help="with --objectives: these and dscl")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"n={args.n} classes={args.classes} float32, median of {args.repeats} runs")
    header = f"{'d':>5} {'ours ms':>9} {'(a) pinv+autograd ms':>21} {'(b) dense nxn ms':>17}"
    print(header + f" {'a/ours':>7} {'b/ours':>7} {'max rel err':>12}")
    gen = torch.Generator().manual_seed(0)
    for d in args.dims:
        f = torch.randn(args.n, d, generator=gen).to(device)
        labels = torch.randint(0, args.classes, (args.n,), generator=gen).to(device)
        t_ours = timeit(ours, f, labels, args.repeats)
        t_a = timeit(autograd_pinv, f, labels, args.repeats)
        t_b = timeit(dense_formula, f, labels, args.repeats)
        g = ours(f, labels)[1].double()
        ref = dense_formula(f.double(), labels)[1]
        err = float((g - ref).norm() / ref.norm())
        print(
            f"{d:>5} {t_ours * 1e3:>9.2f} {t_a * 1e3:>21.2f} {t_b * 1e3:>17.2f}"
            f" {t_a / t_ours:>7.1f} {t_b / t_ours:>7.1f} {err:>12.1e}"
        )
    if args.objectives:
        objectives_side_by_side(args, device)


def objectives_side_by_side(args, device) -> None:
    """Each objective's loss_and_gradient on one batch, against DSCL's (ratio = its time /
    DSCL's); fewer repeats for the slow ones."""
    gen = torch.Generator().manual_seed(1)
    d = args.dims[0]
    f = torch.randn(args.n, d, generator=gen).to(device)
    labels = (torch.arange(args.n) % args.classes).to(device)
    print(f"\nloss_and_gradient per objective: n={args.n} d={d} classes={args.classes}")
    print(f"{'objective':>12} {'ms':>10} {'/ dscl':>8}")
    times = {}
    for name in [o for o in OBJECTIVES if not args.only or o in {"dscl", *args.only}]:
        objective = make_objective(name).bind(torch.unique(labels), d)
        if objective.module is not None:
            objective.module.to(device)
        repeats = min(3, args.repeats) if name == "facility" else args.repeats
        times[name] = timeit(lambda x, y, o=objective: o.loss_and_gradient(x, y), f, labels, repeats)
    for name, t in times.items():
        print(f"{name:>12} {t * 1e3:>10.1f} {t / times['dscl']:>8.1f}")


if __name__ == "__main__":
    main()
