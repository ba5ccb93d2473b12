"""Decoding images into uint8 tensors: resize, crop and mirror, as in Section 4.1 of [1].

The images are resized to a square (``resize`` x ``resize``), then cropped to
``crop`` x ``crop`` (the centre crop at test time; the centre or a random crop for
training), and optionally mirrored. Normalisation is the backbone's business
(:class:`dscl.backbones.network.Backbone`), so tensors stay uint8 until they reach the device.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dscl.datasets.prepared import Split

__all__ = [
    "CROP_MODES",
    "BatchDecoder",
    "ImageDataset",
    "ImageTransform",
    "embed_dataset",
    "make_loader",
    "transform_for",
]

CROP_MODES = ("center", "random")


@dataclass(frozen=True)
class ImageTransform:
    """``resize``/``crop`` None keep the image at its own size (the ``pixels`` backbone)."""

    mode: str = "RGB"
    resize: int | None = 256
    crop: int | None = 227
    crop_mode: str = "center"

    def __post_init__(self):
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {CROP_MODES}, got {self.crop_mode!r}")
        if self.resize is not None and self.crop is not None and self.crop > self.resize:
            raise ValueError(f"crop ({self.crop}) must not exceed resize ({self.resize})")

    def __call__(self, img: Image.Image, flip: bool, rng: np.random.Generator | None) -> torch.Tensor:
        img = img.convert(self.mode)
        if self.resize is not None:
            img = img.resize((self.resize, self.resize), Image.BILINEAR)
        if self.crop is not None:
            w, h = img.size
            if self.crop_mode == "random" and rng is not None:
                left = int(rng.integers(0, w - self.crop + 1))
                top = int(rng.integers(0, h - self.crop + 1))
            else:
                left, top = (w - self.crop) // 2, (h - self.crop) // 2
            img = img.crop((left, top, left + self.crop, top + self.crop))
        arr = np.array(img, dtype=np.uint8)  # a writable copy
        if arr.ndim == 2:
            arr = arr[:, :, None]  # (h, w, 1)
        if flip:
            arr = arr[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))  # (c, h, w)


def transform_for(backbone: str, resize: int, crop: int, crop_mode: str = "center") -> ImageTransform:
    """The decoding of Section 4.1 of [1] for ``backbone``; the ``pixels`` backbone keeps
    the images at their own size."""
    from dscl.backbones import get_backbone

    spec = get_backbone(backbone)
    if not spec.has_parameters:
        return ImageTransform(mode=spec.image_mode, resize=None, crop=None)
    return ImageTransform(mode=spec.image_mode, resize=resize, crop=crop, crop_mode=crop_mode)


class ImageDataset(Dataset):
    """Items ``(uint8 image (c, h, w), label)`` of ``split`` at ``indices``.

    ``flips`` (bool per item) mirrors images; ``seed`` seeds random crops per item, so
    that the same item decodes to the same tensor every time it is read (the two
    passes of the chunked end-to-end update see identical inputs).
    """

    def __init__(self, split: Split, transform: ImageTransform, indices=None, flips=None, seed=0):
        self.split = split
        self.transform = transform
        self.indices = np.arange(len(split)) if indices is None else np.asarray(indices)
        self.flips = np.zeros(len(self.indices), bool) if flips is None else np.asarray(flips)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        idx = int(self.indices[i])
        path = self.split.image_path(idx)
        try:
            with Image.open(path) as img:
                img.load()
                rng = np.random.default_rng([self.seed, idx])
                x = self.transform(img, bool(self.flips[i]), rng)
        except FileNotFoundError:
            raise FileNotFoundError(f"image {path} is missing: re-run the prepare stage") from None
        except (OSError, SyntaxError) as exc:  # Pillow's errors for a damaged file
            raise ValueError(
                f"image {path} does not decode ({exc}): the dataset is damaged, prepare it again"
            ) from None
        return x, int(self.split.labels[idx])


def make_loader(dataset: ImageDataset, batch_size: int, num_workers: int, pin_memory: bool):
    """An ordered loader (no shuffling: order is decided by the caller's indices)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


@torch.no_grad()
def embed_dataset(
    model: torch.nn.Module,
    dataset: ImageDataset,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    amp: bool,
    desc: str,
) -> np.ndarray:
    """``model`` applied to every item of ``dataset`` in order: float32 (n, d).

    Batched, with ``num_workers`` decoding processes; on CUDA, pinned memory and (with
    ``amp``) bfloat16 autocast.
    """
    model.eval()
    cuda = device.type == "cuda"
    loader = make_loader(dataset, batch_size, num_workers, pin_memory=cuda)
    out = []
    for x, _ in tqdm(loader, desc=desc, unit="batch"):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and cuda):
            out.append(model(x.to(device, non_blocking=True)).float().cpu())
    return torch.cat(out).numpy()


class BatchDecoder:
    """Decodes whole training batches with a pool of threads created once.

    A training iteration needs one batch (n = 1260 images) at a time; a DataLoader
    would start its worker processes again for every batch. Pillow releases the GIL
    while it decodes and resizes, so threads decode in parallel.
    """

    def __init__(self, split: Split, transform: ImageTransform, num_workers: int, pin_memory: bool):
        self.split = split
        self.transform = transform
        self.pin_memory = pin_memory
        self.pool = ThreadPoolExecutor(num_workers) if num_workers > 0 else None

    def __call__(self, indices: np.ndarray, flips: np.ndarray, seed: int):
        """uint8 images (m, c, h, w) and labels (m,) of ``indices``, in order."""
        dataset = ImageDataset(self.split, self.transform, indices, flips, seed=seed)
        items = (
            self.pool.map(dataset.__getitem__, range(len(dataset)))
            if self.pool
            else map(dataset.__getitem__, range(len(dataset)))
        )
        images, labels = zip(*items)
        images = torch.stack(images)
        if self.pin_memory:
            images = images.pin_memory()
        return images, torch.tensor(labels)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
