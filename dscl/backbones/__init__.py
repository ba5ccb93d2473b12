"""Backbones (frozen or fine-tuned feature extractors), looked up by name.

Each backbone maps a batch of decoded images, given as uint8 tensors of shape
(b, c, h, w), to pooled features of shape (b, feature_dim). It owns its normalisation
(:class:`dscl.backbones.network.Backbone` takes uint8), so that images can travel to the
device as compact uint8 in pinned memory.

:mod:`dscl.backbones.specs` holds what the configuration checks (the names, the input
sizes a network takes) and imports no torch; :func:`build_backbone` builds the network
(:mod:`dscl.backbones.network`, which reads the specs, not this package: no cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dscl.backbones.specs import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSpec,
    backbone_names,
    bninception_accepts,
    get_backbone,
)

if TYPE_CHECKING:
    from dscl.backbones.network import Backbone

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "backbone_names",
    "bninception_accepts",
    "build_backbone",
    "get_backbone",
]


def build_backbone(name: str, weights: str = "none", seed: int = 0) -> Backbone:
    """Build backbone ``name`` with ``weights`` ("none", "imagenet" or a file path); see
    :func:`dscl.backbones.network.build_backbone`."""
    from dscl.backbones.network import build_backbone as build

    return build(name, weights, seed)
