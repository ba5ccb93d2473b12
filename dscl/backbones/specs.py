"""The backbones by name: what each takes and gives (input sizes, normalisation, feature
size), what the configuration checks. Imports no torch; the networks are built by
:mod:`dscl.backbones.network`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field

from dscl.choices import Decoder, Device
from dscl.registry import Registry
from dscl.schema import schema_class as section_class

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "FeatureConfig",
    "ImageConfig",
    "backbone_names",
    "bninception_accepts",
    "get_backbone",
]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    ``builder`` names the function of :mod:`dscl.backbones.network` that builds the body
    from a state dict (None: a random initialisation). The ImageNet weights come from
    torchvision's weight enum ``torchvision_weights`` (e.g.
    ``"GoogLeNet_Weights.IMAGENET1K_V1"``: its URL, downloaded once and hash-checked),
    from ``weights_url`` (a published file whose name carries its hash), or ship inside
    an installed package (``packaged_weights``: no network at all). ``accepts_size(s)``,
    where given, says whether an ``s`` x ``s`` input goes through the network
    (:meth:`check_crop` names the sizes that do).
    """

    name: str
    feature_dim: int
    image_mode: str  # "RGB" or "L"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    builder: str
    torchvision_weights: str | None = None
    weights_url: str | None = None
    packaged_weights: bool = False
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
            f"disagree in size); valid crops near {crop}: {near} (the paper: 227, or 224)"
        )


def bninception_accepts(size: int) -> bool:
    """Whether a ``size`` x ``size`` input goes through: at each stride-2 block (3c, 4e)
    the strided convolutions (floor) and the ceil-mode max pool agree only on an even
    input side.
    """

    def conv(s, k, st, p):
        return (s + 2 * p - k) // st + 1

    def ceil_pool(s):  # 3x3, stride 2, ceil_mode
        return -(-(s - 3) // 2) + 1

    if size < 1:
        return False
    s = ceil_pool(conv(size, 7, 2, 3))  # conv1 + pool1
    s = ceil_pool(s)  # conv2 (same size) + pool2
    for _ in ("3c", "4e"):
        if s < 3 or s % 2:
            return False
        s = conv(s, 3, 2, 1)
    return s >= 1


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def _register(spec: BackboneSpec) -> None:
    BACKBONES.register(spec.name, spec)


def backbone_names() -> list[str]:
    return sorted(BACKBONES)


def get_backbone(name: str) -> BackboneSpec:
    """The backbone ``name``; ValueError naming the valid ones otherwise."""
    return BACKBONES.get(name)


# the 64 (or h x w) grey pixel intensities: nothing to learn, nothing to download
_register(
    BackboneSpec(
        "pixels",
        feature_dim=-1,
        image_mode="L",
        mean=(0.0,),
        std=(1.0,),
        builder="pixels",
        has_parameters=False,
    )
)
_register(
    BackboneSpec(
        "googlenet",
        1024,
        "RGB",
        IMAGENET_MEAN,
        IMAGENET_STD,
        builder="googlenet",
        torchvision_weights="GoogLeNet_Weights.IMAGENET1K_V1",
    )
)
# the paper's network; the published weights take BGR in 0-255 minus the per-channel mean
_register(
    BackboneSpec(
        "bninception",
        1024,
        "RGB",
        mean=(104.0, 117.0, 128.0),
        std=(1.0, 1.0, 1.0),
        builder="bninception",
        scale=255.0,
        bgr=True,
        accepts_size=bninception_accepts,
        weights_url="http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth",
    )
)
# the TensorFlow weights take RGB as (x - 127) / 128 on 0-255; they ship in a package
_register(
    BackboneSpec(
        "efficientnet_lite0",
        1280,
        "RGB",
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        builder="efficientnet_lite0",
        scale=255.0,
        packaged_weights=True,
    )
)
# IMAGENET1K_V1: the weights of the metric-learning papers (V2 is a newer training recipe)
_register(
    BackboneSpec(
        "resnet50",
        2048,
        "RGB",
        IMAGENET_MEAN,
        IMAGENET_STD,
        builder="resnet50",
        torchvision_weights="ResNet50_Weights.IMAGENET1K_V1",
    )
)
# the same network with torchvision's newer recipe (IMAGENET1K_V2: 80.9% top-1 against 76.1%),
# an option for comparisons made with today's weights
_register(
    BackboneSpec(
        "resnet50_v2",
        2048,
        "RGB",
        IMAGENET_MEAN,
        IMAGENET_STD,
        builder="resnet50",
        torchvision_weights="ResNet50_Weights.IMAGENET1K_V2",
    )
)


# The options of the images' decoding and of the backbone's features (params.yaml:
# features.image, features.datasets.<dataset>), validated as dscl.schema does.
@section_class
class ImageConfig:
    """``features.image``: how images are decoded and embedded (features, embed, validation)."""

    batch_size: int = Field(32, ge=1)  # small batches run fastest on a CPU
    num_workers: int = Field(2, ge=0)
    amp: bool = False  # bfloat16 autocast on CUDA (false: float32, the default)
    device: Device = "auto"
    decode: Decoder = "auto"  # auto: JPEGs decoded on the GPU on CUDA (dscl.images)


@section_class
class FeatureConfig:
    """``features.datasets.<dataset>``: the backbone and the decoding of Section 4.1."""

    backbone: str
    weights: str  # imagenet | none | path to a weights file
    resize: int = Field(256, ge=1)  # images resized to resize x resize ...
    crop: int = Field(227, ge=1)  # ... then cropped (centre crop for features and test)

    def __post_init__(self):
        spec = get_backbone(self.backbone)  # an unknown name fails here, before any work
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop must be in [1, resize={self.resize}], got {self.crop}")
        spec.check_crop(self.crop)  # e.g. BN-Inception takes 227, not 299
