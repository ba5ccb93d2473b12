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
    labels = np.load(args.embeddings / "test_labels.npy")
    runs = embedding_runs(args.embeddings)
    results = []
    for _, path in runs:
        scores = evaluate_embedding(np.load(path), labels, ks=ks, seed=km.seed, kmeans_niter=km.niter,
                                    kmeans_nredo=km.nredo, kmeans_backend=km.backend)
        results.append({variant: {name: round(100.0 * v, 2) for name, v in s.items()}
                        for variant, s in scores.items()})
    info = args.embeddings / "info.json"
    seeds = json.loads(info.read_text()).get("seeds") if info.is_file() else None
    out = summarize(results, seeds or [seed for seed, _ in runs])
    write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(f"evaluate@{args.dataset}: {json.dumps({k: v for k, v in out.items() if k != 'runs'})}")


def embedding_runs(folder: Path) -> list[tuple[int | None, Path]]:
    """``test.npy`` (the first seed's run) and ``seed-<s>/test.npy`` of the others, as
    ``(seed or None for the first, path)``."""
    others = sorted(folder.glob("seed-*/test.npy"), key=lambda p: int(p.parent.name.split("-", 1)[1]))
    return [(None, folder / "test.npy")] + [(int(p.parent.name.split("-", 1)[1]), p) for p in others]


def summarize(results: list[dict], seeds: list[int | None]) -> dict:
    """One run: its scores. Several (one per seed): the mean of each score over the runs
    under ``with_sc``/``without_sc`` (what tables and the regression gate read), the
    sample standard deviation under ``std``, and each run's scores under ``runs``."""
    if len(results) == 1:
        return results[0]
    out: dict = {}
    std: dict = {}
    for variant, scores in results[0].items():
        out[variant], std[variant] = {}, {}
        for name in scores:
            values = np.array([r[variant][name] for r in results])
            out[variant][name] = round(float(values.mean()), 2)
            std[variant][name] = round(float(values.std(ddof=1)), 2)
    out["std"] = std
    out["runs"] = [{"seed": seed, **r} for seed, r in zip(seeds, results)]
    return out


if __name__ == "__main__":
    run(main)
