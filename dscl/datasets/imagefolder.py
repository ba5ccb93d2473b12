"""``imagefolder``: your own photographs, one sub-folder per class.

The folder (``prepare.datasets.imagefolder.path``) holds one sub-folder per class,
named after it, with that class's images inside (any depth; the extensions of
:data:`IMAGE_EXTENSIONS`; hidden files and folders are skipped)::

    data/raw/imagefolder/
        black_footed_albatross/0001.jpg
        black_footed_albatross/0002.jpg
        laysan_albatross/...

Classes are numbered 0, 1, ... in name order. The split is by class, as for the
paper's datasets: a seeded draw of ``test_fraction`` of the classes is held out for
test (at least two), the others train. Every image is decoded once, so a broken file
fails here, named. ``dvc repro`` does not see new photographs in the folder (it is not a
tracked output): after changing it, ``dvc repro --force prepare@imagefolder``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dscl.datasets.archive import DatasetError
from dscl.datasets.common import finish
from dscl.datasets.registry import DatasetSpec, register

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderOptions", "prepare_imagefolder", "scan", "split_classes"]

# torchvision's ImageFolder extensions
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MIN_CLASSES = 4  # two to train (and carve validation from), two to test


@dataclass(frozen=True)
class ImageFolderOptions:
    path: str = "data/raw/imagefolder"  # the folder of class sub-folders
    test_fraction: float = 0.5  # of the classes, held out for test
    seed: int = 0  # which classes are held out: a seeded draw

    def __post_init__(self):
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {self.test_fraction}")


def _hidden(path: Path, top: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def scan(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """The class names (sorted) and ``(path relative to folder, class number)`` of every
    image, in name order."""
    if not folder.is_dir():
        raise DatasetError(
            f"imagefolder: {folder} is not a folder. Put your photographs there, one "
            f"sub-folder per class ({folder}/<class name>/<image>), or set "
            f"prepare.datasets.imagefolder.path in params.yaml"
        )
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    rows: list[tuple[str, int]] = []
    empty = []
    for label, name in enumerate(classes):
        files = sorted(
            p
            for p in (folder / name).rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(p, folder)
        )
        if not files:
            empty.append(name)
        rows.extend((p.relative_to(folder).as_posix(), label) for p in files)
    if empty:
        raise DatasetError(
            f"imagefolder: class folder(s) {empty[:10]} in {folder} hold no image "
            f"(extensions {list(IMAGE_EXTENSIONS)}): add images or remove them"
        )
    if len(classes) < MIN_CLASSES:
        raise DatasetError(
            f"imagefolder: {folder} has {len(classes)} class sub-folder(s) {classes}; "
            f"at least {MIN_CLASSES} are needed (two to train, two to test)"
        )
    return classes, rows


def split_classes(n_classes: int, test_fraction: float, seed: int) -> np.ndarray:
    """The class numbers held out for test: ``round(test_fraction * n_classes)`` of them,
    at least 2 and leaving at least 2 to train, drawn with ``seed``; sorted."""
    n_test = min(max(2, math.floor(test_fraction * n_classes + 0.5)), n_classes - 2)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_classes, size=n_test, replace=False))


def prepare_imagefolder(
    out_dir: Path, root: Path, verify_checksum: bool, options: ImageFolderOptions
) -> None:
    """Scan, split by class, decode every image once, write the prepared form. ``root``
    and ``verify_checksum`` are not used: the photographs are the user's own."""
    folder = Path(options.path)
    classes, rows = scan(folder)
    test = set(split_classes(len(classes), options.test_fraction, options.seed).tolist())
    tables = {"train": [r for r in rows if r[1] not in test], "test": [r for r in rows if r[1] in test]}
    finish(
        "imagefolder",
        out_dir,
        folder,
        tables,
        expected={},
        strict=False,
        meta={
            "classes": classes,
            "test_class_names": [classes[i] for i in sorted(test)],
            "test_fraction": options.test_fraction,
            "seed": options.seed,
        },
    )


IMAGEFOLDER = register(
    DatasetSpec(
        name="imagefolder",
        description="your own photographs: a folder of class sub-folders, split by class",
        prepare=prepare_imagefolder,
        options=ImageFolderOptions,
    )
)
