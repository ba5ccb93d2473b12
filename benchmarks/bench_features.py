"""Feature-extraction throughput (images/s) on synthetic JPEGs of CUB-like sizes.

Writes random JPEGs (about 500 x 375, CUB-200-2011's typical size) to a temporary
folder, then times, side by side in one run: decoding alone (resize 256, crop 227, the
DataLoader with worker processes) and decoding + the frozen backbone (bfloat16 autocast
and pinned memory on CUDA). Run: ``python benchmarks/bench_features.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dscl.backbones import build_backbone
from dscl.datasets.prepared import Split
from dscl.device import resolve_device
from dscl.images import ImageDataset, ImageTransform, make_loader


def write_jpegs(folder: Path, count: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        w, h = int(rng.integers(400, 500)), int(rng.integers(300, 400))
        # smooth random images compress like photographs, unlike white noise
        small = rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        img.save(folder / f"{i:05d}.jpg", quality=90)
        paths.append(f"{i:05d}.jpg")
    return Split(paths=paths, labels=np.zeros(count, dtype=np.int64), image_root=folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--backbone", default="googlenet")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    transform = ImageTransform(resize=256, crop=227)
    with tempfile.TemporaryDirectory() as tmp:
        split = write_jpegs(Path(tmp), args.images)
        loader = make_loader(
            ImageDataset(split, transform), args.batch_size, args.workers, pin_memory=device.type == "cuda"
        )
        t0 = time.perf_counter()
        for _ in loader:
            pass
        decode = args.images / (time.perf_counter() - t0)
        model = build_backbone(args.backbone, "none").to(device).eval()
        amp = device.type == "cuda"
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(next(iter(loader))[0].to(device))  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for x, _ in loader:
                model(x.to(device, non_blocking=True))
            if device.type == "cuda":
                torch.cuda.synchronize()
        total = args.images / (time.perf_counter() - t0)
    print(
        f"device={device} threads={torch.get_num_threads()} workers={args.workers} "
        f"backbone={args.backbone} images={args.images} batch={args.batch_size}"
    )
    print(f"decode + resize + crop only : {decode:8.1f} images/s")
    print(f"decode + {args.backbone:<17}: {total:8.1f} images/s")
    cub = 2 * 5864 + 5924  # train (original and mirrored) + test
    print(f"features@cub200 ({cub:,} images) at this rate: {cub / total / 60:.1f} min")


if __name__ == "__main__":
    main()
