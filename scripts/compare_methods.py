"""Intervals and paired differences for some methods of a dataset, printed, without the
report's tables and figures.

Reads what the evaluate stages wrote (``reports/metrics/<dataset>/<method>.json`` and
``data/evaluation/<dataset>/<method>/``) and draws the report's class resamples
(``report.bootstrap``: same seed, same draws), so each figure printed is the one the
report's tables will carry once every method is evaluated; useful while a long pipeline
is still training the others.

    python scripts/compare_methods.py --dataset cub200_mini dscl_e2e triplet_e2e multisim_e2e
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dscl import config, layout
from dscl.report.build import bootstrap_methods
from dscl.report.tables import METHOD_NAMES, VARIANTS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("methods", nargs="+", help="method names; DSCL's are compared with the others")
    parser.add_argument("--metrics", nargs="+", default=["nmi", "recall@1", "map@r"])
    args = parser.parse_args(argv)
    cfg = config.load()
    ks = tuple(cfg.recall_ks(args.dataset))
    embeddings = Path("data/embeddings") / args.dataset
    missing = [m for m in args.methods if not layout.labels_file(embeddings / m).is_file()]
    if missing:
        parser.error(f"not evaluated yet: {missing}; run `dvc repro evaluate@{args.dataset}-<method>` first")
    labels = np.load(layout.labels_file(embeddings / args.methods[0]))
    try:
        intervals, differences = bootstrap_methods(
            args.methods, Path("data/evaluation") / args.dataset, labels, ks, cfg.report.bootstrap
        )
    except FileNotFoundError as err:
        parser.error(str(err))
    boot = cfg.report.bootstrap
    print(f"{args.dataset}: {boot.resamples} test-class resamples, seed {boot.seed}, {boot.level:.0%}")
    metrics = Path("reports/metrics") / args.dataset
    summaries = {m: json.loads(layout.metrics_file(metrics, m).read_text()) for m in args.methods}
    for method, summary in summaries.items():
        for variant in VARIANTS:
            cells = []
            for m in args.metrics:
                iv, std = intervals[method][variant][m], summary.get("std", {}).get(variant, {}).get(m)
                spread = "" if std is None else f" ± {std:.2f}"
                low, high = 100 * iv.low, 100 * iv.high
                cells.append(f"{m} {summary[variant][m]:.2f}{spread} [{low:.1f}, {high:.1f}]")
            print(f"  {METHOD_NAMES[method]} ({variant}): " + "; ".join(cells))
    for (ours, baseline), by_variant in differences.items():
        for variant in VARIANTS:
            cells = []
            for m in args.metrics:
                d = by_variant[variant][m]
                value = summaries[ours][variant][m] - summaries[baseline][variant][m]
                mark = " *" if d.holds else ""
                cells.append(f"{m} {value:+.2f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]{mark}")
            print(f"  {ours} - {baseline} ({variant}): " + "; ".join(cells))
    print("  (*: the interval excludes 0)")


if __name__ == "__main__":
    main()
