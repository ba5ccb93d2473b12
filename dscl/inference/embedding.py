"""Reading a model saved by the train stage, and embedding a dataset's test images with it.

A model file is ``{"record": {...}, "state_dict": {...}}``: plain values and tensors only,
read with ``torch.load(..., weights_only=True)``, so a file from elsewhere runs no code.
The record is checked field by field (:class:`~dscl.training.record.ModelRecord`); the
network is built from it as what it learns says (:mod:`dscl.training.kinds`).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from dscl.backbones.specs import FeatureConfig, ImageConfig
from dscl.linalg import l2_normalize
from dscl.training.kinds import TestData, kind_for
from dscl.training.record import ModelFileError, ModelRecord

__all__ = ["ModelFileError", "embed_test", "load_model"]


def load_model(path: Path) -> tuple[ModelRecord, dict | None]:
    """``(record, state_dict)`` of a saved model; ModelFileError, in one line naming the
    file and what was expected, for anything else: a file that is not PyTorch's (random
    bytes, a truncated copy), one that carries objects (never loaded: ``weights_only``),
    one of another layout, a record lacking a field or of another version."""
    path = Path(path)
    what = "is not a model file of this project"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read ({exc.strerror})") from None
    if head[:2] != b"PK":  # PyTorch's format is a zip archive (torch.save since 1.6)
        raise ModelFileError(f"{path} {what}: not a PyTorch file (a model.pt is a zip archive)")
    _check_archive(path, what)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise ModelFileError(f"{path} {what}: damaged ({str(exc).splitlines()[0]})") from None
        raise ModelFileError(
            f"{path} {what}: it carries objects other than tensors and plain values, which are never loaded"
        ) from None
    except Exception as exc:  # torch's many ways to meet a damaged archive
        raise ModelFileError(f"{path} {what}: damaged or truncated ({exc.__class__.__name__})") from None
    if not isinstance(saved, dict) or not {"record", "state_dict"} <= set(saved):
        raise ModelFileError(f"{path} {what} (it holds no record and state_dict)")
    record = ModelRecord.from_dict(saved["record"], str(path))
    state = saved["state_dict"]
    if not (state is None if record.learns == "nothing" else isinstance(state, dict)):
        raise ModelFileError(f"{path} {what}: its state_dict does not fit what it learns ({record.learns})")
    return record, state


# torch.save stores each member as it is (no compression): what a file declares it
# unpacks to is at most its own size, plus this much for the archive's own records
_ARCHIVE_SLACK = 1 << 20
MAX_MEMBERS = 100_000


def _check_archive(path: Path, what: str) -> None:
    """ModelFileError, before anything is unpacked, for an archive torch.save does not
    write: compressed members (a zip bomb), more declared bytes than the file holds,
    more members than a model has tensors."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelFileError(f"{path} {what}: damaged or truncated ({exc.__class__.__name__})") from None
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED]
    declared = sum(i.file_size for i in infos)
    if packed:
        raise ModelFileError(
            f"{path} {what}: it holds compressed members ({packed[0]!r}), which torch.save never writes"
        )
    if declared > size + _ARCHIVE_SLACK or len(infos) > MAX_MEMBERS:
        raise ModelFileError(
            f"{path} {what}: it declares {declared:,} bytes in {len(infos):,} members "
            f"in a file of {size:,} bytes"
        )


def embed_test(
    record: ModelRecord,
    state: dict | None,
    *,
    features: Path,
    prepared: Path,
    feat: FeatureConfig,
    image: ImageConfig,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """The test embedding (n, d) of one trained model: the cached feature itself
    (``learns`` nothing), the learned layer over the cached features (``last_layer``), or
    the test images through the network (``all_layers``); l2-normalised where the
    objective measured l2-normalised embeddings."""
    data = TestData(Path(features), Path(prepared), feat, image, batch_size, device)
    emb = kind_for(record.learns).embed_test(record, state, data)
    if record.normalized:  # the objective measured l2-normalised embeddings
        emb = l2_normalize(emb)
    return emb
