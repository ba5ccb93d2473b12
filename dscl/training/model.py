"""The trained network: a backbone followed by the learned last layer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["MODEL_FORMAT", "EmbeddingNet", "embed_in_chunks"]

MODEL_FORMAT = 2  # the saved model's layout (record["format"]); 2: record["learns"]


class EmbeddingNet(nn.Module):
    """``backbone`` (images -> pooled features) followed by the learned last layer
    ``head`` (features -> embedding).

    For the softmax baseline, ``class_ids`` (sorted) are the training classes the
    scores refer to, and ``classifier`` maps the embedding to class scores where the
    embedding is not itself the score vector (its dimension differs from the number of
    classes).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        classifier: nn.Module | None = None,
        class_ids: torch.Tensor | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.classifier = classifier
        self.register_buffer(
            "class_ids", torch.empty(0, dtype=torch.long) if class_ids is None else class_ids
        )

    @classmethod
    def build(
        cls,
        backbone: nn.Module,
        feature_dim: int,
        embedding_dim: int,
        *,
        class_ids: torch.Tensor | None = None,
        classifier: bool = False,
        seed: int = 0,
    ) -> EmbeddingNet:
        """A new network whose head (and classifier) are initialised from ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = nn.Linear(feature_dim, embedding_dim)
            scores = nn.Linear(embedding_dim, len(class_ids)) if classifier else None
        return cls(backbone, head, scores, class_ids)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


@torch.no_grad()
def embed_in_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = 4096
) -> np.ndarray:
    """``fn`` over the rows of ``x`` (n, D) in chunks: float32 (n, d) on the CPU."""
    return torch.cat([fn(c).float().cpu() for c in torch.split(x, chunk)]).numpy()
