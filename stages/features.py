"""Stage features@<dataset>: pooled features of the frozen pretrained backbone.

Writes ``train.npy`` (original view), ``train_mirrored.npy`` (horizontally mirrored),
``test.npy``, and the labels ``train_labels.npy`` / ``test_labels.npy``, all float32 or
int64 arrays in the same order as the prepared CSV tables, and ``info.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dscl import config, layout
from dscl.atomic import atomic_dir, write_text
from dscl.backbones import build_backbone
from dscl.datasets import read_split
from dscl.device import resolve_device
from dscl.images import ImageDataset, embed_dataset, transform_for
from dscl.numerics import configure
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    cfg = config.load()
    configure(cfg.numerics.threads, deterministic=cfg.numerics.deterministic)
    image, feat = cfg.image, cfg.features(args.dataset)
    device = resolve_device(image.device)
    model = build_backbone(feat.backbone, feat.weights).to(device)
    transform = transform_for(feat.backbone, feat.resize, feat.crop)
    train, test = read_split(args.prepared, "train"), read_split(args.prepared, "test")
    views = {
        "train": ImageDataset(train, transform),
        "train_mirrored": ImageDataset(train, transform, flips=np.ones(len(train), bool)),
        "test": ImageDataset(test, transform),
    }
    with atomic_dir(args.out) as tmp:
        for name, dataset in views.items():
            feats = embed_dataset(
                model,
                dataset,
                image.batch_size,
                image.num_workers,
                device,
                image.amp,
                f"features {args.dataset}/{name}",
                decode=image.decode,
            )
            np.save(layout.feature_file(tmp, name), feats.astype(np.float32))
        np.save(layout.labels_file(tmp, "train"), train.labels)
        np.save(layout.labels_file(tmp, "test"), test.labels)
        write_text(
            layout.info_file(tmp),
            json.dumps(
                {
                    "backbone": feat.backbone,
                    "weights": feat.weights,
                    "feature_dim": int(feats.shape[1]),
                    "train": len(train),
                    "test": len(test),
                },
                indent=2,
            )
            + "\n",
        )
    print(f"features@{args.dataset}: {len(train)} train / {len(test)} test images -> {args.out}")


if __name__ == "__main__":
    run(main)
