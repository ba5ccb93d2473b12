"""Stage prepare@<dataset>: obtain the dataset and write its class-disjoint split."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from dscl.datasets import get_dataset
from stages.cli import run
from stages.params import ParamsError, build, entry, load_params, section


@dataclass(frozen=True)
class PrepareParams:
    root: str = "data/raw"  # downloads and extracted archives
    verify_checksum: bool = True  # false only for local test archives
    datasets: dict = field(default_factory=dict)  # per dataset: its own options ({} if none)


def dataset_options(params: dict, name: str):
    """``prepare.datasets.<name>``: the dataset's options (its ``options`` dataclass), or
    None for a dataset that has none (its entry must then be empty)."""
    spec = get_dataset(name)
    value = entry(params, "prepare.datasets", name, "dataset")
    where = f"prepare.datasets.{name}"
    if spec.options is None:
        if value not in ({}, None):
            raise ParamsError(f"params.yaml: {where} must be empty ({{}}): {name} has no options, got {value!r}")
        return None
    return build(spec.options, value, where)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path, help="prepared folder")
    args = parser.parse_args(argv)
    params = load_params()
    cfg = section(params, "prepare", PrepareParams)
    spec = get_dataset(args.dataset)
    spec.run(args.out, Path(cfg.root), cfg.verify_checksum, dataset_options(params, args.dataset))
    print(f"prepare@{args.dataset}: wrote {args.out}")


if __name__ == "__main__":
    run(main)
