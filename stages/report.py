"""Stage report@<dataset>: the paper's tables (Markdown and CSV) with intervals, DSCL
minus each baseline, a comparison of the methods and t-SNE plots
(:func:`dscl.report.build.write_report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dscl import config
from dscl.images import transform_for
from dscl.numerics import configure
from dscl.report.build import write_report
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--metrics", required=True, type=Path, help="reports/metrics/<dataset>")
    parser.add_argument("--embeddings", required=True, type=Path, help="data/embeddings/<dataset>")
    parser.add_argument("--evaluation", required=True, type=Path, help="data/evaluation/<dataset>")
    parser.add_argument("--prepared", type=Path, help="data/prepared/<dataset>: the images of the galleries")
    parser.add_argument(
        "--table",
        required=True,
        type=Path,
        help="reports/tables/<dataset>: writes <table>.md and <table>.csv",
    )
    parser.add_argument("--plots", required=True, type=Path, help="reports/plots/<dataset>")
    args = parser.parse_args(argv)
    cfg = config.load()
    configure(cfg.numerics.threads, deterministic=cfg.numerics.deterministic)
    feat = cfg.features(args.dataset)
    write_report(
        args.dataset,
        list(cfg.methods),
        metrics=args.metrics,
        embeddings=args.embeddings,
        evaluation=args.evaluation,
        table=args.table,
        plots=args.plots,
        ks=cfg.recall_ks(args.dataset),
        tsne=cfg.report.tsne,
        bootstrap=cfg.report.bootstrap,
        prepared=args.prepared,
        transform=transform_for(feat.backbone, feat.resize, feat.crop),
        gallery=cfg.report.gallery,
    )
    print(f"report@{args.dataset}: {args.table}.md/.csv, plots in {args.plots}")


if __name__ == "__main__":
    run(main)
