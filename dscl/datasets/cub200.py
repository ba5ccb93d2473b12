"""CUB-200-2011 (11,788 bird images of 200 species) and its testbed subset.

One format, one parser, two datasets that differ only in their declarations:

* ``cub200``: the official ``CUB_200_2011.tgz``; split of Song et al. (the paper's
  protocol): classes 1-100 train (5,864 images), 101-200 test (5,924).
* ``cub200_mini``: the photographs of classes 1-50 in the official layout, resized to a
  shorter side of 256 (``CUB_200_2011_classes001-050.tgz``, made from the official
  archive by :func:`make_subset`, ``scripts/make_cub200_mini.py``); the same protocol
  scaled down: classes 1-25 train (1,402 images), 26-50 test (1,487). A real-image
  testbed, not the paper's benchmark.

``train_test_split.txt`` is the classification split and is not used.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dscl.atomic import atomic_path
from dscl.datasets.archive import DatasetError, RemoteFile, extract, fetch, file_digest
from dscl.datasets.common import ClassSplit, as_int, finish, read_rows, split_by_class
from dscl.datasets.registry import DatasetSpec, register

__all__ = ["CUB200", "CUB200_MINI", "CUB200_SUB100", "CubVariant", "make_subset", "parse"]

TOP = "CUB_200_2011"
LISTS = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")


@dataclass(frozen=True)
class CubVariant:
    """One dataset in the CUB-200-2011 format: its archive, class ranges and published
    counts. ``strict_counts``: the counts are checked exactly even when the archive's
    checksum is not (an archive made again from the official one has other bytes, but
    must hold exactly the same images)."""

    name: str
    description: str
    archive: RemoteFile
    classes: ClassSplit
    expected: dict[str, int]
    strict_counts: bool = False


CUB200 = CubVariant(
    name="cub200",
    description="CUB-200-2011, classes 1-100 train / 101-200 test",
    archive=RemoteFile(
        filename="CUB_200_2011.tgz",
        # CaltechDATA, the dataset's home since the visipedia-data host stopped serving it
        urls=("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",),
        sha256="0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081",
        md5="97eceeb196236b17998738112f37df78",
        size=1_150_585_339,
    ),
    classes=ClassSplit(train=(1, 100), test=(101, 200)),
    expected={"train_images": 5864, "test_images": 5924, "train_classes": 100, "test_classes": 100},
)

MINI_CLASSES = (1, 50)
MINI_SHORTER_SIDE = 256
CUB200_MINI = CubVariant(
    name="cub200_mini",
    description="CUB-200-2011 classes 1-50 at 256 px: classes 1-25 train / 26-50 test (testbed)",
    archive=RemoteFile(
        filename="CUB_200_2011_classes001-050.tgz",
        urls=(),  # not published: placed by hand, or made from the official archive
        sha256="2f3e1155fe1e97ce64d4e9d33bbf52f23f3ad3a5408efe4dd9cc12168703a90f",
        size=70_204_042,
        how_to_obtain=(
            "Copy the testbed archive (e.g. from ../shared/data/cub200_mini/), or make it from "
            "the official CUB_200_2011.tgz with\n"
            "  python scripts/make_cub200_mini.py CUB_200_2011.tgz {target}\n"
            "(an archive made again has other bytes: set prepare.verify_checksum: false for it; "
            "its image and class counts are still checked exactly)"
        ),
    ),
    classes=ClassSplit(train=(1, 25), test=(26, 50)),
    expected={"train_images": 1402, "test_images": 1487, "train_classes": 25, "test_classes": 25},
    strict_counts=True,
)


CUB200_SUB100 = CubVariant(
    name="cub200_sub100",
    description=(
        "100 complete CUB-200-2011 classes, bird crops at 227 px: the 58 of id 1-100 train / "
        "the 42 of id 101-200 test (the paper's split mirrored; a second testbed)"
    ),
    archive=RemoteFile(
        filename="CUB_200_2011_sub100_227.tgz",
        urls=(),  # not published: placed by hand
        sha256="367bc6a07de3636f3a908580ad98e3d9d7c1c995f2d6b81ce3337418ff5c7836",
        size=52_334_059,
        how_to_obtain="Copy the testbed archive from ../shared/data/cub200_sub100/ to {target}",
    ),
    # the images are already cropped to their bounding boxes (its README): none is applied
    classes=ClassSplit(train=(1, 100), test=(101, 200)),
    expected={"train_images": 3428, "test_images": 2474, "train_classes": 58, "test_classes": 42},
    strict_counts=True,
)


def _read_pairs(path: Path) -> dict[int, str]:
    rows = read_rows(path, 2, "2 fields: an image id and its value", "CUB-200-2011")
    return {
        as_int(key, f"{path}, line {number}", "the image id"): value.strip() for number, (key, value) in rows
    }


def parse(base: Path) -> list[tuple[str, int]]:
    """``(path relative to base/images, class id)`` for every image, in id order."""
    images = _read_pairs(base / "images.txt")
    labels = _read_pairs(base / "image_class_labels.txt")
    if images.keys() != labels.keys():
        raise DatasetError("images.txt and image_class_labels.txt list different image ids")
    path = base / "image_class_labels.txt"
    return [(images[i], as_int(labels[i], f"{path}, image {i}", "the class id")) for i in sorted(images)]


def prepare_cub(variant: CubVariant, out_dir: Path, root: Path, verify_checksum: bool) -> None:
    folder = root / variant.name
    archive = fetch(variant.archive, folder, verify_checksum)
    base = extract(archive, folder / "extracted") / TOP
    tables = split_by_class(parse(base), variant.classes)
    sha256 = variant.archive.sha256 if verify_checksum else file_digest(archive, "sha256")
    finish(
        variant.name,
        out_dir,
        base / "images",
        tables,
        variant.expected,
        strict=verify_checksum or variant.strict_counts,
        meta={
            "archive": variant.archive.filename,
            "sha256": sha256,
            "train_class_range": list(variant.classes.train),
            "test_class_range": list(variant.classes.test),
        },
    )


def _register(variant: CubVariant) -> DatasetSpec:
    def prepare(out_dir: Path, root: Path, verify_checksum: bool) -> None:
        prepare_cub(variant, out_dir, root, verify_checksum)

    return register(DatasetSpec(variant.name, variant.description, prepare))


_register(CUB200)
_register(CUB200_MINI)
_register(CUB200_SUB100)


# --------------------------------------------------------------------------------------
# Making the testbed subset from the official archive
# --------------------------------------------------------------------------------------
def _resized_jpeg(data: bytes, shorter_side: int, quality: int) -> bytes:
    """The JPEG ``data`` resized (bicubic) so that its shorter side is ``shorter_side``."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = shorter_side / min(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        buf = io.BytesIO()
        img.resize(size, Image.BICUBIC).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tf.addfile(info, io.BytesIO(data))


def make_subset(
    source: Path,
    out: Path,
    classes: tuple[int, int] = MINI_CLASSES,
    shorter_side: int = MINI_SHORTER_SIDE,
    quality: int = 90,
) -> dict[str, int]:
    """Write the CUB-format archive ``out`` holding the images of the classes
    ``classes[0]..classes[1]`` of the CUB-200-2011 archive ``source``, resized to a
    shorter side of ``shorter_side`` (JPEG ``quality``).

    The four image lists are restricted to those images (original ids kept);
    ``classes.txt`` and ``README`` are copied whole. Members are written in a fixed
    order with fixed metadata. Returns the counts ``{"images", "classes"}``.
    """
    first, last = classes
    with tarfile.open(source) as src:
        members = {m.name: m for m in src.getmembers() if m.isfile()}
        for required in ("images.txt", "image_class_labels.txt", "classes.txt"):
            if f"{TOP}/{required}" not in members:
                raise DatasetError(f"{source}: {TOP}/{required} is missing (not a CUB-200-2011 archive)")

        def read(name: str) -> bytes:
            return src.extractfile(members[f"{TOP}/{name}"]).read()

        labels = {
            int(i): int(c)
            for i, c in (
                line.split() for line in read("image_class_labels.txt").decode().splitlines() if line.strip()
            )
        }
        keep = {i for i, c in labels.items() if first <= c <= last}
        if not keep:
            raise DatasetError(f"{source}: no image of classes {first}-{last}")
        images = {
            int(i): p
            for i, p in (
                line.split(maxsplit=1) for line in read("images.txt").decode().splitlines() if line.strip()
            )
        }
        with (
            atomic_path(out) as tmp,
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as dst,
        ):
            for name in LISTS:
                if f"{TOP}/{name}" not in members:
                    continue
                rows = [
                    line
                    for line in read(name).decode().splitlines()
                    if line.strip() and int(line.split()[0]) in keep
                ]
                _add(dst, f"{TOP}/{name}", ("\n".join(rows) + "\n").encode())
            for name in ("classes.txt", "README"):
                if f"{TOP}/{name}" in members:
                    _add(dst, f"{TOP}/{name}", read(name))
            for i in tqdm(sorted(keep), desc="resize", unit="img"):
                rel = images[i].strip()
                member = members.get(f"{TOP}/images/{rel}")
                if member is None:
                    raise DatasetError(f"{source}: {TOP}/images/{rel} (images.txt) is missing")
                data = src.extractfile(member).read()
                _add(dst, f"{TOP}/images/{rel}", _resized_jpeg(data, shorter_side, quality))
    os.chmod(out, 0o644)
    return {"images": len(keep), "classes": len({labels[i] for i in keep})}
