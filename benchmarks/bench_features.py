"""Feature-extraction throughput (images/s) on JPEGs of CUB-like sizes.

Writes random JPEGs (about 500 x 375, CUB-200-2011's typical size) to a temporary
folder, or reads real photographs (``--photos FOLDER``: its JPEGs, in any sub-folder,
e.g. the testbed's extracted CUB photographs), then times, side by side in one run, for
each decoder of ``--decoders``: decoding alone (resize 256, crop 227) and decoding + the
frozen backbone (bfloat16 autocast and pinned memory on CUDA), as the features stage runs it
(:func:`dscl.images.embed_dataset`). ``cpu``: Pillow in a DataLoader's worker processes;
``gpu``: nvJPEG, resize and crop on the device; ``tensor-cpu``: the GPU path's code on the
CPU (a dry run). Each decoder decodes one batch before it is timed (nvJPEG's start-up is
not a rate). Run: ``python benchmarks/bench_features.py``.
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
from dscl.images import ImageDataset, ImageTransform, TensorDecoder, embed_dataset, make_loader


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


def photographs(folder: Path, count: int) -> Split:
    """The first ``count`` JPEGs under ``folder`` (sorted paths, any sub-folder)."""
    found = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not found:
        raise SystemExit(f"error: no JPEG under {folder}")
    found = found[:count]
    paths = [str(p.relative_to(folder)) for p in found]
    return Split(paths=paths, labels=np.zeros(len(paths), dtype=np.int64), image_root=Path(folder))


def image_split(photos: Path | None, count: int, tmp: Path) -> Split:
    """Real photographs from ``photos``, or ``count`` synthetic JPEGs written to ``tmp``."""
    return photographs(photos, count) if photos is not None else write_jpegs(tmp, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--photos", type=Path, help="a folder of real JPEGs (default: synthetic ones)")
    parser.add_argument("--backbone", default="googlenet")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--decoders", nargs="+", choices=["cpu", "gpu", "tensor-cpu"], help="default: cpu, and gpu on CUDA"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    decoders = args.decoders or (["cpu", "gpu"] if device.type == "cuda" else ["cpu"])
    transform = ImageTransform(resize=256, crop=227)
    print(
        f"device={device} threads={torch.get_num_threads()} workers={args.workers} "
        f"backbone={args.backbone} images={args.images} batch={args.batch_size}"
    )
    print(f"{'decoder':>10} {'decode only':>14} {'decode + ' + args.backbone:>22}   (images/s)")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        split = image_split(args.photos, args.images, Path(tmp))
        args.images = len(split.paths)
        dataset = ImageDataset(split, transform)
        model = build_backbone(args.backbone, "none").to(device).eval()
        amp = device.type == "cuda"
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(dataset[0][0][None].to(device))  # warm-up, before any decoder is timed
        for name in decoders:
            on = device if name == "gpu" else torch.device("cpu")
            if name != "cpu":  # one batch first: the decoder's start-up is not part of its rate
                warm = TensorDecoder(split, transform, args.workers, on)
                idx = np.arange(min(args.batch_size, args.images))
                warm(idx, np.zeros(len(idx), bool), 0)
                warm.close()
            t0 = time.perf_counter()
            if name == "cpu":
                for _ in make_loader(dataset, args.batch_size, args.workers, pin_memory=amp):
                    pass
            else:
                decoder = TensorDecoder(split, transform, args.workers, on)
                for start in range(0, args.images, args.batch_size):
                    idx = np.arange(start, min(start + args.batch_size, args.images))
                    decoder(idx, np.zeros(len(idx), bool), 0)
                if on.type == "cuda":
                    torch.cuda.synchronize()
                decoder.close()
            decode = args.images / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            if name == "cpu":
                embed_dataset(model, dataset, args.batch_size, args.workers, device, amp, name, decode="cpu")
            else:  # what embed_dataset runs with decode "gpu", on the decoder's own device
                decoder = TensorDecoder(split, transform, args.workers, on)
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    for start in range(0, args.images, args.batch_size):
                        idx = np.arange(start, min(start + args.batch_size, args.images))
                        model(decoder(idx, np.zeros(len(idx), bool), 0)[0].to(device))
                decoder.close()
            if device.type == "cuda":
                torch.cuda.synchronize()
            total = args.images / (time.perf_counter() - t0)
            rates[name] = total
            print(f"{name:>10} {decode:>14.1f} {total:>22.1f}")
    total = max(rates.values())
    cub = 2 * 5864 + 5924  # train (original and mirrored) + test
    print(f"features@cub200 ({cub:,} images) at this rate: {cub / total / 60:.1f} min")


if __name__ == "__main__":
    main()
