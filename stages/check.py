"""Stage check: params.yaml validated whole before any other stage runs.

Every stage depends on this stage's output, so DVC runs it first: a refused value stops
``dvc repro`` here, before DVC removes any stage's outputs (it removes them just before
running a stage's command). The output holds the same line whenever the file is valid,
so an edit still re-runs only the stages that read what changed (docs, "Configuration").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dscl import config
from dscl.atomic import write_text
from stages.cli import run

STAMP = "params.yaml passed every check of dscl.config (stage check: docs, Configuration)\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    config.load()
    if not args.out.is_file() or args.out.read_text(encoding="utf-8") != STAMP:
        write_text(args.out, STAMP)


if __name__ == "__main__":
    run(main)
