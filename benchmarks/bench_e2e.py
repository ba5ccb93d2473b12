"""One end-to-end DSCL iteration (the chunked update of Section 4.1) against chunk_size.

Times ``chunked_step`` (DSCL) on a batch of n random 227 x 227 images (decoding excluded)
for each chunk size, and the peak GPU memory (on CUDA). The paper reports about 50 s per
iteration at n = 1260 on a P100. Run on a GPU:
``python benchmarks/bench_e2e.py --n 1260 --chunk-sizes 70 140 315 630``;
on a CPU a smaller n gives the per-image cost.

``--decode`` times whole iterations of the train stage's loop instead (``train_on_images``
fed by the decoder of ``features.image.decode``): n JPEGs of CUB-like sizes (synthetic, or
real photographs with ``--photos FOLDER``) decoded, resized
and randomly cropped every iteration, side by side for each decoder of ``--decoders``
(``cpu``: Pillow in ``--workers`` threads; ``gpu``: nvJPEG and the resize on the device;
``tensor-cpu``: the GPU path's code on the CPU, a dry run) and with and without
prefetching (the next batch decoded while this one is learned), at the first chunk size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_features import image_split  # benchmarks/ is the script's folder
from torch import nn

from dscl.backbones import build_backbone
from dscl.datasets.prepared import Split
from dscl.device import resolve_device
from dscl.images import BatchDecoder, ImageTransform, TensorDecoder
from dscl.objectives import make_objective
from dscl.training import EmbeddingNet, LoopOptions, OptimizerConfig, chunked_step, train_on_images

DSCL = make_objective("dscl")


def time_training_loop(args, device: torch.device) -> None:
    """Seconds per iteration of ``train_on_images``, decoding included, with and without prefetch."""
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = image_split(args.photos, args.n, Path(tmp))
        args.n = len(jpegs.paths)
        split = Split(jpegs.paths, np.arange(args.n) % args.classes, jpegs.image_root)
        transform = ImageTransform(resize=256, crop=args.size, crop_mode="random")
        print(
            f"device={device} backbone={args.backbone} n={args.n} JPEGs of about 450 x 350 -> "
            f"{args.size}px crops, chunk={args.chunk_sizes[0]} amp={args.amp} "
            f"decoding threads={args.workers}"
        )
        print(f"{'decoder':>10} {'prefetch':>9} {'s / iteration':>14} {'images / s':>11}")
        runs = [(d, p) for d in args.decoders for p in (False, True)]
        for name, prefetch in runs:
            backbone = build_backbone(args.backbone, "none")
            model = EmbeddingNet(backbone, nn.Linear(backbone.feature_dim, args.classes))
            stamps = []
            if name == "cpu":
                decoder = BatchDecoder(split, transform, args.workers, pin_memory=device.type == "cuda")
            else:
                decoder = TensorDecoder(
                    split, transform, args.workers, device if name == "gpu" else torch.device("cpu")
                )
            try:
                options = LoopOptions(
                    iterations=args.repeats + 1,
                    batch_size=args.n,
                    optim=OptimizerConfig("sgd", lr=1e-6),
                    seed=0,
                    device=device,
                    log=lambda step, values, stamps=stamps: stamps.append(time.perf_counter()),
                    chunk_size=args.chunk_sizes[0],
                    amp=args.amp,
                    prefetch=prefetch,
                )
                train_on_images(model, decoder, np.arange(args.n), DSCL, options)
            finally:
                decoder.close()
            t = float(np.median(np.diff(stamps)))  # the first iteration (warm-up) excluded
            print(f"{name:>10} {prefetch!s:>9} {t:>14.2f} {args.n / t:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1260)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[70, 140, 315])
    parser.add_argument("--backbone", default="googlenet")
    parser.add_argument("--size", type=int, default=227)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--decode",
        action="store_true",
        help="time the training loop on JPEGs, decoding included (with and without prefetch)",
    )
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (with --decode)")
    parser.add_argument(
        "--photos", type=Path, help="with --decode: a folder of real JPEGs (default: synthetic)"
    )
    parser.add_argument(
        "--decoders",
        nargs="+",
        choices=["cpu", "gpu", "tensor-cpu"],
        help="with --decode (default: cpu, and gpu on CUDA)",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.decoders is None:
        args.decoders = ["cpu", "gpu"] if device.type == "cuda" else ["cpu"]
    if args.decode:
        time_training_loop(args, device)
        return
    backbone = build_backbone(args.backbone, "none")
    model = EmbeddingNet(backbone, nn.Linear(backbone.feature_dim, args.classes)).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, 3, args.size, args.size), dtype=torch.uint8, generator=gen)
    if device.type == "cuda":
        images = images.pin_memory()
    labels = torch.randint(0, args.classes, (args.n,), generator=gen)
    print(
        f"device={device} backbone={args.backbone} n={args.n} image={args.size}px amp={args.amp} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"{'chunk':>6} {'s / iteration':>14} {'images / s':>11} {'peak GPU GiB':>13}")
    best = None
    for chunk in args.chunk_sizes:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        chunked_step(
            model, images, labels, optimizer, objective=DSCL, chunk_size=chunk, device=device, amp=args.amp
        )  # warm-up
        times = []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            chunked_step(
                model,
                images,
                labels,
                optimizer,
                objective=DSCL,
                chunk_size=chunk,
                device=device,
                amp=args.amp,
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        t = sorted(times)[len(times) // 2]
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        print(f"{chunk:>6} {t:>14.2f} {args.n / t:>11.1f} {peak:>13.2f}")
        best = t if best is None else min(best, t)
    per_image = best / args.n
    print(
        f"fastest: {per_image * 1e3:.2f} ms per image and iteration; at n = 1260: "
        f"{per_image * 1260:.1f} s per iteration; CUB-200-2011 end-to-end (100 iterations): "
        f"{per_image * 1260 * 100 / 60:.1f} min of training"
    )


if __name__ == "__main__":
    main()
