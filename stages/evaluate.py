"""Stage evaluate@<dataset>-<method>: NMI (the mean over k-means seeds), Recall@K, MAP@R
and R-Precision with and without spectral clustering, written in percent as the paper
prints them; and the per-query quantities and partitions the report's bootstrap resamples."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dscl import config, layout
from dscl.atomic import atomic_dir, write_text
from dscl.evaluation.metrics import summarize_runs
from dscl.evaluation.protocol import evaluate_test, kmeans_spread
from dscl.numerics import configure, environment
from dscl.scoring.scores import in_percent
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--details", required=True, type=Path, help="data/evaluation/<dataset>/<method>")
    parser.add_argument(
        "--environment", required=True, type=Path, help="reports/environment/<dataset>/<method>.json"
    )
    args = parser.parse_args(argv)
    cfg = config.load()
    configure(cfg.numerics.threads, deterministic=cfg.numerics.deterministic)
    ks = cfg.recall_ks(args.dataset)
    labels = np.load(layout.labels_file(args.embeddings))
    runs = layout.embedding_files(args.embeddings)
    options = cfg.test_kmeans_options(args.dataset)
    evaluated = [evaluate_test(np.load(path), labels, ks=ks, **options) for _, path in runs]
    results = [in_percent(scores) for scores, _, _ in evaluated]
    with atomic_dir(args.details) as tmp:
        for i, (_, details, _) in enumerate(evaluated):
            folder = layout.details_folder(tmp, i)
            folder.mkdir()
            for variant, arrays in details.items():
                for name, values in arrays.items():
                    np.save(layout.detail_file(folder, variant, name), values)
    info_file = layout.info_file(args.embeddings)
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    out = summarize_runs(results, info.get("seeds") or [seed for seed, _ in runs])
    nmis = [nmis for _, _, nmis in evaluated]
    out["kmeans"] = kmeans_spread(nmis, options["seeds"], options["seed"], options["restarts"])
    write_text(args.out, json.dumps(out, indent=2) + "\n")
    # the numeric environment of every step behind these figures (docs, "Reproducibility"),
    # beside the figures rather than among them: DVC shows a metrics file's every value
    where = {**(info.get("environment") or {}), "evaluate": environment()}
    write_text(args.environment, json.dumps(where, indent=2) + "\n")
    shown = {k: v for k, v in out.items() if k not in ("runs", "kmeans")}
    shown["nmi k-means sd"] = out["kmeans"]["nmi_sd"]
    print(f"evaluate@{args.dataset}: {json.dumps(shown)}")


if __name__ == "__main__":
    run(main)
