"""A trained model as a library object: embed photographs, search a gallery, cluster.

:class:`TrainedModel` loads a model file written by the train stage (``models/<dataset>-
<method>/model.pt``, or fetched with ``dvc artifacts get``) with everything needed to use
it on new images: the backbone (its pretrained weights where the model did not train
it), the learned layer, the decoding of the images (resize, centre crop) and the
l2-normalisation its objective measured. The file is data: it is read with
``torch.load(..., weights_only=True)``, so a crafted file runs no code.

Examples
--------
>>> model = TrainedModel.load("models/cub200_mini-dscl_e2e/model.pt")  # doctest: +SKIP
>>> gallery = model.embed(["birds/a.jpg", "birds/b.jpg", "birds/c.jpg"])  # (3, d)
>>> files = model.embed_files(["birds/"], skip_bad=True)  # .embeddings, .paths, .skipped
>>> distances, ids = search(gallery, model.embed(["query.jpg"]), k=2)  # (1, 2) each
>>> clusters = cluster(gallery, 2)  # Algorithm 2 of the paper, then k-means
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm import tqdm

from dscl.backbones import get_backbone
from dscl.device import resolve_device
from dscl.errors import DSCLError
from dscl.images import ImageTransform, transform_for
from dscl.inference.embedding import ModelFileError, load_model
from dscl.linalg import l2_normalize
from dscl.scoring.neighbors import search
from dscl.training.kinds import kind_for
from dscl.training.record import ModelRecord

__all__ = [
    "IMAGE_SUFFIXES",
    "EmbeddedFiles",
    "ImageError",
    "TrainedModel",
    "cluster",
    "describe",
    "image_paths",
    "input_shape",
    "search",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageError(DSCLError, ValueError):
    """A file that is not a readable image (or a folder with none)."""


def image_paths(sources: Iterable[str | Path]) -> list[Path]:
    """The image files named by ``sources``: files, folders (their image files, recursively,
    sorted) or CSV files of paths (the first column; a header ``path`` is skipped).

    A folder's linked folders are followed, each real folder once (a link back to a
    parent, a loop, adds nothing); only regular files are taken (a FIFO or a device
    named ``x.jpg`` is left out). Every name must be text a listing can hold: valid
    UTF-8 with no line break (ImageError otherwise, before anything is embedded)."""
    out: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = _walk_images(source)
            if not found:
                raise ImageError(f"{source} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        elif source.suffix.lower() == ".csv" and source.is_file():
            with open(source, newline="", encoding="utf-8", errors="surrogateescape") as fh:
                rows = [r[0] for r in csv.reader(fh) if r and r[0].strip()]
            rows = rows[1:] if rows and rows[0].strip().lower() == "path" else rows
            out += [Path(r) if Path(r).is_absolute() else source.parent / r for r in rows]
        elif source.is_file():
            out.append(source)
        elif source.exists():
            raise ImageError(f"{source} is not a regular file (a FIFO, a device or a socket)")
        else:
            raise ImageError(f"{source} does not exist")
    if not out:
        raise ImageError("no images given")
    for path in out:
        _check_name(path)
    return out


def _walk_images(top: Path) -> list[Path]:
    """The regular image files under ``top``, sorted; linked folders followed, each real
    folder once; hidden files and folders left out."""
    seen: set[tuple[int, int]] = set()
    found = []
    for folder, dirs, files in os.walk(top, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # reached again through a link: already listed
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            path = Path(folder) / f
            if not f.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.append(path)
    return sorted(found)


def _check_name(path: Path) -> None:
    """ImageError for a name a listing cannot hold: not UTF-8, or with a line break."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ImageError(
            f"{name.encode('utf-8', 'surrogateescape')!r}: the file name is not valid UTF-8; rename it"
        ) from None
    if "\n" in name or "\r" in name:
        raise ImageError(f"{name!r}: the file name holds a line break; rename it")


def input_shape(record: ModelRecord) -> tuple[int, int, int]:
    """The images a model takes, (channels, height, width): its backbone's channels at
    its crop; for the ``pixels`` backbone (digits), the images it was trained on, square
    and grey (8 x 8: its feature is their 64 pixels)."""
    spec = get_backbone(record.backbone)
    channels = len(spec.mean)
    if spec.has_parameters:
        return channels, record.crop, record.crop
    side = math.isqrt(record.feature_dim)
    return channels, side, side


@dataclass(frozen=True)
class EmbeddedFiles:
    """What :meth:`TrainedModel.embed_files` gives: the embeddings (n, d) of ``paths``,
    in that order, and the files left out as unreadable (``skip_bad``)."""

    embeddings: np.ndarray
    paths: list[Path]
    skipped: list[Path]


@dataclass
class TrainedModel:
    """A model of this project, ready to embed images.

    Attributes
    ----------
    record : ModelRecord
        What the train stage saved of it (dataset, method, step selected, ...).
    network : nn.Module
        uint8 images (m, c, h, w) -> embeddings (m, d).
    transform : ImageTransform
        Its decoding of a photograph (resize, centre crop).
    device : torch.device
    """

    record: ModelRecord
    network: nn.Module
    transform: ImageTransform
    device: torch.device

    @classmethod
    def load(
        cls, path: str | Path, device: str = "auto", backbone_weights: str | None = None
    ) -> TrainedModel:
        """Load a model file; ``backbone_weights`` overrides the record's (``imagenet``, a
        file) for the layers the model did not train. ModelFileError for a file that is not
        one of this project's, or was written by an incompatible version."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path} does not exist")
        record, state = load_model(path)
        dev = resolve_device(device)
        weights = backbone_weights or record.backbone_weights
        network = kind_for(record.learns).network(record, state, weights).to(dev).eval()
        transform = transform_for(record.backbone, record.resize, record.crop)
        return cls(record, network, transform, dev)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The images it takes, (channels, height, width) (:func:`input_shape`)."""
        return input_shape(self.record)

    @property
    def embedding_dim(self) -> int:
        return self.record.output_dim

    def _decode(self, path: Path) -> torch.Tensor:
        try:
            with Image.open(path) as img:
                self._check_size(path, img)
                img.load()
                return self.transform(img, False, None)
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{path} is too large to decode safely ({exc})") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{path} is not a readable image ({exc.__class__.__name__}: {exc})") from None

    def _takes(self) -> str:
        c, h, w = self.input_shape
        what = "grey" if c == 1 else "colour"
        if get_backbone(self.record.backbone).has_parameters:
            return f"{what} images of any size (resized to {self.record.resize}, centre crop {h})"
        return (
            f"{h} x {w} {what} images as it was trained on (its feature is their pixels: "
            f"scikit-learn's digits, data/prepared/digits/images)"
        )

    def _check_size(self, path: Path, img: Image.Image) -> None:
        """A model whose feature is the pixels takes images of its own size only."""
        _, h, w = self.input_shape
        if self.transform.resize is None and img.size != (w, h):
            raise ImageError(f"{path} is {img.size[0]} x {img.size[1]}; this model takes {self._takes()}")

    @torch.no_grad()
    def embed(
        self,
        images: Sequence[str | Path] | np.ndarray | torch.Tensor,
        batch_size: int = 32,
        progress: bool = False,
    ) -> np.ndarray:
        """Embeddings (n, d), float32, in the order of ``images``.

        Parameters
        ----------
        images : paths (files, folders, CSV files of paths; see :func:`image_paths`; a
            file that does not decode raises ImageError, :meth:`embed_files` can leave
            it out), or decoded images: a uint8 array (n, h, w, c) or tensor (n, c, h, w)
            of the model's :attr:`input_shape` (already resized and cropped as
            :attr:`transform` does).
        batch_size : int
        progress : bool
            A progress bar.
        """
        if not isinstance(images, np.ndarray | torch.Tensor):
            return self.embed_files(images, batch_size, progress=progress).embeddings
        x = torch.as_tensor(images)
        c, h, w = self.input_shape
        if x.ndim == 3 and c == 1:  # (n, h, w) grey
            x = x[:, None]
        if x.ndim == 4 and x.shape[-1] == c and x.shape[1] != c:
            x = x.permute(0, 3, 1, 2)
        if x.ndim != 4 or x.dtype != torch.uint8 or tuple(x.shape[1:]) != (c, h, w):
            raise ImageError(
                f"expected uint8 images (n, {h}, {w}, {c}) or (n, {c}, {h}, {w}) for this model, "
                f"got {tuple(images.shape)} {images.dtype}"
            )
        return self._run(torch.split(x.contiguous(), batch_size), progress, len(x))

    @torch.no_grad()
    def embed_files(
        self,
        sources: Sequence[str | Path],
        batch_size: int = 32,
        skip_bad: bool = False,
        progress: bool = False,
    ) -> EmbeddedFiles:
        """Embed the image files named by ``sources`` (files, folders, CSV files of paths:
        :func:`image_paths`). ``skip_bad``: leave out files that do not decode, or that
        this model cannot take, instead of raising ImageError; they are listed in the
        result's ``skipped``, the embedded ones in ``paths`` (the rows' order)."""
        paths = image_paths(sources)
        kept: list[Path] = []
        skipped: list[Path] = []

        def batches() -> Iterable[torch.Tensor]:
            """Decode and yield one batch at a time (the progress bar counts both)."""
            for start in range(0, len(paths), batch_size):
                tensors = []
                for p in paths[start : start + batch_size]:
                    try:
                        tensors.append(self._decode(p))
                        kept.append(p)
                    except ImageError:
                        if not skip_bad:
                            raise
                        skipped.append(p)
                if tensors:
                    yield torch.stack(tensors)

        embeddings = self._run(batches(), progress, len(paths))
        return EmbeddedFiles(embeddings, kept, skipped)

    def _run(self, batches: Iterable[torch.Tensor], progress: bool, n: int) -> np.ndarray:
        out = []
        bar = tqdm(total=n, desc="embed", unit="image", disable=not progress)
        try:
            for x in batches:
                out.append(self.network(x.to(self.device)).float().cpu())
                bar.update(len(x))
        except BaseException:
            bar.leave = False  # the bar's line is cleared: an error message stands alone
            raise
        finally:
            bar.close()
        if not out:
            raise ImageError("none of the images could be read")
        emb = torch.cat(out)
        if self.record.normalized:  # its objective measured l2-normalised embeddings
            emb = l2_normalize(emb)
        return emb.numpy().astype(np.float32)

    def describe(self) -> dict:
        """What ``dscl info`` prints (:func:`describe`)."""
        return describe(self.record)


def describe(record: ModelRecord) -> dict:
    """A model record in brief: dataset, method, step selected, sizes, backbone, input,
    the validation scores stored with it."""
    r = record
    spec = get_backbone(r.backbone)
    return {
        "dataset": r.dataset,
        "method": r.method,
        "learns": r.learns,
        "selected_step": r.selected_step,
        "iterations": r.iterations,
        "selected_on": r.selected_on,
        "embedding_dim": r.output_dim,
        "normalized": r.normalized,
        "backbone": r.backbone,
        "backbone_weights": r.backbone_weights,
        "input": (
            f"{spec.image_mode}, resized to {r.resize}, centre crop {r.crop}"
            if spec.has_parameters
            else "{}, {} x {} (the pixels are the feature)".format(spec.image_mode, *input_shape(r)[1:])
        ),
        "trained_classes": r.trained_classes,
        "validation_scores": r.selected_scores,
        "seed": r.seed or 0,
    }


def cluster(embeddings: np.ndarray, k: int, spectral: bool = True, seed: int = 0) -> np.ndarray:
    """Cluster ids (n,) of ``embeddings`` into ``k`` groups: Algorithm 2 of the paper
    (spectral: mean-centre, left singular vectors, l2-normalised rows) then k-means, or
    k-means on the l2-normalised embeddings (``spectral=False``), as the evaluation does."""
    from dscl.scoring.kmeans import kmeans
    from dscl.scoring.spectral import spectral_embedding

    x = np.asarray(embeddings, dtype=np.float32)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in [1, {len(x)}] (the number of images), got {k}")
    rep = spectral_embedding(x) if spectral else l2_normalize(x)
    return np.asarray(kmeans(rep, k, seed=seed), dtype=np.int64)
