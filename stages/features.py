"""Stage features@<dataset>: pooled features of the frozen pretrained backbone.

Writes ``train.npy`` (original view), ``train_mirrored.npy`` (horizontally mirrored),
``test.npy``, and the labels ``train_labels.npy`` / ``test_labels.npy``, all float32 or
int64 arrays in the same order as the prepared CSV tables.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dscl.atomic import atomic_dir, write_text
from dscl.backbones import build_backbone, get_backbone
from dscl.datasets import get_dataset, read_split
from dscl.device import resolve_device
from dscl.images import ImageDataset, ImageTransform, embed_dataset
from stages.cli import run
from stages.params import build, entry, load_params, section


@dataclass(frozen=True)
class ImageParams:
    batch_size: int = 128
    num_workers: int = 4
    amp: bool = False  # bfloat16 autocast on CUDA (false: float32, the default)
    device: str = "auto"


@dataclass(frozen=True)
class DatasetFeatureParams:
    backbone: str
    weights: str  # imagenet | none | path to a weights file
    resize: int = 256  # images resized to resize x resize ...
    crop: int = 227  # ... then cropped (centre crop for features and test)

    def __post_init__(self):
        spec = get_backbone(self.backbone)  # an unknown name fails here, before any work
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop must be in [1, resize={self.resize}], got {self.crop}")
        spec.check_crop(self.crop)  # e.g. BN-Inception takes 227, not 299


def image_transform(ds: DatasetFeatureParams, crop_mode: str = "center") -> ImageTransform:
    """The decoding of Section 4.1 of the paper; the ``pixels`` backbone keeps the
    images at their own size."""
    spec = get_backbone(ds.backbone)
    if not spec.has_parameters:
        return ImageTransform(mode=spec.image_mode, resize=None, crop=None)
    return ImageTransform(mode=spec.image_mode, resize=ds.resize, crop=ds.crop, crop_mode=crop_mode)


def read_feature_params(params: dict, dataset: str) -> tuple[ImageParams, DatasetFeatureParams]:
    image = section(params, "features.image", ImageParams)
    ds = build(DatasetFeatureParams, entry(params, "features.datasets", dataset, "dataset"),
               f"features.datasets.{dataset}")
    return image, ds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    params = load_params()
    image, ds = read_feature_params(params, args.dataset)
    get_dataset(args.dataset)
    device = resolve_device(image.device)
    model = build_backbone(ds.backbone, ds.weights).to(device)
    transform = image_transform(ds)
    train, test = read_split(args.prepared, "train"), read_split(args.prepared, "test")
    with atomic_dir(args.out) as tmp:
        views = {
            "train": ImageDataset(train, transform),
            "train_mirrored": ImageDataset(train, transform, flips=np.ones(len(train), bool)),
            "test": ImageDataset(test, transform),
        }
        for name, dataset in views.items():
            feats = embed_dataset(model, dataset, image.batch_size, image.num_workers, device,
                                  image.amp, f"features {args.dataset}/{name}")
            np.save(tmp / f"{name}.npy", feats.astype(np.float32))
        np.save(tmp / "train_labels.npy", train.labels)
        np.save(tmp / "test_labels.npy", test.labels)
        write_text(tmp / "info.json", json.dumps(
            {"backbone": ds.backbone, "weights": ds.weights, "feature_dim": int(feats.shape[1]),
             "train": len(train), "test": len(test)}, indent=2) + "\n")
    print(f"features@{args.dataset}: {len(train)} train / {len(test)} test images -> {args.out}")


if __name__ == "__main__":
    run(main)
