"""Make the cub200_mini testbed archive from the official CUB-200-2011 archive.

Keeps the photographs of classes 1-50 in the official layout (the four image lists
restricted to them, original image ids kept; ``classes.txt`` and ``README`` whole),
each resized so that its shorter side is 256 pixels (bicubic, JPEG quality 90):

    python scripts/make_cub200_mini.py CUB_200_2011.tgz \\
        data/raw/cub200_mini/CUB_200_2011_classes001-050.tgz

The archive made here holds the same images as the testbed archive but not the same
bytes (JPEG encoders differ), so prepare it with ``prepare.verify_checksum: false``: its
image and class counts are still checked exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dscl.datasets.archive import DatasetError, file_digest
from dscl.datasets.cub200 import MINI_CLASSES, MINI_SHORTER_SIDE, make_subset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the official CUB_200_2011.tgz")
    parser.add_argument("out", type=Path, help="the archive to write")
    parser.add_argument("--classes", type=int, nargs=2, default=MINI_CLASSES, metavar=("FIRST", "LAST"))
    parser.add_argument("--shorter-side", type=int, default=MINI_SHORTER_SIDE)
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"error: {args.source} not found (the official CUB_200_2011.tgz)", file=sys.stderr)
        return 2
    try:
        counts = make_subset(args.source, args.out, tuple(args.classes), args.shorter_side)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.out}: {counts['images']} images of {counts['classes']} classes, "
        f"sha256 {file_digest(args.out, 'sha256')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
