"""The schema of ``params.yaml``: one place that owns it, validated whole by :func:`load`.

Every section is a frozen dataclass validated by pydantic, strictly, on the file's values
as YAML gives them (``"3"`` is not 3, ``true`` is not 1): choices are ``Literal``, ranges
sit on the fields, unknown and repeated keys are refused. Every stage calls :func:`load`
first, so a bad value fails in one line naming the key before any work. Only the stages
read it; the library's own option classes nest here unchanged. Importing this module
imports no torch. The docs' Configuration page explains the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import Field

from dscl.backbones.specs import FeatureConfig, ImageConfig
from dscl.choices import CropMode, Device, KMeansBackend, KMeansSeeding
from dscl.datasets import dataset_names, get_dataset
from dscl.errors import DSCLError
from dscl.methods import METHODS, Method
from dscl.objectives import OBJECTIVES
from dscl.report.options import BootstrapConfig, GalleryConfig, TsneConfig
from dscl.schema import SchemaError, schema_class, validate
from dscl.training.options import (
    CommonConfig,
    DatasetTrainConfig,
    ImageTrainConfig,
    LastLayerConfig,
    MethodConfig,
    SoftmaxConfig,
    TorchrunConfig,
    VanillaConfig,
    method_config_type,
)

__all__ = [
    "AblationConfig",
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
    "NmiConfig",
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
    "field_defaults",
    "load",
    "method_config_type",
]

T = TypeVar("T")
PARAMS_FILE = Path("params.yaml")

section_class = schema_class  # strict, closed and finite (the module's docstring says why strict)
Seed = Annotated[int, Field(ge=0)]
Dim = Annotated[int, Field(ge=1)]


class ParamsError(DSCLError, ValueError):
    """params.yaml does not have the expected form."""


# --------------------------------------------------------------------------------------
# The sections
# --------------------------------------------------------------------------------------
@section_class
class PrepareConfig:
    datasets: dict  # per dataset: its own options ({} if none), read by Config.dataset_options
    root: str = "data/raw"  # downloads and extracted archives
    verify_checksum: bool = True  # false only for local test archives


@section_class
class EmbedConfig:
    batch_size: int = Field(32, ge=1)
    device: Device = "auto"


@section_class
class NmiConfig:
    """``evaluate.nmi.<dataset>``: the test NMI is the mean over ``seeds`` k-means seeds
    (``evaluate.kmeans.seed`` and the next ones), each the best of ``restarts`` runs,
    seeded by ``seeding`` (k-means++; ``random``: faiss's k points drawn at random, for
    many clusters) with at most ``niter`` Lloyd iterations (null: ``evaluate.kmeans.niter``)."""

    seeds: int = Field(50, ge=1)
    restarts: int = Field(10, ge=1)
    seeding: KMeansSeeding = "kmeans++"
    niter: int | None = Field(None, ge=1)


@section_class
class KMeansConfig:
    """``evaluate.kmeans``: k = the number of test classes; each k-means keeps the lowest
    objective of its runs seeded by k-means++ (:func:`dscl.scoring.kmeans.kmeans`): validation's
    ``evaluate.kmeans_nredo``, the test NMI's ``evaluate.nmi`` (:class:`NmiConfig`)."""

    niter: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)
    backend: KMeansBackend = "auto"


@section_class
class NumericsConfig:
    """``numerics``: the numeric environment of every stage that computes
    (:func:`dscl.numerics.configure`): its thread count, and deterministic algorithms."""

    threads: int = Field(2, ge=1)
    deterministic: bool = True


@section_class
class ReportConfig:
    tsne: TsneConfig
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)


@section_class
class AblationConfig:
    """``ablation.<dataset>``: these last-layer methods retrained at each embedding
    dimension of ``dims`` (:mod:`dscl.experiments.ablation`); ``seeds``: their training seeds (null:
    each method's own). No methods: no ablation."""

    methods: tuple[str, ...]
    dims: tuple[Dim, ...]
    seeds: tuple[Seed, ...] | None = None

    def __post_init__(self):
        if self.methods and not self.dims:
            raise ValueError(f"dims must list dimensions >= 1 for the methods {list(self.methods)}")


# The sections of params.yaml, and the keys of those that hold others (the rest are
# refused with these names); ``defaults`` holds the YAML anchors, free-form
TOP_LEVEL = (
    "datasets", "methods", "defaults", "prepare", "features", "train",
    "numerics", "embed", "evaluate", "ablation", "report",
)  # fmt: skip
SUBSECTIONS = {
    "features": ("image", "datasets"),
    "evaluate": ("kmeans", "kmeans_nredo", "nmi", "recall_ks"),
}
# the mappings whose keys are dataset names
PER_DATASET = (
    "prepare.datasets", "features.datasets", "train.datasets",
    "evaluate.kmeans_nredo", "evaluate.nmi", "evaluate.recall_ks", "ablation",
)  # fmt: skip


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
        if method.objective is not None:  # the objective's settings class (dscl.objectives.settings)
            convert(cfg.loss, OBJECTIVES.get(method.objective), f"{where}.loss")
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
        arguments of :func:`dscl.scoring.scores.validation_scores`: validation during
        training, its k-means seeded and iterated as the test NMI's (``evaluate.nmi``:
        ``seeding``, ``niter``; the test evaluation: :meth:`test_kmeans_options`)."""
        where = f"evaluate.kmeans_nredo.{dataset}"
        nredo = convert(entry(self.raw, "evaluate.kmeans_nredo", dataset), int, where)
        if nredo < 1:
            raise ParamsError(f"params.yaml: {where} must be >= 1, got {nredo}")
        nmi = self.nmi(dataset)  # seeded and iterated as the dataset's test k-means
        return {
            "seed": self.kmeans.seed,
            "kmeans_niter": nmi.niter or self.kmeans.niter,
            "kmeans_nredo": nredo,
            "kmeans_backend": self.kmeans.backend,
            "seeding": nmi.seeding,
        }

    def nmi(self, dataset: str) -> NmiConfig:
        """``evaluate.nmi.<dataset>``: the k-means seeds whose NMIs the test evaluation
        averages and the runs of each (:func:`dscl.evaluation.protocol.evaluate_test`)."""
        return build(NmiConfig, entry(self.raw, "evaluate.nmi", dataset), f"evaluate.nmi.{dataset}")

    def test_kmeans_options(self, dataset: str) -> dict:
        """``evaluate.kmeans`` and ``evaluate.nmi.<dataset>`` as the keyword arguments of
        :func:`dscl.evaluation.protocol.evaluate_test` (the test evaluation and the ablation)."""
        nmi = self.nmi(dataset)
        return {
            "seed": self.kmeans.seed,
            "kmeans_niter": nmi.niter or self.kmeans.niter,
            "kmeans_backend": self.kmeans.backend,
            "seeds": nmi.seeds,
            "restarts": nmi.restarts,
            "seeding": nmi.seeding,
        }

    def ablation(self, dataset: str) -> AblationConfig:
        """``ablation.<dataset>``, each method checked: a last-layer method with valid
        settings on the dataset."""
        where = f"ablation.{dataset}"
        spec = build(AblationConfig, entry(self.raw, "ablation", dataset), where)
        for name in spec.methods:
            method, _ = self.method(name, dataset)
            if method.learns != "last_layer":
                last = [m for m in METHODS.names() if METHODS.get(m).learns == "last_layer"]
                raise ParamsError(
                    f"params.yaml: {where}.methods: {name!r} does not learn the last layer alone "
                    f"(the ablation retrains those); choose from {last}"
                )
        return spec

    def require_dataset(self, dataset: str) -> None:
        if dataset not in self.datasets:
            raise ParamsError(f"params.yaml: dataset {dataset!r} is not in 'datasets' {list(self.datasets)}")


def load(path: str | Path = PARAMS_FILE) -> Config:
    """Read ``params.yaml`` and check all of it: every section, every entry present (of
    the experiment's datasets and methods, which must have theirs, and of the others),
    unknown and duplicated keys at every level; raise :class:`ParamsError` on the first
    problem, in one line naming the key, the value and what is allowed."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found (run the stage from the repository root)")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    check_keys(raw, "the top level of params.yaml", TOP_LEVEL)
    for name, keys in SUBSECTIONS.items():
        check_keys(raw.get(name), name, keys)
    check_keys(raw.get("train"), "train", ("common", "datasets", *METHODS.names()))
    for dotted in PER_DATASET:
        check_keys(node_at(raw, dotted), dotted, dataset_names())
    for method in set(raw.get("train") or {}) - {"common", "datasets"}:
        check_keys(raw["train"][method], f"train.{method}", dataset_names())
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
    readers = {
        "prepare.datasets": cfg.dataset_options,
        "features.datasets": cfg.features,
        "train.datasets": cfg.train_dataset,
        "evaluate.recall_ks": cfg.recall_ks,
        "evaluate.kmeans_nredo": cfg.kmeans_options,
        "evaluate.nmi": cfg.nmi,
    }
    for dataset in cfg.datasets:  # what the experiment's stages read must be there
        for read in readers.values():
            read(dataset)
        for method in cfg.methods:
            cfg.method(method, dataset)
    for dotted, read in readers.items():  # and every other entry present is valid too
        for dataset in node_at(raw, dotted) or {}:
            read(dataset)
    for method in set(raw["train"]) - {"common", "datasets"}:
        for dataset in raw["train"][method] or {}:
            cfg.method(method, dataset)
    for dataset in node_at(raw, "ablation") or {}:
        cfg.ablation(dataset)
    return cfg


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader (libyaml's parser where PyYAML was built with it: 4x faster,
    and every stage reads params.yaml), refusing a key written twice in one mapping
    (PyYAML keeps the last silently); keys that a merge (``<<: *anchor``) brings in may
    be overridden."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ParamsError(
                    f"params.yaml: key {key!r} appears twice in one mapping "
                    f"(lines {seen[key] + 1} and {key_node.start_mark.line + 1}); keep one"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


# what a params file may be: this project's is 15 KB and expands to about 4,000 values
MAX_BYTES = 1 << 20
MAX_VALUES = 1_000_000


def read_yaml(path: Path) -> Any:
    """The YAML file at ``path`` (safe types only), duplicated keys refused, and so are a
    file over :data:`MAX_BYTES` and one whose aliases expand past :data:`MAX_VALUES`
    values (a "billion laughs" document is refused before anything walks it)."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ParamsError(f"{path}: {size:,} bytes; a params file is at most {MAX_BYTES:,}")
    try:
        data = yaml.load(
            path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader
        )  # a SafeLoader: plain data
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{path}: not valid YAML{line}: {problem}") from None
    values = _expanded_size(data, {})
    if values > MAX_VALUES:
        raise ParamsError(f"{path}: its aliases expand to {values:,} values; at most {MAX_VALUES:,}")
    return data


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """How many values ``node`` holds once every alias is written out (each shared node
    counted once per use, each computed once); ParamsError for a node inside itself."""
    if not isinstance(node, dict | list):
        return 1
    if memo.get(id(node)) == -1:
        raise ParamsError("params.yaml: an alias refers to a node that holds it (a recursive value)")
    if id(node) not in memo:
        memo[id(node)] = -1  # being counted
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        memo[id(node)] = 1 + sum(_expanded_size(child, memo) for child in children)
    return memo[id(node)]


def check_keys(node: Any, where: str, valid) -> None:
    """Refuse keys of the mapping ``node`` outside ``valid``, listing the valid names."""
    if node is None:
        return
    if not isinstance(node, dict):
        raise ParamsError(f"params.yaml: {where} must be a mapping, got {node!r}")
    unknown = sorted(str(k) for k in node if k not in valid)
    if unknown:
        raise ParamsError(f"params.yaml: unknown key(s) {unknown} in {where}; expected {sorted(valid)}")


def node_at(raw: dict, dotted: str) -> Any:
    """``raw`` at the dotted path, or None where a part is missing."""
    node: Any = raw
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


# --------------------------------------------------------------------------------------
# YAML values -> typed dataclasses, by pydantic (dscl.schema)
# --------------------------------------------------------------------------------------
def convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` (as YAML gives it) validated as type ``tp``; ParamsError naming ``where``
    and what was expected otherwise."""
    try:
        return validate(value, tp, where)
    except SchemaError as err:
        raise ParamsError(f"params.yaml: {err}") from None


def build(cls: type[T], data: Any, where: str) -> T:
    """The dataclass ``cls`` of the mapping ``data``: unknown and missing keys refused,
    every field's type and range checked, then the dataclass's own rules."""
    if not isinstance(data, dict):
        raise ParamsError(f"params.yaml: {where} must be a mapping, got {data!r}")
    return convert(data, cls, where)


def field_defaults(cls: type) -> dict[str, Any]:
    """The fields of a section that have a default value, and that value (a factory's
    fields left out): what a run uses where params.yaml says nothing."""
    from pydantic.fields import PydanticUndefined

    infos = getattr(cls, "__pydantic_fields__", None)
    if infos is None:  # a plain dataclass
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    return {name: info.default for name, info in infos.items() if info.default is not PydanticUndefined}


def section(raw: dict, dotted: str, cls: type[T]) -> T:
    """The dataclass for the section at ``dotted`` (e.g. ``"train.common"``)."""
    node = node_at(raw, dotted)
    if node is None:
        raise ParamsError(f"params.yaml: missing section {dotted}")
    return build(cls, node, dotted)


def entry(raw: dict, dotted: str, key: str) -> Any:
    """``raw[dotted][key]`` for a per-dataset mapping, with a clear error."""
    node = node_at(raw, dotted)
    if not isinstance(node, dict) or key not in node:
        known = sorted(node) if isinstance(node, dict) else []
        raise ParamsError(f"params.yaml: {dotted} has no entry for dataset {key!r}; it has {known}")
    return node[key]
