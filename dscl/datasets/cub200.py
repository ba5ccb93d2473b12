"""CUB-200-2011: 11,788 bird images of 200 species.

Split of Song et al. (the paper's protocol): classes 1-100 train (5,864 images), 101-200
test (5,924). ``train_test_split.txt`` is the classification split and is not used.
"""

from __future__ import annotations

from pathlib import Path

from dscl.datasets.archive import DatasetError, RemoteFile, extract, fetch
from dscl.datasets.common import finish, split_by_class
from dscl.datasets.registry import DatasetSpec, register

ARCHIVE = RemoteFile(
    filename="CUB_200_2011.tgz",
    urls=(
        "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
        "http://www.vision.caltech.edu/visipedia-data/CUB-200-2011/CUB_200_2011.tgz",
    ),
    sha256="0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081",
    md5="97eceeb196236b17998738112f37df78",
    size=1_150_585_339,
)
EXPECTED = {"train_images": 5864, "test_images": 5924, "train_classes": 100, "test_classes": 100}


def _read_pairs(path: Path) -> dict[int, str]:
    if not path.is_file():
        raise DatasetError(f"{path} is missing from the CUB-200-2011 archive")
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, value = line.split(maxsplit=1)
            pairs[int(key)] = value.strip()
    return pairs


def parse(base: Path) -> list[tuple[str, int]]:
    """``(path relative to base/images, class id)`` for every image, in id order."""
    images = _read_pairs(base / "images.txt")
    labels = _read_pairs(base / "image_class_labels.txt")
    if images.keys() != labels.keys():
        raise DatasetError("images.txt and image_class_labels.txt list different image ids")
    return [(images[i], int(labels[i])) for i in sorted(images)]


def prepare_cub200(out_dir: Path, root: Path, verify_checksum: bool) -> None:
    folder = root / "cub200"
    archive = fetch(ARCHIVE, folder, verify_checksum)
    base = extract(archive, folder / "extracted") / "CUB_200_2011"
    tables = split_by_class(parse(base), last_train_class=100)
    finish("cub200", out_dir, base / "images", tables, EXPECTED, strict=verify_checksum,
           meta={"archive": ARCHIVE.filename, "sha256": ARCHIVE.sha256 if verify_checksum else None})


register(DatasetSpec("cub200", "CUB-200-2011, classes 1-100 train / 101-200 test", prepare_cub200))
