"""Archives in the exact formats and at the sizes of the paper's three datasets, with
small generated images, to measure what every stage costs at their scale (docs,
"Benchmarks"). Their figures are costs, never results.

    python scripts/simulate_datasets.py cub200 --fraction 0.125 --root data/raw
    python scripts/simulate_datasets.py sop --root data/raw          # all 120,053 images

It writes what ``prepare@<dataset>`` reads from ``<root>/<dataset>/`` (run it with
``prepare.verify_checksum: false``: the bytes are not the published archive's):

* ``cub200``: ``CUB_200_2011.tgz``, 11,788 images in 200 classes (41 to 60 each), with
  ``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``,
  ``bounding_boxes.txt`` and ``classes.txt``;
* ``cars196``: the original ``car_ims.tgz`` and ``cars_annos.mat`` (a MATLAB struct
  array), 16,185 images in 196 classes (24 to 136 each);
* ``sop``: ``Stanford_Online_Products.zip``, 120,053 images in 22,634 classes of 2 to 12
  (59,551 train in 11,318 classes, 60,502 test in 11,316) in its 12 category folders,
  with ``Ebay_train.txt`` and ``Ebay_test.txt``.

``--fraction`` scales the number of classes and of images (1/8, 1/4, 1/2, 1), keeping
each dataset's class sizes, so that k (the test classes) grows with n as it does between
the datasets. An image is a class's pattern (a colour and a stripe of its own) shifted,
recoloured and noised per image, so that neighbours and clusters are neither trivial nor
random.
"""

from __future__ import annotations

import argparse
import io
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SOP_CATEGORIES = (
    "bicycle", "cabinet", "chair", "coffee_maker", "fan", "kettle",
    "lamp", "mug", "sofa", "stapler", "table", "toaster",
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """A dataset's published size: classes, images and the range of a class's images."""

    classes: int
    images: int
    low: int
    high: int


SHAPES = {
    "cub200": Shape(classes=200, images=11_788, low=41, high=60),
    "cars196": Shape(classes=196, images=16_185, low=24, high=136),
    "sop": Shape(classes=22_634, images=120_053, low=2, high=12),
}
# SOP's split is its own lists, each scaled alone: Ebay_train.txt and Ebay_test.txt
SOP_SPLIT = {"train": Shape(11_318, 59_551, 2, 12), "test": Shape(11_316, 60_502, 2, 12)}


def class_sizes(classes: int, images: int, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """``classes`` sizes in [low, high] that add up to ``images`` exactly (seeded)."""
    if not classes * low <= images <= classes * high:
        raise ValueError(f"{images} images cannot be {classes} classes of {low} to {high}")
    sizes = np.full(classes, images // classes)
    sizes[: images - sizes.sum()] += 1
    for _ in range(4 * classes):  # move images between random classes, within the range
        a, b = rng.integers(0, classes, 2)
        step = int(rng.integers(1, max(2, (high - low) // 2)))
        if sizes[a] + step <= high and sizes[b] - step >= low:
            sizes[a] += step
            sizes[b] -= step
    return sizes


def scaled(shape: Shape, fraction: float) -> tuple[int, int]:
    """(classes, images) of a dataset at ``fraction`` of its size."""
    if not 0 < fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
    return max(2, round(shape.classes * fraction)), max(4, round(shape.images * fraction))


def simulated_size(dataset: str, fraction: float) -> tuple[int, int]:
    """(classes, images) that :func:`simulate` writes for ``dataset`` at ``fraction``."""
    if dataset == "sop":
        parts = [scaled(part, fraction) for part in SOP_SPLIT.values()]
        return sum(c for c, _ in parts), sum(n for _, n in parts)
    return scaled(SHAPES[dataset], fraction)


class Painter:
    """The generated images: each class a pattern, each image a variation of it."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        yy, xx = np.mgrid[0:size, 0:size] / size
        self.grid = (yy, xx)

    def jpeg(self, label: int, index: int) -> bytes:
        own = np.random.default_rng([self.seed, label])
        colour = own.uniform(40, 215, 3)
        angle, freq = own.uniform(0, np.pi), own.uniform(2, 9)
        rng = np.random.default_rng([self.seed, label, index])
        yy, xx = self.grid
        shift = rng.uniform(0, 1)
        stripes = np.sin(2 * np.pi * (freq * (np.cos(angle) * xx + np.sin(angle) * yy) + shift))
        tint = colour + rng.normal(0, 25, 3)
        img = tint[None, None, :] * (0.75 + 0.25 * stripes[..., None]) + rng.normal(0, 30, (*yy.shape, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=75)
        return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # the same archive for the same arguments
    tf.addfile(info, io.BytesIO(data))


def _ids(total: int, keep: int) -> np.ndarray:
    """``keep`` official class ids spread over 1..total (both halves of a class-id split)."""
    return np.unique(np.linspace(1, total, keep).round().astype(int))


def write_cub(folder: Path, fraction: float, painter: Painter, rng: np.random.Generator) -> int:
    shape = SHAPES["cub200"]
    classes, images = scaled(shape, fraction)
    ids = _ids(shape.classes, classes)
    sizes = class_sizes(len(ids), images, shape.low, shape.high, rng)
    lists: dict[str, list[str]] = {n: [] for n in ("images", "image_class_labels", "train_test_split")}
    lists["bounding_boxes"] = []
    with tarfile.open(folder / "CUB_200_2011.tgz", "w:gz", compresslevel=1) as tf:
        i = 0
        for c, count in zip(ids, sizes, strict=True):
            for j in range(count):
                i += 1
                rel = f"{c:03d}.Sim_Bird_{c}/Sim_Bird_{c}_{j:04d}.jpg"
                _add(tf, f"CUB_200_2011/images/{rel}", painter.jpeg(int(c), j))
                lists["images"].append(f"{i} {rel}")
                lists["image_class_labels"].append(f"{i} {c}")
                lists["train_test_split"].append(f"{i} {j % 2}")
                lists["bounding_boxes"].append(f"{i} 0.0 0.0 {painter.size}.0 {painter.size}.0")
        for name, rows in lists.items():
            _add(tf, f"CUB_200_2011/{name}.txt", ("\n".join(rows) + "\n").encode())
        names = "".join(f"{c} {c:03d}.Sim_Bird_{c}\n" for c in range(1, shape.classes + 1))
        _add(tf, "CUB_200_2011/classes.txt", names.encode())
    return i


def write_cars(folder: Path, fraction: float, painter: Painter, rng: np.random.Generator) -> int:
    from scipy.io import savemat

    shape = SHAPES["cars196"]
    classes, images = scaled(shape, fraction)
    ids = _ids(shape.classes, classes)
    sizes = class_sizes(len(ids), images, shape.low, shape.high, rng)
    fields = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")
    ann = np.zeros((1, int(sizes.sum())), dtype=[(f, object) for f in fields])
    with tarfile.open(folder / "car_ims.tgz", "w:gz", compresslevel=1) as tf:
        i = 0
        for c, count in zip(ids, sizes, strict=True):
            for j in range(count):
                name = f"car_ims/{i + 1:06d}.jpg"
                _add(tf, name, painter.jpeg(int(c), j))
                ann[0, i] = (name, 1, 1, painter.size, painter.size, int(c), j % 2)
                i += 1
    names = np.array([f"Sim Car {c}" for c in range(1, shape.classes + 1)], dtype=object)
    savemat(folder / "cars_annos.mat", {"annotations": ann, "class_names": names})
    return i


def _sop_classes(fraction: float, rng: np.random.Generator) -> Iterator[tuple[str, int, int]]:
    """(split, class id, its images) of every simulated SOP class."""
    first = 1
    for split, part in SOP_SPLIT.items():
        classes, images = scaled(part, fraction)
        for k, size in enumerate(class_sizes(classes, images, part.low, part.high, rng)):
            yield split, first + k, int(size)
        first += classes


def write_sop(folder: Path, fraction: float, painter: Painter, rng: np.random.Generator) -> int:
    lists = {
        "train": ["image_id class_id super_class_id path"],
        "test": ["image_id class_id super_class_id path"],
    }
    image_id = 0
    with zipfile.ZipFile(folder / "Stanford_Online_Products.zip", "w", zipfile.ZIP_STORED) as zf:
        for split, c, size in _sop_classes(fraction, rng):
            category = c % len(SOP_CATEGORIES)
            for j in range(size):
                image_id += 1
                rel = f"{SOP_CATEGORIES[category]}_final/{c:06d}_{j}.JPG"
                info = zipfile.ZipInfo(f"Stanford_Online_Products/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
                zf.writestr(info, painter.jpeg(c, j))
                lists[split].append(f"{image_id} {c} {category + 1} {rel}")
        for split, rows in lists.items():
            info = zipfile.ZipInfo(
                f"Stanford_Online_Products/Ebay_{split}.txt", date_time=(1980, 1, 1, 0, 0, 0)
            )
            zf.writestr(info, "\n".join(rows) + "\n")
    return image_id


WRITERS = {"cub200": write_cub, "cars196": write_cars, "sop": write_sop}


def simulate(dataset: str, root: Path, fraction: float = 1.0, size: int = 64, seed: int = 0) -> int:
    """Write ``dataset``'s simulated archive(s) into ``root/<dataset>/``; the number of images."""
    if dataset not in WRITERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(WRITERS)}")
    if size < 8:
        raise ValueError(f"--size must be at least 8 pixels, got {size}")
    simulated_size(dataset, fraction)  # a fraction out of range is refused before anything is written
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return WRITERS[dataset](folder, fraction, Painter(size, seed), rng)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(WRITERS))
    parser.add_argument("--root", type=Path, default=Path("data/raw"), help="prepare.root (default data/raw)")
    parser.add_argument("--fraction", type=float, default=1.0, help="of the dataset's size (default 1)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        n = simulate(args.dataset, args.root, args.fraction, args.size, args.seed)
    except ValueError as err:
        parser.error(str(err))
    print(f"{args.dataset}: {n} images -> {args.root / args.dataset} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
