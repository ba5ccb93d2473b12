"""The prepared form every dataset is converted to: two CSV tables and a meta file.

``<dir>/train.csv`` and ``<dir>/test.csv`` have the columns ``path,label``: ``path`` is
relative to the image root recorded in ``<dir>/meta.json``, ``label`` is the dataset's
own class id. Train and test classes are disjoint.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dscl.atomic import write_text

__all__ = ["SPLITS", "Split", "read_meta", "read_split", "write_prepared"]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Split:
    """One side of a prepared dataset."""

    paths: list[str]
    labels: np.ndarray  # (n,), int64
    image_root: Path

    def __len__(self) -> int:
        return len(self.paths)

    def image_path(self, i: int) -> Path:
        return self.image_root / self.paths[i]


def write_prepared(out_dir: Path, tables: dict[str, list[tuple[str, int]]], meta: dict) -> None:
    """Write ``train.csv``, ``test.csv`` and ``meta.json`` into ``out_dir``."""
    train_classes = {label for _, label in tables["train"]}
    test_classes = {label for _, label in tables["test"]}
    if train_classes & test_classes:
        raise ValueError(f"train and test classes overlap: {sorted(train_classes & test_classes)[:10]}")
    for split in SPLITS:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows(tables[split])
        write_text(out_dir / f"{split}.csv", buf.getvalue())
    meta = {
        **meta,
        "train_images": len(tables["train"]),
        "test_images": len(tables["test"]),
        "train_classes": len(train_classes),
        "test_classes": len(test_classes),
    }
    write_text(out_dir / "meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_meta(prepared_dir: str | Path) -> dict:
    path = Path(prepared_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare stage first (dvc repro prepare@...)")
    return json.loads(path.read_text())


def read_split(prepared_dir: str | Path, split: str) -> Split:
    """Read one split of a prepared dataset."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    prepared_dir = Path(prepared_dir)
    meta = read_meta(prepared_dir)
    root = Path(meta["image_root"])
    if not root.is_absolute():
        root = prepared_dir / root
    with open(prepared_dir / f"{split}.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = [row["path"] for row in rows]
    labels = np.array([int(row["label"]) for row in rows], dtype=np.int64)
    return Split(paths=paths, labels=labels, image_root=root)
