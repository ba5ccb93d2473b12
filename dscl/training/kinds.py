"""How each kind of learning builds, saves, loads and embeds its network.

A method learns ``nothing`` (the pretrained feature is the embedding), the
``last_layer`` (a linear layer on the cached features) or ``all_layers`` (the network on
images). Each :class:`Kind` builds its network from a model record (:meth:`~Kind.build`:
the one builder, used by training, by the embed stage and by :mod:`dscl.inference`),
says what a model file saves of it (:meth:`~Kind.state`), loads it back
(:meth:`~Kind.network`) and embeds the test split (:meth:`~Kind.embed_test`). How each
trains is its strategy (:mod:`dscl.training.strategies`, the same classes with
``train``); this module imports no training code, so that the embed stage depends on
none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from dscl import layout
from dscl.backbones import build_backbone
from dscl.backbones.specs import FeatureConfig, ImageConfig
from dscl.datasets import read_split
from dscl.images import ImageDataset, embed_dataset, transform_for
from dscl.registry import Registry
from dscl.training.model import EmbeddingNet
from dscl.training.record import ModelFileError, ModelRecord

__all__ = [
    "KINDS",
    "AllLayersNetwork",
    "Kind",
    "LastLayerNetwork",
    "PretrainedFeature",
    "TestData",
    "kind_for",
]


@dataclass(frozen=True)
class TestData:
    """Where the embed stage finds the test split, and how it decodes and batches it."""

    features: Path
    prepared: Path
    feat: FeatureConfig
    image: ImageConfig
    batch_size: int
    device: torch.device


class Kind:
    """How one kind of learning builds, saves, loads and embeds its network."""

    learns: ClassVar[str]
    data_parallel: ClassVar[bool] = False  # whether it trains under torchrun's processes

    def build(self, record: ModelRecord, *, weights: str = "none", seed: int = 0) -> nn.Module | None:
        """The network of ``record``, its new layers initialised from ``seed`` and the
        pretrained ones from ``weights`` (None where nothing is learned)."""
        raise NotImplementedError

    def state(self, module: nn.Module | None) -> dict | None:
        """What the model file saves of the learned module (on the CPU)."""
        return None if module is None else {k: v.cpu() for k, v in module.state_dict().items()}

    def loaded(self, record: ModelRecord, state: dict | None) -> nn.Module | None:
        """The learned module of a model file."""
        module = self.build(record)
        if module is not None:
            try:
                module.load_state_dict(state)
            except RuntimeError as exc:  # a tensor missing, unexpected or of another shape
                first = str(exc).strip().splitlines()
                detail = " ".join(line.strip() for line in first[1:3]) or first[0]
                raise ModelFileError(
                    f"{record.dataset}-{record.method}: the model file's tensors do not fit the network "
                    f"its record describes ({detail})"
                ) from None
        return module

    def network(self, record: ModelRecord, state: dict | None, weights: str) -> nn.Module:
        """Images (m, c, h, w) -> embeddings: the whole model of a file, the layers it did
        not train with ``weights``."""
        raise NotImplementedError

    def embed_test(self, record: ModelRecord, state: dict | None, data: TestData) -> np.ndarray:
        """The test split's embeddings (n, d), before any normalisation."""
        raise NotImplementedError


class PretrainedFeature(Kind):
    """Nothing is learned: the pretrained feature is the embedding (the vanilla method)."""

    learns = "nothing"

    def build(self, record, *, weights="none", seed=0):
        return None

    def network(self, record, state, weights):
        return build_backbone(record.backbone, weights)

    def embed_test(self, record, state, data):
        return np.load(layout.feature_file(data.features, "test"))


class LastLayerNetwork(Kind):
    """A linear layer learned on the cached features (the backbone frozen)."""

    learns = "last_layer"

    def build(self, record, *, weights="none", seed=0):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return nn.Linear(record.feature_dim, record.embedding_dim)

    def state(self, module):
        return module.cpu().state_dict()

    def network(self, record, state, weights):
        return nn.Sequential(build_backbone(record.backbone, weights), self.loaded(record, state))

    def embed_test(self, record, state, data):
        head = self.loaded(record, state)
        feats = torch.from_numpy(np.load(layout.feature_file(data.features, "test")))
        with torch.no_grad():
            return torch.cat([head(c) for c in torch.split(feats, data.batch_size)]).numpy()


class AllLayersNetwork(Kind):
    """The whole network learned on images (the chunked update of Section 4.1)."""

    learns = "all_layers"
    data_parallel = True

    def build(self, record, *, weights="none", seed=0):
        return EmbeddingNet.build(
            build_backbone(record.backbone, weights, seed=seed),
            record.feature_dim,
            record.embedding_dim,
            class_ids=torch.zeros(record.trained_classes, dtype=torch.long),
            seed=seed,
        )

    def network(self, record, state, weights):
        net = self.loaded(record, state)
        return net.backbone if record.embedding == "pooled" else net

    def embed_test(self, record, state, data):
        net = self.network(record, state, "none")
        split = read_split(data.prepared, "test")
        if not np.array_equal(split.labels, np.load(layout.labels_file(data.features))):
            raise RuntimeError("the prepared test table and the cached features disagree: re-run features")
        feat = data.feat
        if feat.backbone != record.backbone:
            raise RuntimeError(
                f"the model was trained with backbone {record.backbone!r}, the "
                f"configuration names {feat.backbone!r}: re-run train"
            )
        dataset = ImageDataset(split, transform_for(feat.backbone, feat.resize, feat.crop))
        image = data.image
        return embed_dataset(
            net.to(data.device), dataset, data.batch_size, image.num_workers, data.device, image.amp,
            f"embed {record.dataset}", decode=image.decode,
        )  # fmt: skip


KINDS: Registry[Kind] = Registry("kind of learning")
for _kind in (PretrainedFeature(), LastLayerNetwork(), AllLayersNetwork()):
    KINDS.register(_kind.learns, _kind)


def kind_for(learns: str) -> Kind:
    """The network of a kind of learning (``nothing``, ``last_layer``, ``all_layers``)."""
    return KINDS.get(learns)
