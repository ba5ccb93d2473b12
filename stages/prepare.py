"""Stage prepare@<dataset>: obtain the dataset and write its class-disjoint split."""

from __future__ import annotations

import argparse
from pathlib import Path

from dscl import config
from dscl.datasets import get_dataset
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path, help="prepared folder")
    args = parser.parse_args(argv)
    cfg = config.load()
    options = cfg.dataset_options(args.dataset)
    get_dataset(args.dataset).run(args.out, Path(cfg.prepare.root), cfg.prepare.verify_checksum, options)
    print(f"prepare@{args.dataset}: wrote {args.out}")


if __name__ == "__main__":
    run(main)
