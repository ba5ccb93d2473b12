"""Steps shared by the image datasets: checking the split and writing the prepared form."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from dscl.atomic import atomic_dir
from dscl.datasets.archive import DatasetError
from dscl.datasets.prepared import write_prepared

__all__ = ["split_by_class", "finish"]


def split_by_class(rows: list[tuple[str, int]], last_train_class: int) -> dict[str, list[tuple[str, int]]]:
    """Classes ``<= last_train_class`` train, the others test (Song et al.'s protocol)."""
    return {
        "train": [r for r in rows if r[1] <= last_train_class],
        "test": [r for r in rows if r[1] > last_train_class],
    }


def finish(
    name: str,
    out_dir: Path,
    image_root: Path,
    tables: dict[str, list[tuple[str, int]]],
    expected: dict[str, int],
    strict: bool,
    meta: dict,
) -> None:
    """Check counts and files, then write the prepared folder atomically.

    ``expected`` maps ``train_images``, ``test_images`` (and optionally
    ``train_classes``, ``test_classes``) to the published counts: a mismatch is an error
    when ``strict`` (verified archives), a warning otherwise.
    """
    counts = {
        "train_images": len(tables["train"]),
        "test_images": len(tables["test"]),
        "train_classes": len({label for _, label in tables["train"]}),
        "test_classes": len({label for _, label in tables["test"]}),
    }
    mismatches = [f"{key.replace('_', ' ')}: found {counts[key]:,}, the published split has {value:,}"
                  for key, value in expected.items() if counts[key] != value]
    if mismatches:
        message = f"{name}: " + "; ".join(mismatches)
        if strict:
            raise DatasetError(message)
        warnings.warn(message + " (an unverified archive: continuing)", stacklevel=2)
    if not tables["train"] or not tables["test"]:
        raise DatasetError(f"{name}: the split is empty ({counts})")
    missing = [p for split in tables.values() for p, _ in split if not (image_root / p).is_file()]
    if missing:
        raise DatasetError(
            f"{name}: {len(missing):,} listed images are missing under {image_root}, "
            f"e.g. {missing[:3]}"
        )
    root = image_root.resolve()
    if not Path(os.path.commonpath([root, Path.cwd().resolve()])) == Path.cwd().resolve():
        recorded = str(root)  # outside the repository: keep it absolute
    else:
        recorded = os.path.relpath(root, out_dir.resolve())
    with atomic_dir(out_dir) as tmp:
        write_prepared(tmp, tables, {"dataset": name, "image_root": recorded, **meta})
