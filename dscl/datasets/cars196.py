"""Cars196 (Stanford Cars): 16,185 images of 196 car models.

Split of Song et al.: classes 1-98 train (8,054 images), 99-196 test (8,131). Three
layouts are accepted under ``<prepare.root>/cars196/`` and give the same split, by the
official class id (1-196, the order of ``cars_meta.mat``'s ``class_names``):

* the original ``car_ims.tgz`` + ``cars_annos.mat`` (their host is gone, but many users
  hold the two files);
* the devkit layout of torchvision's ``StanfordCars`` and of the ``stanford-cars-dataset``
  mirrors: ``cars_train.tgz``, ``cars_test.tgz``, ``car_devkit.tgz`` (``devkit/`` with
  ``cars_meta.mat`` and ``cars_train_annos.mat``) and ``cars_test_annos_withlabels.mat``,
  as archives or already extracted (``cars_train/``, ``cars_test/``, ``devkit/``). Its
  train and test subsets (the classification split, 8,144 / 8,041) are pooled, then
  split by class;
* the classes-by-folder mirror (a zip with ``anno_train.csv``, ``anno_test.csv``,
  ``names.csv`` and ``car_data/car_data/{train,test}/<class name>/<image>``), which is
  downloaded when neither of the others is there.

No checksum of the devkit files or of the mirror is published: their sha256 is recorded in
the prepared ``meta.json``.
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
DEVKIT_ARCHIVES = ("cars_train.tgz", "cars_test.tgz", "car_devkit.tgz")
DEVKIT_FOLDERS = ("cars_train", "cars_test", "devkit")
TEST_LABELS = "cars_test_annos_withlabels.mat"
# Every source known to work, with what to place where (under prepare.root/cars196/): the
# original host answers 404 (torchvision's issue 7545), so the sources are copies
DEVKIT_URL = "https://github.com/pytorch/vision/files/11644847/car_devkit.tgz"
TEST_LABELS_URL = "https://github.com/pytorch/vision/issues/7545#issuecomment-1631441616"
LAYOUTS = (
    f"the original files, from a copy you hold (ai.stanford.edu no longer serves them): "
    f"{ORIGINAL_IMAGES.filename} (md5 {ORIGINAL_IMAGES.md5}) and {ORIGINAL_ANNOTATIONS.filename} "
    f"(md5 {ORIGINAL_ANNOTATIONS.md5}), placed as they are",
    "the devkit layout of torchvision's StanfordCars: the images of the Kaggle dataset "
    "https://www.kaggle.com/datasets/jessicali9530/stanford-cars-dataset "
    "as cars_train/ and cars_test/ (each holding the .jpg files; Kaggle nests cars_train/cars_train: "
    "keep the inner one) or as cars_train.tgz and cars_test.tgz; devkit/ or car_devkit.tgz "
    f"({DEVKIT_URL}); and {TEST_LABELS}, the test labels ({TEST_LABELS_URL}), beside them "
    "or inside devkit/",
    f"the classes-by-folder mirror {MIRROR.filename}, from Kaggle (jutrera; "
    f"{MIRROR.urls[0]}), downloaded when neither of the others is there, or placed as it is",
)
CLASSES = ClassSplit(train=(1, 98), test=(99, 196))
EXPECTED = {"train_images": 8054, "test_images": 8131, "train_classes": 98, "test_classes": 98}


def _scalar(x):
    return np.asarray(x).squeeze().item()


def parse_annotations(mat_path: Path) -> list[tuple[str, int]]:
    """``(relative_im_path, class)`` of every annotation in ``cars_annos.mat``."""
    mat = _loadmat(mat_path)
    if "annotations" not in mat:
        raise DatasetError(f"{mat_path} has no 'annotations' struct array")
    ann = np.atleast_1d(mat["annotations"])
    names = ann.dtype.names or ()
    if "relative_im_path" not in names or "class" not in names:
        raise DatasetError(f"{mat_path}: annotations lack 'relative_im_path'/'class' (have {names})")
    return [(str(_scalar(a["relative_im_path"])), int(_scalar(a["class"]))) for a in ann]


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(path, squeeze_me=True)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise DatasetError(f"{path} is not a readable MATLAB file ({exc})") from None


def parse_devkit(dirs: dict[str, Path], test_labels: Path, base: Path) -> list[tuple[str, int]]:
    """Rows of the devkit layout, train and test pooled, paths relative to ``base``.
    ``dirs`` maps ``cars_train``, ``cars_test`` and ``devkit`` to their folders."""
    meta = _loadmat(dirs["devkit"] / "cars_meta.mat")
    names = np.atleast_1d(meta.get("class_names", []))
    if len(names) != 196:
        raise DatasetError(f"{dirs['devkit'] / 'cars_meta.mat'} lists {len(names)} class names, expected 196")
    rows = []
    for subset, mat_path in (
        ("cars_train", dirs["devkit"] / "cars_train_annos.mat"),
        ("cars_test", test_labels),
    ):
        mat = _loadmat(mat_path)
        ann = np.atleast_1d(mat.get("annotations", []))
        fields = ann.dtype.names or ()
        if "fname" not in fields or "class" not in fields:
            raise DatasetError(
                f"{mat_path}: annotations lack 'fname'/'class' (have {fields}); the test "
                f"annotations must be {TEST_LABELS}, with labels"
            )
        for a in ann:
            label = int(_scalar(a["class"]))
            if not 1 <= label <= 196:
                raise DatasetError(f"{mat_path}: class {label} is not an official class id (1-196)")
            path = dirs[subset] / str(_scalar(a["fname"]))
            rows.append((path.relative_to(base).as_posix(), label))
    return rows


def _devkit_dirs(folder: Path) -> dict[str, Path] | None:
    """The folders ``cars_train``, ``cars_test`` and ``devkit`` of the devkit layout under
    ``folder`` (each archive extracted where it is what is there), or None when the layout
    is absent; a partial layout is an error naming what is missing."""
    archives = [folder / a for a in DEVKIT_ARCHIVES]
    folders = [folder / f for f in DEVKIT_FOLDERS]
    labels = folder / TEST_LABELS
    present = [p for p in (*archives, *folders, labels) if p.exists()]
    if not present:
        return None
    missing = [a.name for a, f in zip(archives, folders) if not a.is_file() and not f.is_dir()]
    has_labels = labels.is_file() or (folder / "devkit" / TEST_LABELS).is_file()
    if missing or not has_labels:
        raise DatasetError(
            f"{folder} holds part of the devkit layout ({', '.join(p.name for p in present)}); "
            f"missing: {', '.join(missing + ([] if has_labels else [TEST_LABELS]))}"
        )
    dirs = {}
    for archive, name in zip(archives, DEVKIT_FOLDERS):
        if (folder / name).is_dir():
            dirs[name] = folder / name
            continue
        found = sorted(p for p in extract(archive, folder / f"extracted_{name}").rglob(name) if p.is_dir())
        if not found:
            raise DatasetError(f"{archive} has no {name}/ folder")
        dirs[name] = found[0]
    return dirs


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


def _prepare_devkit(out_dir: Path, folder: Path, dirs: dict[str, Path], verify_checksum: bool) -> None:
    labels = folder / TEST_LABELS
    if not labels.is_file():
        labels = folder / "devkit" / TEST_LABELS
    rows = parse_devkit(dirs, labels, folder)
    digests = {
        name: file_digest(folder / name, "sha256")
        for name in (*DEVKIT_ARCHIVES, TEST_LABELS)
        if (folder / name).is_file()
    }
    finish(
        "cars196",
        out_dir,
        folder,
        split_by_class(rows, CLASSES),
        EXPECTED,
        strict=verify_checksum,
        meta={"format": "devkit (torchvision StanfordCars layout)", "sha256": digests},
    )


def _check_layout(folder: Path) -> None:
    """Files under ``folder`` that none of the three layouts names: a clear error before
    any download or extraction."""
    known = {
        ORIGINAL_IMAGES.filename,
        ORIGINAL_ANNOTATIONS.filename,
        MIRROR.filename,
        *DEVKIT_ARCHIVES,
        TEST_LABELS,
    }
    if not folder.is_dir():
        return
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "extracted_"))]
    if entries and not any(p.name in known or p.name in DEVKIT_FOLDERS for p in entries):
        raise DatasetError(
            f"{folder} holds {', '.join(sorted(p.name for p in entries)[:5])}, which is none of the "
            "Cars196 layouts this project reads:\n" + "\n".join(f"  * {layout}" for layout in LAYOUTS)
        )


def prepare_cars196(out_dir: Path, root: Path, verify_checksum: bool) -> None:
    folder = root / "cars196"
    original = [folder / ORIGINAL_IMAGES.filename, folder / ORIGINAL_ANNOTATIONS.filename]
    mirror = folder / MIRROR.filename
    _check_layout(folder)
    if not any(p.is_file() for p in original):
        dirs = _devkit_dirs(folder)
        if dirs is not None:
            _prepare_devkit(out_dir, folder, dirs, verify_checksum)
            return
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
            f"Cars196 could not be obtained: place one of these layouts under {folder}:\n"
            + "\n".join(f"  * {layout}" for layout in LAYOUTS)
            + "\nDownload attempts:\n"
            + "\n".join(failures)
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
