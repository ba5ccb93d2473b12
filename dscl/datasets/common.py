"""Steps shared by the image datasets: checking the split and writing the prepared form."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from dscl.atomic import atomic_dir
from dscl.datasets.archive import DatasetError
from dscl.datasets.prepared import write_prepared

__all__ = ["ClassSplit", "check_images", "finish", "split_by_class"]


@dataclass(frozen=True)
class ClassSplit:
    """Which class ids train and which test: two inclusive ranges ``(first, last)``.

    The protocol of Song et al. (the paper's): the first half of the classes train,
    the second half test, e.g. ``ClassSplit(train=(1, 100), test=(101, 200))`` for
    CUB-200-2011. A class in neither range is an error, not silently dropped.
    """

    train: tuple[int, int]
    test: tuple[int, int]

    def __post_init__(self):
        (a, b), (c, d) = self.train, self.test
        if not (a <= b and c <= d) or max(a, c) <= min(b, d):
            raise ValueError(
                f"class ranges must be ordered and disjoint, got train {self.train}, test {self.test}"
            )

    def side(self, label: int) -> str | None:
        for name, (first, last) in (("train", self.train), ("test", self.test)):
            if first <= label <= last:
                return name
        return None


def split_by_class(rows: list[tuple[str, int]], classes: ClassSplit) -> dict[str, list[tuple[str, int]]]:
    """``rows`` of ``(path, class id)`` split by ``classes`` (train and test disjoint)."""
    tables: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    outside = sorted({label for _, label in rows if classes.side(label) is None})
    if outside:
        raise DatasetError(
            f"class ids {outside[:10]} are in neither the train range {classes.train} "
            f"nor the test range {classes.test}"
        )
    for row in rows:
        tables[classes.side(row[1])].append(row)
    return tables


def read_rows(
    path: Path, fields: int, what: str, source: str, header: list[str] | None = None
) -> list[tuple[int, list[str]]]:
    """The non-blank lines of a dataset's list file, each split into ``fields`` fields
    (the last takes the rest of the line), with their line numbers; DatasetError naming
    the file, the line and the expected ``what`` for a file missing, not text, or a line
    of another form. ``source``: the archive it comes from; ``header``: the first line's
    fields, when the file has one (checked, not returned)."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing from the {source} archive")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start}); expected lines of {what}") from None
    rows = []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if header is not None:
        if not lines or lines[0][1].split() != header:
            raise DatasetError(f"{path}: expected the header '{' '.join(header)}'")
        lines = lines[1:]
    for number, line in lines:
        parts = line.split(maxsplit=fields - 1)
        if len(parts) != fields:
            raise DatasetError(f"{path}, line {number}: expected {what}, got {line.strip()!r}")
        rows.append((number, parts))
    return rows


def as_int(value: str, where: str, what: str) -> int:
    """``int(value)``, or DatasetError naming ``where`` (the file and line) and ``what``."""
    try:
        return int(value)
    except ValueError:
        raise DatasetError(f"{where}: {what} must be an integer, got {value!r}") from None


def check_listed(image_root: Path, paths: list[str]) -> None:
    """DatasetError for a listed image path that would lead outside ``image_root``
    (absolute, ``..``, or through a link), before any is read."""
    root = image_root.resolve()
    for rel in paths:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or not (root / rel).resolve().is_relative_to(root):
            raise DatasetError(
                f"{image_root}: the list names {rel!r}, which lies outside the dataset's folder"
            )


def check_images(image_root: Path, paths: list[str], num_workers: int = 4) -> None:
    """Decode every image once, so that a damaged file fails here, named, and not in the
    middle of training. Raises :class:`DatasetError` listing the files that do not decode."""
    from PIL import Image

    def bad(rel: str) -> str | None:
        try:
            with Image.open(image_root / rel) as img:
                img.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # Pillow's
            return f"{image_root / rel}: {exc}"
        return None

    with ThreadPoolExecutor(num_workers) as pool:
        failures = [
            f
            for f in tqdm(pool.map(bad, paths), total=len(paths), desc="check images", unit="img")
            if f is not None
        ]
    if failures:
        listed = "\n".join(f"  - {f}" for f in failures[:20])
        more = f"\n  (and {len(failures) - 20} more)" if len(failures) > 20 else ""
        raise DatasetError(
            f"{len(failures)} image(s) do not decode:\n{listed}{more}\n"
            f"The archive is damaged: obtain it again."
        )


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
    mismatches = [
        f"{key.replace('_', ' ')}: found {counts[key]:,}, the published split has {value:,}"
        for key, value in expected.items()
        if counts[key] != value
    ]
    if mismatches:
        message = f"{name}: " + "; ".join(mismatches)
        if strict:
            raise DatasetError(message)
        warnings.warn(message + " (an unverified archive: continuing)", stacklevel=2)
    if not tables["train"] or not tables["test"]:
        raise DatasetError(f"{name}: the split is empty ({counts})")
    check_listed(image_root, [rel for rows in tables.values() for rel, _ in rows])
    missing = [p for split in tables.values() for p, _ in split if not (image_root / p).is_file()]
    if missing:
        raise DatasetError(
            f"{name}: {len(missing):,} listed images are missing under {image_root}, e.g. {missing[:3]}"
        )
    check_images(image_root, [p for split in tables.values() for p, _ in split])
    root = image_root.resolve()
    if Path(os.path.commonpath([root, Path.cwd().resolve()])) != Path.cwd().resolve():
        recorded = str(root)  # outside the repository: keep it absolute
    else:
        recorded = os.path.relpath(root, out_dir.resolve())
    with atomic_dir(out_dir) as tmp:
        write_prepared(tmp, tables, {"dataset": name, "image_root": recorded, **meta})
