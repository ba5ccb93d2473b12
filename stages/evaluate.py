"""Stage evaluate@<dataset>-<method>: NMI, Recall@K, MAP@R and R-Precision with and
without spectral clustering, written in percent as the paper prints them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dscl import config, layout
from dscl.atomic import write_text
from dscl.metrics import evaluate_embedding, in_percent, summarize_runs
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    cfg = config.load()
    km, ks = cfg.kmeans, cfg.recall_ks(args.dataset)
    labels = np.load(args.embeddings / "test_labels.npy")
    runs = layout.embedding_files(args.embeddings)
    results = [
        in_percent(
            evaluate_embedding(
                np.load(path),
                labels,
                ks=ks,
                seed=km.seed,
                kmeans_niter=km.niter,
                kmeans_nredo=km.nredo,
                kmeans_backend=km.backend,
            )
        )
        for _, path in runs
    ]
    info = args.embeddings / "info.json"
    seeds = json.loads(info.read_text()).get("seeds") if info.is_file() else None
    out = summarize_runs(results, seeds or [seed for seed, _ in runs])
    write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(f"evaluate@{args.dataset}: {json.dumps({k: v for k, v in out.items() if k != 'runs'})}")


if __name__ == "__main__":
    run(main)
