"""Decoding images into uint8 tensors: resize, crop and mirror, as in Section 4.1 of [1].

Images are resized to a square, cropped (centre at test time; centre or random for
training) and optionally mirrored; normalisation is the backbone's
(:class:`dscl.backbones.network.Backbone`). Two decoders give the same crops from the
same seeded generator: Pillow on the CPU (:class:`ImageTransform`) and nvJPEG on a GPU
(:class:`TensorDecoder`), which falls back to Pillow for a file it cannot decode. Their
pixels differ by the resize's rounding (the docs' GPU page).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dscl.choices import CROP_MODES, DECODERS
from dscl.datasets.prepared import Split

__all__ = [
    "CROP_MODES",
    "DECODERS",
    "BatchDecoder",
    "ImageDataset",
    "ImageTransform",
    "TensorDecoder",
    "embed_dataset",
    "gpu_decoding",
    "make_decoder",
    "make_loader",
    "to_8bit",
    "transform_for",
]


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit grey image scaled to 8 bits: Pillow's ``convert`` clips it
    instead (a 16-bit photograph turns white). Other modes (CMYK, RGBA, palette, 1-bit)
    are left to ``convert``."""
    if img.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return img
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.min() >= 0 and arr.max() <= 65535):
        arr = arr / 257.0  # 0-65535 -> 0-255
    elif img.mode == "F" and arr.min() >= 0 and arr.max() <= 1:
        arr = arr * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


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

    def offsets(self, w: int, h: int, rng: np.random.Generator | None) -> tuple[int, int]:
        """``(left, top)`` of the crop in a ``w`` x ``h`` image: random (drawn from
        ``rng``) or centred. Both decoders take their crops from here."""
        if self.crop_mode == "random" and rng is not None:
            left = int(rng.integers(0, w - self.crop + 1))
            top = int(rng.integers(0, h - self.crop + 1))
            return left, top
        return (w - self.crop) // 2, (h - self.crop) // 2

    def __call__(self, img: Image.Image, flip: bool, rng: np.random.Generator | None) -> torch.Tensor:
        img = to_8bit(img).convert(self.mode)
        if self.resize is not None:
            img = img.resize((self.resize, self.resize), Image.BILINEAR)
        if self.crop is not None:
            left, top = self.offsets(*img.size, rng)
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
    decode: str = "cpu",
) -> np.ndarray:
    """``model`` applied to every item of ``dataset`` in order: float32 (n, d).

    Batched, with ``num_workers`` decoding processes (CPU decoding) or threads reading
    the files (GPU decoding, see :func:`gpu_decoding`); on CUDA, pinned memory and (with
    ``amp``) bfloat16 autocast.
    """
    model.eval()
    cuda = device.type == "cuda"
    out = []
    if gpu_decoding(decode, device, dataset.transform):
        decoder = TensorDecoder(dataset.split, dataset.transform, num_workers, device)
        try:
            for start in tqdm(range(0, len(dataset), batch_size), desc=desc, unit="batch"):
                stop = start + batch_size
                x, _ = decoder(dataset.indices[start:stop], dataset.flips[start:stop], dataset.seed)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and cuda):
                    out.append(model(x).float().cpu())
        finally:
            decoder.close()
        return torch.cat(out).numpy()
    loader = make_loader(dataset, batch_size, num_workers, pin_memory=cuda)
    for x, _ in tqdm(loader, desc=desc, unit="batch"):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and cuda):
            out.append(model(x.to(device, non_blocking=True)).float().cpu())
    return torch.cat(out).numpy()


def gpu_decoding(decode: str, device: torch.device, transform: ImageTransform) -> bool:
    """Whether images are decoded on the device: ``decode`` "gpu", or "auto" on CUDA;
    only for RGB images resized and cropped (the ``pixels`` backbone keeps Pillow)."""
    if decode not in DECODERS:
        raise ValueError(f"decode must be one of {list(DECODERS)}, got {decode!r}")
    if decode == "cpu":
        return False
    if decode == "gpu" and device.type != "cuda":
        raise ValueError(f"decode: gpu needs a CUDA device, got {device}: set decode to auto or cpu")
    return (
        device.type == "cuda" and transform.mode == "RGB" and None not in (transform.resize, transform.crop)
    )


def make_decoder(
    split: Split, transform: ImageTransform, num_workers: int, device: torch.device, decode: str
):
    """The training batches' decoder: :class:`TensorDecoder` on the device where
    :func:`gpu_decoding` says so, :class:`BatchDecoder` (Pillow threads) otherwise."""
    if gpu_decoding(decode, device, transform):
        return TensorDecoder(split, transform, num_workers, device)
    return BatchDecoder(split, transform, num_workers, pin_memory=device.type == "cuda")


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


JPEG_MAGIC = b"\xff\xd8"


class TensorDecoder:
    """Decodes whole batches with ``torchvision.io`` on ``device`` (nvJPEG on CUDA; the
    same code runs on the CPU, which the tests use), then resizes, crops and mirrors there.

    The files are read by ``num_workers`` threads; the crop offsets come from
    :meth:`ImageTransform.offsets` with the CPU path's generator (``[seed, index]``), so a
    batch has the same crops of the same images as with :class:`BatchDecoder`. A file
    nvJPEG does not decode falls back to Pillow (:class:`ImageTransform`), named once.
    Returns uint8 images on ``device``.
    """

    def __init__(self, split: Split, transform: ImageTransform, num_workers: int, device: torch.device):
        if transform.resize is None or transform.crop is None:
            raise ValueError("TensorDecoder resizes and crops: the transform must set resize and crop")
        self.split = split
        self.transform = transform
        self.device = torch.device(device)
        self.pool = ThreadPoolExecutor(max(1, num_workers))
        self.fallbacks: set[str] = set()

    def _read(self, idx: int) -> bytes:
        path = self.split.image_path(idx)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"image {path} is missing: re-run the prepare stage") from None

    def _pillow(self, idx: int, flip: bool, seed: int) -> torch.Tensor:
        path = str(self.split.image_path(idx))
        if path not in self.fallbacks:
            self.fallbacks.add(path)
            tqdm.write(f"decode: {path} is not decoded by nvJPEG; decoded by Pillow instead")
        item = ImageDataset(self.split, self.transform, [idx], [flip], seed=seed)[0][0]
        return item.to(self.device)

    def _finish(self, img: torch.Tensor, idx: int, flip: bool, seed: int) -> torch.Tensor:
        """Resize (bilinear, antialiased as Pillow's), crop and mirror one (3, h, w) image."""
        t = self.transform
        x = torch.nn.functional.interpolate(
            img[None].float(), size=(t.resize, t.resize), mode="bilinear", antialias=True, align_corners=False
        )[0]
        left, top = t.offsets(t.resize, t.resize, np.random.default_rng([seed, idx]))
        x = x[:, top : top + t.crop, left : left + t.crop].round().clamp(0, 255).to(torch.uint8)
        return x.flip(-1) if flip else x

    def __call__(self, indices: np.ndarray, flips: np.ndarray, seed: int):
        """uint8 images (m, 3, crop, crop) on the device and labels (m,), in order."""
        from torchvision.io import ImageReadMode, decode_jpeg

        ids = [int(i) for i in indices]
        raw = list(self.pool.map(self._read, ids))
        jpegs = [i for i, b in enumerate(raw) if b[:2] == JPEG_MAGIC]
        decoded: list[torch.Tensor | None] = [None] * len(ids)
        tensors = [torch.frombuffer(bytearray(raw[i]), dtype=torch.uint8) for i in jpegs]
        try:
            for i, img in zip(jpegs, decode_jpeg(tensors, mode=ImageReadMode.RGB, device=self.device)):
                decoded[i] = img
        except RuntimeError:  # one file failed the batch: decode one at a time
            for i, data in zip(jpegs, tensors):
                with contextlib.suppress(RuntimeError):
                    decoded[i] = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        images = [
            self._pillow(idx, bool(flip), seed) if img is None else self._finish(img, idx, bool(flip), seed)
            for idx, flip, img in zip(ids, flips, decoded)
        ]
        labels = torch.tensor([int(self.split.labels[i]) for i in ids])
        return torch.stack(images), labels

    def close(self) -> None:
        self.pool.shutdown()
