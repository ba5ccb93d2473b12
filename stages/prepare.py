"""Stage prepare@<dataset>: obtain the dataset and write its class-disjoint split."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from dscl.datasets import get_dataset
from stages.cli import run
from stages.params import load_params, section


@dataclass(frozen=True)
class PrepareParams:
    root: str = "data/raw"  # downloads and extracted archives
    verify_checksum: bool = True  # false only for local test archives


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path, help="prepared folder")
    args = parser.parse_args(argv)
    cfg = section(load_params(), "prepare", PrepareParams)
    spec = get_dataset(args.dataset)
    spec.prepare(args.out, Path(cfg.root), cfg.verify_checksum)
    print(f"prepare@{args.dataset}: wrote {args.out}")


if __name__ == "__main__":
    run(main)
