"""Stage curves@<dataset>: the methods' training curves of one dataset in one table
(:func:`dscl.report.curves.gather`), drawn by ``dvc plots show``."""

from __future__ import annotations

import argparse
from pathlib import Path

from dscl import config
from dscl.atomic import write_text
from dscl.report.curves import gather
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--train", required=True, type=Path, help="the train stages' DVCLive folders")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    cfg = config.load()
    cfg.require_dataset(args.dataset)
    rule = cfg.common.selection
    write_text(args.out, gather(args.train, args.dataset, list(cfg.methods), rule.metric, rule.variant))
    print(f"curves@{args.dataset}: wrote {args.out}")


if __name__ == "__main__":
    run(main)
