"""Reading a model saved by the train stage, and embedding a dataset's test images with it.

A model file is ``{"record": {...}, "state_dict": {...}}``: plain values and tensors only,
read with ``torch.load(..., weights_only=True)``, so a file from elsewhere runs no code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dscl import layout
from dscl.backbones import build_backbone
from dscl.config import FeatureConfig, ImageConfig
from dscl.datasets import read_split
from dscl.evaluation.metrics import l2_normalize
from dscl.images import ImageDataset, embed_dataset, transform_for
from dscl.training.model import MODEL_FORMAT, EmbeddingNet

__all__ = ["ModelFileError", "embed_test", "load_model", "trained_network"]


class ModelFileError(ValueError):
    """A file that is not a model of this project, or of an incompatible version."""


# what a model record must hold, and of which type (the train stage writes them all)
RECORD_FIELDS = {
    "backbone": str,
    "learns": str,
    "resize": int,
    "crop": int,
    "feature_dim": int,
    "embedding_dim": int,
}
LEARNS = ("nothing", "last_layer", "all_layers")


def load_model(path: Path) -> tuple[dict, dict | None]:
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
    record = saved["record"]
    if not isinstance(record, dict):
        raise ModelFileError(f"{path} {what}: its record is a {type(record).__name__}, not a mapping")
    found = record.get("format")
    if found != MODEL_FORMAT:
        raise ModelFileError(
            f"{path} was written by an incompatible version (model format {found}, "
            f"this version reads {MODEL_FORMAT}): re-run the train stage"
        )
    missing = [k for k in RECORD_FIELDS if k not in record]
    wrong = [k for k, t in RECORD_FIELDS.items() if k in record and type(record[k]) is not t]
    if missing or wrong:
        said = f"lacks {missing}" if missing else f"has {wrong} of the wrong type"
        raise ModelFileError(f"{path} {what}: its record {said}")
    if record["learns"] not in LEARNS:
        raise ModelFileError(f"{path} {what}: learns {record['learns']!r}, not one of {list(LEARNS)}")
    state = saved["state_dict"]
    if not (state is None if record["learns"] == "nothing" else isinstance(state, dict)):
        raise ModelFileError(
            f"{path} {what}: its state_dict does not fit what it learns ({record['learns']})"
        )
    return record, state


def trained_network(record: dict, state: dict) -> nn.Module:
    """The network of a model that trained all layers, images (m, c, h, w) -> embeddings:
    the :class:`~dscl.training.model.EmbeddingNet`, or its backbone alone for the softmax
    baseline's fine-tuned pooled feature (Section 4.2; ``embedding: pooled``)."""
    model = EmbeddingNet.build(
        build_backbone(record["backbone"], "none"),
        record["feature_dim"],
        record["embedding_dim"],
        class_ids=torch.empty_like(state["class_ids"]),
        classifier="classifier.weight" in state,
    )
    model.load_state_dict(state)
    return model.backbone if record.get("embedding") == "pooled" else model


def embed_test(
    record: dict,
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
    if record["learns"] == "nothing":  # vanilla: the pretrained feature itself
        emb = np.load(layout.feature_file(features, "test"))
    elif record["learns"] == "last_layer":  # the learned layer over the cached features
        head = nn.Linear(record["feature_dim"], record["embedding_dim"])
        head.load_state_dict(state)
        feats = torch.from_numpy(np.load(layout.feature_file(features, "test")))
        with torch.no_grad():
            emb = torch.cat([head(c) for c in torch.split(feats, batch_size)]).numpy()
    else:  # all layers were trained: run the test images through the network
        net = trained_network(record, state)
        split = read_split(prepared, "test")
        if not np.array_equal(split.labels, np.load(layout.labels_file(features))):
            raise RuntimeError("the prepared test table and the cached features disagree: re-run features")
        if feat.backbone != record["backbone"]:
            raise RuntimeError(
                f"the model was trained with backbone {record['backbone']!r}, the "
                f"configuration names {feat.backbone!r}: re-run train"
            )
        dataset = ImageDataset(split, transform_for(feat.backbone, feat.resize, feat.crop))
        emb = embed_dataset(
            net.to(device),
            dataset,
            batch_size,
            image.num_workers,
            device,
            image.amp,
            f"embed {record['dataset']}",
            decode=image.decode,
        )
    if record.get("normalized"):  # the objective measured l2-normalised embeddings
        emb = l2_normalize(emb)
    return emb
