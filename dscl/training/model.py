"""The trained network: a backbone followed by the learned last layer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["EmbeddingNet", "embed_in_chunks"]


class EmbeddingNet(nn.Module):
    """``backbone`` (images -> pooled features) followed by the learned last layer
    ``head`` (features -> embedding); ``class_ids`` (sorted), saved with it, are the
    classes it was trained on.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, class_ids: torch.Tensor | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
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
        seed: int = 0,
    ) -> EmbeddingNet:
        """A new network whose head is initialised from ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = nn.Linear(feature_dim, embedding_dim)
        return cls(backbone, head, class_ids)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


@torch.no_grad()
def embed_in_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = 4096
) -> np.ndarray:
    """``fn`` over the rows of ``x`` (n, D) in chunks: float32 (n, d) on the CPU."""
    return torch.cat([fn(c).float().cpu() for c in torch.split(x, chunk)]).numpy()
