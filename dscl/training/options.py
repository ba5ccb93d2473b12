"""The training's options, as small frozen dataclasses the library defines and checks
itself (:mod:`dscl.schema`: each field's range, unknown keys refused). ``params.yaml``'s
schema (:mod:`dscl.config`) nests them: ``train.common``, ``train.datasets.<dataset>``,
``train.<method>.<dataset>``. Imports no torch."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from dscl.choices import ClassSampling, CropMode, Device, Optimizer
from dscl.methods import Method
from dscl.schema import schema_class as section_class
from dscl.scoring.selection import SelectionRule

__all__ = [
    "SETTINGS_OF_KIND",
    "CommonConfig",
    "DatasetTrainConfig",
    "ImageTrainConfig",
    "LastLayerConfig",
    "MethodConfig",
    "SoftmaxConfig",
    "TorchrunConfig",
    "VanillaConfig",
    "method_config_type",
]

Seed = Annotated[int, Field(ge=0)]


@section_class
class TorchrunConfig:
    """The options of ``torchrun`` that launches the train stage (dvc.yaml unpacks this
    mapping into ``--key value`` flags; ``true`` gives ``--key``, ``false`` nothing).
    One process per GPU (or CPU process group): ``nproc_per_node``; several machines:
    ``standalone: false`` with ``nnodes``, ``node_rank`` or ``rdzv_*`` (docs)."""

    standalone: bool = True  # one machine, a free local port for the rendezvous
    nproc_per_node: int = Field(1, ge=1)
    nnodes: int | str | None = None  # N, or MIN:MAX (elastic)
    node_rank: int | None = Field(None, ge=0)
    rdzv_backend: str | None = None  # c10d
    rdzv_endpoint: str | None = None  # host:port of the rendezvous
    rdzv_id: str | None = None  # the job's name, the same on every node
    master_addr: str | None = None
    master_port: int | None = Field(None, ge=1, le=65535)
    max_restarts: int | None = Field(None, ge=0)

    def __post_init__(self):
        several = [
            k
            for k in ("nnodes", "node_rank", "rdzv_endpoint", "rdzv_id", "master_addr", "master_port")
            if getattr(self, k) is not None
        ]
        if self.standalone and several:
            raise ValueError(
                f"standalone: true is for one machine, but {several} are set: "
                f"set standalone: false to run on several machines"
            )


@section_class
class CommonConfig:
    """``train.common``. One training run per seed (initialisation, batches, crops); the
    validation classes and the class pool are drawn once, with the first, so runs differ
    only in training."""

    seeds: tuple[Seed, ...] = (0,)
    device: Device = "auto"
    amp: bool = True  # bfloat16 autocast of the training passes on CUDA
    checkpoint_every: int = Field(10, ge=1)  # iterations between saved training states
    selection: SelectionRule = field(default_factory=SelectionRule)
    torchrun: TorchrunConfig = field(default_factory=TorchrunConfig)

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {list(self.seeds)}")

    @property
    def seed(self) -> int:
        """The first seed: the one of the split (validation classes, class pool)."""
        return self.seeds[0]


@section_class
class DatasetTrainConfig:
    """``train.datasets.<dataset>``: what every method shares on a dataset. The defaults
    are the paper's recipe (params.yaml's cub200 and cars196 entries write them out)."""

    validation_classes: int = Field(ge=0)  # carved from the training classes (seeded); no default
    embedding_dim: int | None = Field(None, ge=1)  # null: the number of training classes (the paper)
    class_subsample: int | None = Field(None, ge=2)  # batches drawn among this many random classes (SOP: 512)
    class_sampling: ClassSampling = "per_batch"  # per_batch: new classes every batch; once: fixed
    mirror: bool = True  # random horizontal mirroring of training images


@section_class
class _Optimised:
    """What the methods that learn share: their objective's settings, their own seeds and
    embedding dimension (each null: the dataset's or ``train.common``'s)."""

    loss: dict[str, bool | float | str] = field(default_factory=dict)  # the objective's settings
    seeds: tuple[Seed, ...] | None = None  # null: train.common.seeds
    embedding_dim: int | None = Field(None, ge=1)  # null: train.datasets.<dataset>.embedding_dim

    def _check_seeds(self) -> None:
        seeds = self.seeds
        if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError(f"seeds must be null or a list of distinct integers, got {list(seeds)}")


@section_class
class LastLayerConfig(_Optimised):
    """``train.<objective>_last.<dataset>``: the last layer on cached features."""

    backbone_lr: ClassVar[None] = None  # no pretrained layer is trained
    iterations: int = Field(200, ge=0)
    batch_size: int = Field(1260, ge=2)
    optimizer: Optimizer = "adam"
    lr: float = Field(0.001, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    validate_every: int = Field(10, ge=1)  # iterations between validations (and at step 0)

    def __post_init__(self):
        self._check_seeds()


@section_class
class ImageTrainConfig(_Optimised):
    """``train.<objective>_e2e.<dataset>``: all layers, on images (chunked update)."""

    iterations: int = Field(100, ge=0)
    batch_size: int = Field(1260, ge=2)  # n = 18 x 70
    chunk_size: int = Field(70, ge=1)  # sub-batch: memory is bounded by it, not by n
    optimizer: Optimizer = "adam"
    lr: float = Field(0.001, gt=0)  # the learned last layer (and the softmax classifier)
    backbone_lr: float | None = Field(0.0001, gt=0)  # the pretrained layers; null: lr
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    crop_mode: CropMode = "random"
    num_workers: int = Field(8, ge=0)
    validate_every: int = Field(10, ge=1)  # iterations between validations (and at step 0)

    def __post_init__(self):
        self._check_seeds()

    @property
    def pooled(self) -> bool:
        """Whether the test embedding is the fine-tuned pooled feature (not the last layer's)."""
        return False


@section_class
class SoftmaxConfig(ImageTrainConfig):
    """``train.softmax.<dataset>``. ``embedding``: the test embedding is the fine-tuned
    pooled feature ("GoogLeNet features fine-tuned for classification", Section 4.2) or
    the class scores (logits)."""

    embedding: Literal["pooled", "logits"] = "pooled"

    @property
    def pooled(self) -> bool:
        return self.embedding == "pooled"


@section_class
class VanillaConfig:
    """The vanilla method has nothing to learn: one run, the pretrained feature."""

    seeds: ClassVar[None] = None
    embedding_dim: ClassVar[None] = None


MethodConfig = VanillaConfig | LastLayerConfig | ImageTrainConfig | SoftmaxConfig


# the settings of a method: those of what it learns, or a method's own
SETTINGS_OF_KIND: dict[str, type] = {
    "nothing": VanillaConfig,
    "last_layer": LastLayerConfig,
    "all_layers": ImageTrainConfig,
}
SETTINGS_OF_METHOD: dict[str, type] = {"softmax": SoftmaxConfig}  # its test embedding


def method_config_type(method: Method) -> type:
    """The dataclass of ``train.<method>.<dataset>``."""
    return SETTINGS_OF_METHOD.get(method.name, SETTINGS_OF_KIND[method.learns])
