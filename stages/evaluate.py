"""Stage evaluate@<dataset>-<method>: NMI, Recall@K, MAP@R and R-Precision with and
without spectral clustering, written in percent as the paper prints them."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dscl.atomic import write_text
from dscl.kmeans import KMEANS_BACKENDS
from dscl.metrics import evaluate_embedding
from stages.cli import run
from stages.params import ParamsError, convert, entry, load_params, section


@dataclass(frozen=True)
class KMeansParams:
    niter: int = 20
    nredo: int = 1
    seed: int = 0
    backend: str = "auto"  # auto: faiss, or torch on a GPU when faiss has no GPU build

    def __post_init__(self):
        if self.backend not in KMEANS_BACKENDS:
            raise ValueError(f"backend must be one of {list(KMEANS_BACKENDS)}, got {self.backend!r}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    params = load_params()
    km = section(params, "evaluate.kmeans", KMeansParams)
    ks = convert(entry(params, "evaluate.recall_ks", args.dataset, "dataset"), tuple[int, ...],
                  f"evaluate.recall_ks.{args.dataset}")
    if not ks:
        raise ParamsError(f"evaluate.recall_ks.{args.dataset} must list at least one K")
    emb = np.load(args.embeddings / "test.npy")
    labels = np.load(args.embeddings / "test_labels.npy")
    scores = evaluate_embedding(emb, labels, ks=ks, seed=km.seed, kmeans_niter=km.niter,
                                kmeans_nredo=km.nredo, kmeans_backend=km.backend)
    percent = {variant: {name: round(100.0 * v, 2) for name, v in s.items()}
               for variant, s in scores.items()}
    write_text(args.out, json.dumps(percent, indent=2) + "\n")
    print(f"evaluate@{args.dataset}: {json.dumps(percent)}")


if __name__ == "__main__":
    run(main)
