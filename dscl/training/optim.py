"""Optimisers: one learning rate for the learned layers, another for the pretrained ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dscl.choices import OPTIMIZERS, Optimizer

if TYPE_CHECKING:
    import torch

    from dscl.training.model import EmbeddingNet

__all__ = ["OPTIMIZERS", "Optimizer", "OptimizerConfig", "make_optimizer", "parameter_groups"]


@dataclass(frozen=True)
class OptimizerConfig:
    """``lr`` for the learned layers; ``backbone_lr`` for the pretrained ones (None: lr)."""

    name: Optimizer = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    backbone_lr: float | None = None

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.backbone_lr is not None and not self.backbone_lr > 0:
            raise ValueError(f"backbone_lr must be positive (or null), got {self.backbone_lr}")


def make_optimizer(params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """``params``: an iterable of tensors or of parameter groups (dicts, which may set
    their own ``lr``)."""
    import torch

    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def parameter_groups(model: EmbeddingNet, cfg: OptimizerConfig) -> list[dict]:
    """The pretrained backbone at ``cfg.backbone_lr`` (or ``cfg.lr``), the new layers
    (head, classifier) at ``cfg.lr``; frozen parameters are left out."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    ids = {id(p) for p in backbone}
    new = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": new, "lr": cfg.lr}]
    if backbone:
        groups.append({"params": backbone, "lr": cfg.lr if cfg.backbone_lr is None else cfg.backbone_lr})
    return groups
