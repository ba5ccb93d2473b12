"""The schema of ``params.yaml``: one place that owns it, validated whole by :func:`load`.

Every section is a frozen dataclass; a choice among names is a ``Literal`` (checked when
the file is read, with the valid names in the message); a cross-field rule is the
dataclass's ``__post_init__``. :func:`load` reads the file once, checks every section
that the experiment's stages will read (each dataset of ``datasets`` and method of
``methods``), and returns a :class:`Config`; a bad key fails at the first stage that
runs, before any work, naming the key and what was expected.

Why dataclasses and not pydantic: the schema is small, the converter below is 60 lines
that turn YAML values into these types with an error naming the key, and it keeps the
configuration importable without a dependency; the library's own option classes
(:class:`dscl.selection.SelectionRule`, :class:`dscl.training.optim.OptimizerConfig`) are
dataclasses too and nest here unchanged. Importing this module imports no torch.

Repetition in ``params.yaml`` is removed with YAML anchors and merge keys (``<<: *name``),
read by PyYAML and by DVC alike: each stage still depends on its own fully resolved keys
(``train.<method>.<dataset>``), so an edit to one dataset re-runs only its stages and
``dvc exp run -S`` / ``dvc params diff`` work on them (the docs' Configuration page).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from dscl.backbones import get_backbone
from dscl.datasets import dataset_names, get_dataset
from dscl.methods import METHODS, Method
from dscl.objectives import check_settings
from dscl.selection import SelectionRule
from dscl.training.optim import Optimizer, OptimizerConfig
from dscl.training.sampling import ClassSampling

__all__ = [
    "BootstrapConfig",
    "CommonConfig",
    "Config",
    "CropMode",
    "DatasetTrainConfig",
    "Device",
    "EmbedConfig",
    "FeatureConfig",
    "GalleryConfig",
    "ImageConfig",
    "ImageTrainConfig",
    "KMeansBackend",
    "KMeansConfig",
    "LastLayerConfig",
    "NumericsConfig",
    "ParamsError",
    "PrepareConfig",
    "ReportConfig",
    "SoftmaxConfig",
    "TorchrunConfig",
    "TsneConfig",
    "VanillaConfig",
    "build",
    "convert",
    "load",
]

T = TypeVar("T")
PARAMS_FILE = Path("params.yaml")
Device = Literal["auto", "cpu", "cuda"]
CropMode = Literal["center", "random"]
KMeansBackend = Literal["auto", "faiss", "torch"]  # auto: faiss, or torch on a GPU without faiss-gpu


class ParamsError(ValueError):
    """params.yaml does not have the expected form."""


# --------------------------------------------------------------------------------------
# The sections
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepareConfig:
    root: str = "data/raw"  # downloads and extracted archives
    verify_checksum: bool = True  # false only for local test archives
    datasets: dict = field(default_factory=dict)  # per dataset: its own options ({} if none)


@dataclass(frozen=True)
class ImageConfig:
    """``features.image``: how images are decoded and embedded (features, embed, validation)."""

    batch_size: int = 128
    num_workers: int = 4
    amp: bool = False  # bfloat16 autocast on CUDA (false: float32, the default)
    device: Device = "auto"
    decode: Literal["auto", "cpu", "gpu"] = "auto"  # auto: JPEGs decoded on the GPU on CUDA (dscl.images)


@dataclass(frozen=True)
class FeatureConfig:
    """``features.datasets.<dataset>``: the backbone and the decoding of Section 4.1."""

    backbone: str
    weights: str  # imagenet | none | path to a weights file
    resize: int = 256  # images resized to resize x resize ...
    crop: int = 227  # ... then cropped (centre crop for features and test)

    def __post_init__(self):
        spec = get_backbone(self.backbone)  # an unknown name fails here, before any work
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop must be in [1, resize={self.resize}], got {self.crop}")
        spec.check_crop(self.crop)  # e.g. BN-Inception takes 227, not 299


@dataclass(frozen=True)
class TorchrunConfig:
    """The options of ``torchrun`` that launches the train stage (dvc.yaml unpacks this
    mapping into ``--key value`` flags; ``true`` gives ``--key``, ``false`` nothing).
    One process per GPU (or CPU process group): ``nproc_per_node``; several machines:
    ``standalone: false`` with ``nnodes``, ``node_rank`` or ``rdzv_*`` (docs)."""

    standalone: bool = True  # one machine, a free local port for the rendezvous
    nproc_per_node: int = 1
    nnodes: int | str | None = None  # N, or MIN:MAX (elastic)
    node_rank: int | None = None
    rdzv_backend: str | None = None  # c10d
    rdzv_endpoint: str | None = None  # host:port of the rendezvous
    rdzv_id: str | None = None  # the job's name, the same on every node
    master_addr: str | None = None
    master_port: int | None = None
    max_restarts: int | None = None

    def __post_init__(self):
        if self.nproc_per_node < 1:
            raise ValueError(f"nproc_per_node must be >= 1, got {self.nproc_per_node}")
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


@dataclass(frozen=True)
class CommonConfig:
    """``train.common``. One training run per seed (initialisation, batches, crops); the
    validation classes and the class pool are drawn once, with the first, so runs differ
    only in training."""

    seeds: tuple[int, ...] = (0,)
    device: Device = "auto"
    amp: bool = True  # bfloat16 autocast of the training passes on CUDA
    checkpoint_every: int = 10
    selection: SelectionRule = field(default_factory=SelectionRule)
    torchrun: TorchrunConfig = field(default_factory=TorchrunConfig)

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {list(self.seeds)}")

    @property
    def seed(self) -> int:
        """The first seed: the one of the split (validation classes, class pool)."""
        return self.seeds[0]


@dataclass(frozen=True)
class DatasetTrainConfig:
    """``train.datasets.<dataset>``: what every method shares on a dataset."""

    embedding_dim: int | None = None  # null: the number of training classes (the paper)
    class_subsample: int | None = None  # batches drawn among this many random classes (SOP: 512)
    class_sampling: ClassSampling = "per_batch"  # per_batch: new classes every batch; once: fixed
    mirror: bool = True  # random horizontal mirroring of training images
    validation_classes: int = 0  # carved from the training classes (seeded)

    def __post_init__(self):
        if self.validation_classes < 0:
            raise ValueError(f"validation_classes must be >= 0, got {self.validation_classes}")


@dataclass(frozen=True)
class _Optimised:
    def _check_seeds(self) -> None:
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be null or >= 1, got {self.embedding_dim}")
        seeds = self.seeds
        if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError(f"seeds must be null or a list of distinct integers, got {list(seeds)}")

    def optimizer_config(self) -> OptimizerConfig:
        return OptimizerConfig(
            self.optimizer,
            self.lr,
            self.momentum,
            self.weight_decay,
            backbone_lr=getattr(self, "backbone_lr", None),
        )


@dataclass(frozen=True)
class LastLayerConfig(_Optimised):
    """``train.<objective>_last.<dataset>``: the last layer on cached features."""

    iterations: int = 200
    batch_size: int = 1260
    optimizer: Optimizer = "sgd"
    lr: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    validate_every: int = 10  # iterations between validations (and at step 0)
    loss: dict[str, bool | float | str] = field(default_factory=dict)  # the objective's settings
    seeds: tuple[int, ...] | None = None  # this method's training seeds (null: train.common.seeds)
    embedding_dim: int | None = None  # this method's (null: train.datasets.<dataset>.embedding_dim)

    def __post_init__(self):
        self.optimizer_config()  # refuses a bad learning rate
        self._check_seeds()
        if self.iterations < 0 or self.batch_size < 2:
            raise ValueError("iterations must be >= 0 and batch_size >= 2")
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be >= 1, got {self.validate_every}")


@dataclass(frozen=True)
class ImageTrainConfig(_Optimised):
    """``train.<objective>_e2e.<dataset>``: all layers, on images (chunked update)."""

    iterations: int = 100
    batch_size: int = 1260  # n = 18 x 70
    chunk_size: int = 70  # sub-batch: memory is bounded by it, not by n
    optimizer: Optimizer = "sgd"
    lr: float = 0.01  # the learned last layer (and the softmax classifier)
    backbone_lr: float | None = None  # the pretrained layers; None: lr
    momentum: float = 0.9
    weight_decay: float = 0.0
    crop_mode: CropMode = "random"
    num_workers: int = 4
    validate_every: int = 10  # iterations between validations (and at step 0)
    loss: dict[str, bool | float | str] = field(default_factory=dict)  # the objective's settings
    seeds: tuple[int, ...] | None = None  # this method's training seeds (null: train.common.seeds)
    embedding_dim: int | None = None  # this method's (null: train.datasets.<dataset>.embedding_dim)

    def __post_init__(self):
        self.optimizer_config()  # refuses a bad learning rate
        self._check_seeds()
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be >= 1, got {self.validate_every}")
        if self.iterations < 0 or self.batch_size < 2 or self.chunk_size < 1:
            raise ValueError("iterations must be >= 0, batch_size >= 2 and chunk_size >= 1")


@dataclass(frozen=True)
class SoftmaxConfig(ImageTrainConfig):
    """``train.softmax.<dataset>``. ``embedding``: the test embedding is the fine-tuned
    pooled feature ("GoogLeNet features fine-tuned for classification", Section 4.2) or
    the class scores (logits)."""

    embedding: Literal["pooled", "logits"] = "pooled"

    def __post_init__(self):
        super().__post_init__()
        if self.loss:
            raise ValueError(f"softmax has no loss settings, got {sorted(self.loss)}")


@dataclass(frozen=True)
class VanillaConfig:
    """The vanilla method has nothing to learn."""


MethodConfig = VanillaConfig | LastLayerConfig | ImageTrainConfig | SoftmaxConfig


def method_config_type(method: Method) -> type:
    """The dataclass of ``train.<method>.<dataset>``."""
    if method.learns == "nothing":
        return VanillaConfig
    if method.learns == "last_layer":
        return LastLayerConfig
    return SoftmaxConfig if method.objective == "softmax" else ImageTrainConfig


@dataclass(frozen=True)
class EmbedConfig:
    batch_size: int = 256
    device: Device = "auto"


@dataclass(frozen=True)
class KMeansConfig:
    """``evaluate.kmeans``: k = the number of test classes; each evaluation keeps the
    lowest objective of its dataset's ``evaluate.kmeans_nredo`` runs seeded by k-means++
    (:func:`dscl.kmeans.kmeans`)."""

    niter: int = 100
    seed: int = 0
    backend: KMeansBackend = "auto"

    def __post_init__(self):
        if self.niter < 1 or self.seed < 0:
            raise ValueError(f"niter must be >= 1 and seed >= 0, got {self.niter} and {self.seed}")


@dataclass(frozen=True)
class NumericsConfig:
    """``numerics``: the numeric environment of every stage that computes
    (:func:`dscl.numerics.configure`): its thread count, and deterministic algorithms."""

    threads: int = 2
    deterministic: bool = True

    def __post_init__(self):
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class TsneConfig:
    perplexity: float = 30.0
    max_points: int = 3000
    max_classes: int = 20
    seed: int = 0
    thumbnails: int = 60  # images drawn at a seeded subsample of the points (0: dots only)


@dataclass(frozen=True)
class GalleryConfig:
    """``report.gallery``: the retrieval figures (dscl.report.gallery)."""

    queries: int = 8  # seeded test queries, the same for every method
    k: int = 8  # neighbours shown per query
    worst: int = 4  # and the queries each method gets most wrong (lowest precision at k)
    compare_queries: int = 6  # the comparison figure: these many of the queries ...
    compare_k: int = 5  # ... with these many neighbours for each compared method
    thumb: int = 72  # thumbnail size in pixels
    seed: int = 0

    def __post_init__(self):
        if min(self.queries, self.k, self.compare_k, self.thumb) < 1 or self.worst < 0:
            raise ValueError("queries, k, compare_k and thumb must be >= 1 and worst >= 0")
        if self.compare_queries > self.queries:
            raise ValueError(
                f"compare_queries ({self.compare_queries}) must not exceed queries ({self.queries})"
            )


@dataclass(frozen=True)
class BootstrapConfig:
    """``report.bootstrap``: the confidence intervals over test classes (dscl.bootstrap)."""

    resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if self.resamples < 100:
            raise ValueError(f"resamples must be >= 100 for a 95% interval, got {self.resamples}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")


@dataclass(frozen=True)
class ReportConfig:
    tsne: TsneConfig
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)


# --------------------------------------------------------------------------------------
# The whole file
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """``params.yaml``, validated. The per-dataset and per-method sections are read with
    the methods below (each checks its own entry, with the key in the message)."""

    raw: dict = field(repr=False)
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    prepare: PrepareConfig
    image: ImageConfig
    common: CommonConfig
    embed: EmbedConfig
    kmeans: KMeansConfig
    report: ReportConfig
    numerics: NumericsConfig

    def dataset_options(self, dataset: str):
        """``prepare.datasets.<dataset>``: the dataset's options (its ``options``
        dataclass), or None for a dataset that has none (its entry must be empty)."""
        spec = get_dataset(dataset)
        value = entry(self.raw, "prepare.datasets", dataset)
        where = f"prepare.datasets.{dataset}"
        if spec.options is None:
            if value not in ({}, None):
                raise ParamsError(
                    f"params.yaml: {where} must be empty ({{}}): {dataset} has no options, got {value!r}"
                )
            return None
        return build(spec.options, value, where)

    def features(self, dataset: str) -> FeatureConfig:
        """``features.datasets.<dataset>``."""
        return build(
            FeatureConfig, entry(self.raw, "features.datasets", dataset), f"features.datasets.{dataset}"
        )

    def train_dataset(self, dataset: str) -> DatasetTrainConfig:
        """``train.datasets.<dataset>``, checked against the selection rule."""
        ds = build(
            DatasetTrainConfig, entry(self.raw, "train.datasets", dataset), f"train.datasets.{dataset}"
        )
        if self.common.selection.split == "validation" and ds.validation_classes < 2:
            raise ParamsError(
                f"params.yaml: train.common.selection.split is 'validation' but "
                f"train.datasets.{dataset}.validation_classes is {ds.validation_classes}: "
                f"set it to 2 or more, or set the split to 'none'"
            )
        return ds

    def method(self, name: str, dataset: str) -> tuple[Method, MethodConfig]:
        """The method ``name`` and its settings on ``dataset`` (``train.<name>.<dataset>``),
        its objective's settings checked."""
        try:
            method = METHODS.get(name)
        except ValueError as err:
            raise ParamsError(f"params.yaml: {err}") from None
        where = f"train.{name}.{dataset}"
        cfg = build(method_config_type(method), entry(self.raw, f"train.{name}", dataset), where)
        if method.objective not in (None, "softmax"):
            try:
                check_settings(method.objective, cfg.loss)
            except ValueError as err:
                raise ParamsError(f"params.yaml: {where}.loss: {err}") from None
        return method, cfg

    def recall_ks(self, dataset: str) -> tuple[int, ...]:
        """``evaluate.recall_ks.<dataset>``: at least one K, each >= 1."""
        where = f"evaluate.recall_ks.{dataset}"
        ks = convert(entry(self.raw, "evaluate.recall_ks", dataset), tuple[int, ...], where)
        if not ks or min(ks) < 1:
            raise ParamsError(f"params.yaml: {where} must list at least one K, each >= 1; got {list(ks)}")
        return ks

    def kmeans_options(self, dataset: str) -> dict:
        """``evaluate.kmeans`` and ``evaluate.kmeans_nredo.<dataset>`` as the keyword
        arguments of :func:`dscl.metrics.evaluate_embedding` (the test evaluation, and
        validation during training)."""
        where = f"evaluate.kmeans_nredo.{dataset}"
        nredo = convert(entry(self.raw, "evaluate.kmeans_nredo", dataset), int, where)
        if nredo < 1:
            raise ParamsError(f"params.yaml: {where} must be >= 1, got {nredo}")
        return {
            "seed": self.kmeans.seed,
            "kmeans_niter": self.kmeans.niter,
            "kmeans_nredo": nredo,
            "kmeans_backend": self.kmeans.backend,
        }

    def require_dataset(self, dataset: str) -> None:
        if dataset not in self.datasets:
            raise ParamsError(f"params.yaml: dataset {dataset!r} is not in 'datasets' {list(self.datasets)}")


def load(path: str | Path = PARAMS_FILE) -> Config:
    """Read ``params.yaml`` and check every section the experiment's stages will read;
    raise :class:`ParamsError` on the first problem, naming the key and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found (run the stage from the repository root)")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    names = {}
    for key, valid in (("datasets", dataset_names()), ("methods", METHODS.names())):
        listed = raw.get(key)
        if not isinstance(listed, list) or not listed:
            raise ParamsError(f"params.yaml: '{key}' must be a non-empty list of names from {valid}")
        unknown = [n for n in listed if n not in valid]
        if unknown:
            raise ParamsError(f"params.yaml: unknown {key} {unknown}; valid names: {valid}")
        names[key] = tuple(listed)
    cfg = Config(
        raw=raw,
        datasets=names["datasets"],
        methods=names["methods"],
        prepare=section(raw, "prepare", PrepareConfig),
        image=section(raw, "features.image", ImageConfig),
        common=section(raw, "train.common", CommonConfig),
        embed=section(raw, "embed", EmbedConfig),
        kmeans=section(raw, "evaluate.kmeans", KMeansConfig),
        report=section(raw, "report", ReportConfig),
        numerics=section(raw, "numerics", NumericsConfig),
    )
    for dataset in cfg.datasets:
        cfg.dataset_options(dataset)
        cfg.features(dataset)
        cfg.train_dataset(dataset)
        cfg.recall_ks(dataset)
        cfg.kmeans_options(dataset)
        for method in cfg.methods:
            cfg.method(method, dataset)
    return cfg


# --------------------------------------------------------------------------------------
# YAML values -> typed dataclasses
# --------------------------------------------------------------------------------------
def convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` (as YAML gives it) as type ``tp``; ParamsError naming ``where`` otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return convert(value, option, where)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ParamsError(f"{where} must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ParamsError(f"{where} must be a list, got {value!r}")
        item = typing.get_args(tp)[0]
        return tuple(convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where} must be a mapping, got {value!r}")
        if tp is dict:  # a free-form mapping, checked by whoever reads it
            return value
        vt = typing.get_args(tp)[1]
        return {k: convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    checks = {
        float: ((int, float), "a number"),
        int: (int, "an integer"),
        bool: (bool, "true or false"),
        str: (str, "a string"),
    }
    if tp in checks:
        types_, what = checks[tp]
        if not isinstance(value, types_) or (tp is not bool and isinstance(value, bool)):
            raise ParamsError(f"{where} must be {what}, got {value!r}")
        return float(value) if tp is float else value
    raise TypeError(f"unsupported field type {tp!r} at {where}")


def build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown and missing keys."""
    if not isinstance(data, dict):
        raise ParamsError(f"params.yaml: {where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"params.yaml: unknown key(s) {unknown} in {where}; expected {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ParamsError(f"params.yaml: missing key {where}.{name}")
            continue
        kwargs[name] = convert(data[name], hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ParamsError(f"params.yaml: {where}: {exc}") from None


def section(raw: dict, dotted: str, cls: type[T]) -> T:
    """The dataclass for the section at ``dotted`` (e.g. ``"train.common"``)."""
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"params.yaml: missing section {dotted}")
        node = node[part]
    return build(cls, node, dotted)


def entry(raw: dict, dotted: str, key: str) -> Any:
    """``raw[dotted][key]`` for a per-dataset mapping, with a clear error."""
    node: Any = raw
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or key not in node:
        known = sorted(node) if isinstance(node, dict) else []
        raise ParamsError(f"params.yaml: {dotted} has no entry for dataset {key!r}; it has {known}")
    return node[key]
