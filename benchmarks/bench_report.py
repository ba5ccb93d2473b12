"""The report stage at Stanford Online Products' size: each of its parts timed on a test
set of SOP's shape (60,502 points in 11,316 classes of 2 to 12, d = 512), against the
targets of the scale issue (t-SNE at most 2 minutes; the galleries, the tables and the
bootstrap at most 1 minute each).

The embeddings are generated (class centres plus noise, two methods of different
quality), evaluated by the real evaluate stage (its per-query details are what the
bootstrap resamples), then the report's parts run one by one through the library
(:mod:`dscl.report.build`) with params.yaml's settings. Figures are costs, never results.

    python benchmarks/bench_report.py [--fraction 1.0] [--only tsne galleries]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
import simulate_datasets as sim  # noqa: E402

METHODS = ["vanilla", "dscl_last"]


def test_set(fraction: float, rng: np.random.Generator) -> np.ndarray:
    shape = sim.SOP_SPLIT["test"]
    classes, images = sim.scaled(shape, fraction)
    sizes = sim.class_sizes(classes, images, shape.low, shape.high, rng)
    return np.repeat(np.arange(classes), sizes)


def write_embeddings(root: Path, labels: np.ndarray, rng: np.random.Generator) -> None:
    centres = rng.standard_normal((labels.max() + 1, 512)).astype(np.float32)
    for method, noise in zip(METHODS, (4.0, 3.0)):  # the fine-tuned one, closer to its centres
        folder = root / "data/embeddings/sop" / method
        folder.mkdir(parents=True)
        emb = centres[labels] + noise * rng.standard_normal((len(labels), 512)).astype(np.float32)
        np.save(folder / "test.npy", emb)
        np.save(folder / "test_labels.npy", labels.astype(np.int64))
        (folder / "info.json").write_text(json.dumps({"method": method, "normalized": True}))


@contextlib.contextmanager
def timed(rows: list, part: str, target: float):
    start = time.perf_counter()
    yield
    rows.append((part, time.perf_counter() - start, target))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("tsne", "galleries"),
        help="these parts alone (no evaluation, no tables)",
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    labels = test_set(args.fraction, rng)
    root = Path(tempfile.mkdtemp(prefix="bench-report-"))
    cwd = os.getcwd()
    try:
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params.update(datasets=["sop"], methods=METHODS)
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        write_embeddings(root, labels, rng)
        os.chdir(root)
        from dscl import config, layout
        from dscl.numerics import configure
        from dscl.report.build import bootstrap_methods, build_table, write_galleries
        from dscl.report.plots import plot_methods, plot_tsne
        from dscl.report.tables import render_markdown
        from stages import evaluate

        cfg = config.load()
        configure(cfg.numerics.threads, deterministic=cfg.numerics.deterministic)
        rows: list = []
        for m in [] if args.only else METHODS:
            with timed(
                rows, f"evaluate {m} (the stage: NMI, R@K, MAP@R, RP, with and without SC)", float("nan")
            ):
                evaluate.main([
                    "--dataset", "sop", "--embeddings", f"data/embeddings/sop/{m}",
                    "--out", f"reports/metrics/sop/{m}.json", "--details", f"data/evaluation/sop/{m}",
                    "--environment", f"reports/environment/sop/{m}.json",
                ])  # fmt: skip
        ks = cfg.recall_ks("sop")
        emb_dir, metrics = Path("data/embeddings/sop"), Path("reports/metrics/sop")
        if args.only:  # the comparison figure reads the methods' R@1: any will do here
            for m in METHODS:
                layout.metrics_file(metrics, m).parent.mkdir(parents=True, exist_ok=True)
                layout.metrics_file(metrics, m).write_text(json.dumps({"without_sc": {"recall@1": 0.0}}))
        else:
            boot = cfg.report.bootstrap
            with timed(rows, f"bootstrap ({boot.resamples} class resamples, both methods)", 60):
                intervals, _ = bootstrap_methods(METHODS, Path("data/evaluation/sop"), labels, ks, boot)
            with timed(rows, "tables (Markdown and CSV, with the intervals)", 60):
                render_markdown("sop", build_table("sop", METHODS, metrics, ks, emb_dir, intervals), ks)
                plot_methods("sop", METHODS, metrics, Path("plots/methods.png"))
        for m in METHODS if not args.only or "tsne" in args.only else []:
            with timed(rows, f"t-SNE of {m} (max_classes {cfg.report.tsne.max_classes}, seeded)", 120):
                emb = np.load(emb_dir / m / "test.npy")
                plot_tsne(
                    emb,
                    labels,
                    m,
                    Path(f"plots/tsne_{m}.png"),
                    cfg.report.tsne,
                    lambda i: np.zeros((8, 8, 3)),
                )
        if not args.only or "galleries" in args.only:
            with timed(rows, "galleries (every method, the comparison)", 60):
                write_galleries(
                    "sop", METHODS, embeddings=emb_dir, metrics=metrics, labels=labels,
                    image=lambda i: np.full((16, 16, 3), i % 255, np.uint8), plots=Path("plots"),
                    cfg=cfg.report.gallery,
                )  # fmt: skip
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"SOP's test set at {args.fraction:g}: {len(labels):,} points, {labels.max() + 1:,} classes, d = 512"
    )
    print("| part | seconds | target | within |")
    print("|---|---|---|---|")
    for part, seconds, target in rows:
        within = "" if np.isnan(target) else ("yes" if seconds <= target else "**no**")
        shown = "" if np.isnan(target) else f"{target:.0f} s"
        print(f"| {part} | {seconds:.1f} | {shown} | {within} |")
    print(f"peak memory of the process: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
