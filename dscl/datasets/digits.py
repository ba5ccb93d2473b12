"""scikit-learn's bundled handwritten digits: the offline, CPU-sized default dataset.

1,797 grey 8x8 images of the digits 0-9 (about 180 per class). As in the paper's
protocol the classes are split, not the images: digits 0-4 train, 5-9 test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dscl.atomic import atomic_dir
from dscl.datasets.prepared import write_prepared
from dscl.datasets.registry import DatasetSpec, register

TRAIN_CLASSES = (0, 1, 2, 3, 4)


def prepare_digits(out_dir: Path, root: Path, verify_checksum: bool) -> None:
    """Write the digits as 8x8 PNG files (grey levels 0-16 scaled to 0-255) and split
    them by class. ``root`` and ``verify_checksum`` are not used: the data ship with
    scikit-learn."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    tables: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    with atomic_dir(out_dir) as tmp:
        for i, (img, label) in enumerate(zip(pixels, digits.target)):
            rel = f"{label}/{i:04d}.png"
            (tmp / "images" / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(tmp / "images" / rel)
            split = "train" if label in TRAIN_CLASSES else "test"
            tables[split].append((rel, int(label)))
        write_prepared(tmp, tables, {"dataset": "digits", "image_root": "images"})


DIGITS = register(
    DatasetSpec(
        name="digits",
        description="scikit-learn digits, 8x8 grey, classes 0-4 train / 5-9 test",
        prepare=prepare_digits,
    )
)
