"""Cars196 (Stanford Cars): 16,185 images of 196 car models.

Split of Song et al.: classes 1-98 train (8,054 images), 99-196 test (8,131). Two
formats are accepted and give the same split, by class id:

* the original ``car_ims.tgz`` + ``cars_annos.mat`` (their host is gone, but many users
  hold the two files: place them under ``<prepare.root>/cars196/``);
* the classes-by-folder mirror (a zip with ``anno_train.csv``, ``anno_test.csv``,
  ``names.csv`` and ``car_data/car_data/{train,test}/<class name>/<image>``), which is
  downloaded when the original files are not there. No checksum of it is published: its
  sha256 is recorded in the prepared ``meta.json``.

torchvision's ``StanfordCars`` uses the classification split (8,144 / 8,041): not used.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dscl.datasets.archive import DatasetError, RemoteFile, extract, fetch, file_digest
from dscl.datasets.common import ClassSplit, finish, split_by_class
from dscl.datasets.registry import DatasetSpec, register

ORIGINAL_IMAGES = RemoteFile(
    filename="car_ims.tgz",
    urls=("http://ai.stanford.edu/~jkrause/car196/car_ims.tgz",),
    md5="d5c8f0aa497503f355e17dc7886c3f14",
)
ORIGINAL_ANNOTATIONS = RemoteFile(
    filename="cars_annos.mat",
    urls=("http://ai.stanford.edu/~jkrause/car196/cars_annos.mat",),
    md5="b407c6086d669747186bd1d764ff9dbc",
)
MIRROR = RemoteFile(
    filename="stanford-car-dataset-by-classes-folder.zip",
    urls=("https://www.kaggle.com/api/v1/datasets/download/jutrera/stanford-car-dataset-by-classes-folder",),
)
CLASSES = ClassSplit(train=(1, 98), test=(99, 196))
EXPECTED = {"train_images": 8054, "test_images": 8131, "train_classes": 98, "test_classes": 98}


def _scalar(x):
    return np.asarray(x).squeeze().item()


def parse_annotations(mat_path: Path) -> list[tuple[str, int]]:
    """``(relative_im_path, class)`` of every annotation in ``cars_annos.mat``."""
    from scipy.io import loadmat

    try:
        mat = loadmat(mat_path, squeeze_me=True)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise DatasetError(f"{mat_path} is not a readable MATLAB file ({exc})") from None
    if "annotations" not in mat:
        raise DatasetError(f"{mat_path} has no 'annotations' struct array")
    ann = np.atleast_1d(mat["annotations"])
    names = ann.dtype.names or ()
    if "relative_im_path" not in names or "class" not in names:
        raise DatasetError(f"{mat_path}: annotations lack 'relative_im_path'/'class' (have {names})")
    return [(str(_scalar(a["relative_im_path"])), int(_scalar(a["class"]))) for a in ann]


def parse_mirror(base: Path) -> list[tuple[str, int]]:
    """Rows of the classes-by-folder mirror, paths relative to ``base``."""
    rows = []
    for subset in ("train", "test"):
        folder = base / "car_data" / "car_data" / subset
        if not folder.is_dir():
            raise DatasetError(f"{folder} is missing from the Cars196 mirror archive")
        index = {p.name: p.relative_to(base).as_posix() for p in folder.rglob("*") if p.is_file()}
        with open(base / f"anno_{subset}.csv", newline="") as fh:
            for record in csv.reader(fh):
                if not record:
                    continue
                name, label = record[0], int(record[-1])
                if name not in index:
                    raise DatasetError(f"{name} (anno_{subset}.csv) is not under {folder}")
                rows.append((index[name], label))
    return rows


def _find(root: Path, filename: str) -> Path:
    hits = sorted(root.rglob(filename))
    if not hits:
        raise DatasetError(f"{filename} is missing from the Cars196 mirror archive")
    return hits[0].parent


def prepare_cars196(out_dir: Path, root: Path, verify_checksum: bool) -> None:
    folder = root / "cars196"
    original = [folder / ORIGINAL_IMAGES.filename, folder / ORIGINAL_ANNOTATIONS.filename]
    mirror = folder / MIRROR.filename
    failures = []
    if not mirror.is_file():  # the original files first, placed or downloaded
        try:
            images = fetch(ORIGINAL_IMAGES, folder, verify_checksum)
            annos = fetch(ORIGINAL_ANNOTATIONS, folder, verify_checksum)
        except DatasetError as exc:
            if all(p.is_file() for p in original):
                raise  # the files are there but wrong: say so, do not fall back silently
            failures.append(str(exc))
        else:
            base = extract(images, folder / "extracted_original")
            rows = parse_annotations(annos)
            finish(
                "cars196",
                out_dir,
                base,
                split_by_class(rows, CLASSES),
                EXPECTED,
                strict=verify_checksum,
                meta={"format": "original (car_ims.tgz + cars_annos.mat)"},
            )
            return
    try:
        archive = fetch(MIRROR, folder, verify_checksum)
    except DatasetError as exc:
        failures.append(str(exc))
        raise DatasetError(
            "Cars196 could not be obtained in either format:\n" + "\n".join(failures)
        ) from None
    base = _find(extract(archive, folder / "extracted_mirror"), "anno_train.csv")
    rows = parse_mirror(base)
    finish(
        "cars196",
        out_dir,
        base,
        split_by_class(rows, CLASSES),
        EXPECTED,
        strict=verify_checksum,
        meta={
            "format": "classes-by-folder mirror",
            "archive": MIRROR.filename,
            "sha256": file_digest(archive, "sha256"),
        },
    )


register(DatasetSpec("cars196", "Cars196, classes 1-98 train / 99-196 test", prepare_cars196))
