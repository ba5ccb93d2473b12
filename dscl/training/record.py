"""The record saved with a trained model: a typed object with a version.

A model file is ``{"record": {...}, "state_dict": {...}}`` (and ``"objective_state"`` for
an objective that learned parameters of its own). The record says what was trained (the
method, what it learns, the backbone and how its images are decoded, the sizes) and how
(the step selected, its validation scores, the numeric environment). It is written as
plain data (:meth:`ModelRecord.to_dict`), so that a file's bytes depend on its values
alone, and read back through :meth:`ModelRecord.from_dict`, which checks every field's
type before anything is built from it: a file from elsewhere is data.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, asdict, dataclass, fields

from dscl.errors import DSCLError
from dscl.methods import LEARNS, Learns

__all__ = ["MODEL_FORMAT", "ModelFileError", "ModelRecord"]

MODEL_FORMAT = 2  # the record's version (``format``); 2: the record says what it ``learns``


class ModelFileError(DSCLError, ValueError):
    """A file that is not a model of this project, or of an incompatible version."""


# the outcome of a run that only some kinds of learning have: written only where set
_ONLY_WHEN_SET = frozenset(
    {
        "weights",
        "embedding",
        "backbone_relative_change",
        "diverged_at",
        "stopped_by",
        "selected_scores",
        "seed",
    }
)


@dataclass(frozen=True)
class ModelRecord:
    """What a model file says of its model. The fields are in the order the file holds them.

    Attributes
    ----------
    format : int
        The version of the record (:data:`MODEL_FORMAT`).
    method, dataset : str
        As ``params.yaml`` names them.
    learns : {"nothing", "last_layer", "all_layers"}
        What training changed (:mod:`dscl.training.strategies`).
    backbone, backbone_weights : str
        The backbone and the weights of the layers that were not trained.
    resize, crop : int
        The decoding of the images it embeds.
    feature_dim, embedding_dim : int
        The backbone's pooled feature and the learned embedding (the feature's own for a
        model that learns nothing).
    selected_on : str
        Where model selection looked (``validation``, ``test``, ``none``).
    trained_classes, validation_classes : int
    objective : str or None
        The objective (:data:`dscl.objectives.OBJECTIVES`); None for the pretrained feature.
    normalized : bool
        The objective measured l2-normalised embeddings (so does the evaluation).
    weights : str, optional
        The backbone's initial weights (all layers trained).
    iterations, selected_step : int
        The steps trained, and the one whose state was kept.
    embedding : {"head", "pooled"}, optional
        All layers trained: the test embedding is the last layer's or the pooled feature.
    backbone_relative_change : float, optional
        How far the pretrained layers moved (relative Frobenius norm).
    environment : dict
        The numeric environment of the run (:func:`dscl.numerics.environment`).
    diverged_at, stopped_by : int and str, optional
        The step whose state was unusable, and what it was (a non-finite loss or gradient,
        collapsed embeddings): training stopped there.
    selected_scores : dict, optional
        The validation scores of the step selected.
    seed : int, optional
        The training seed, where the method trained several.
    """

    format: int
    method: str
    dataset: str
    learns: Learns
    backbone: str
    backbone_weights: str
    resize: int
    crop: int
    feature_dim: int
    embedding_dim: int
    selected_on: str | None = None
    trained_classes: int | None = None
    objective: str | None = None
    normalized: bool = False
    validation_classes: int | None = None
    weights: str | None = None
    iterations: int | None = None
    embedding: str | None = None
    backbone_relative_change: float | None = None
    selected_step: int | None = None
    environment: dict | None = None
    diverged_at: int | None = None
    stopped_by: str | None = None
    selected_scores: dict | None = None
    seed: int | None = None

    def to_dict(self) -> dict:
        """The record as the plain data a model file holds."""
        return {k: v for k, v in asdict(self).items() if v is not None or k not in _ONLY_WHEN_SET}

    @property
    def output_dim(self) -> int:
        """The dimension of the embeddings the model gives."""
        return self.feature_dim if self.learns == "nothing" else self.embedding_dim

    @classmethod
    def from_dict(cls, raw: object, where: str = "the record") -> ModelRecord:
        """The record of a model file; ModelFileError naming ``where`` and what was
        expected for anything else (another version, a field missing or of a wrong type,
        an unknown field)."""
        what = "is not a model file of this project"
        if not isinstance(raw, dict):
            raise ModelFileError(f"{where} {what}: its record is a {type(raw).__name__}, not a mapping")
        found = raw.get("format")
        if found != MODEL_FORMAT:
            raise ModelFileError(
                f"{where} was written by an incompatible version (model format {found}, "
                f"this version reads {MODEL_FORMAT}): re-run the train stage"
            )
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [k for k in required if k not in raw]
        wrong = sorted(k for k in known & set(raw) if not _fits(raw[k], hints[k]))
        unknown = sorted(set(raw) - known)
        if missing:
            raise ModelFileError(f"{where} {what}: its record lacks {missing}")
        if raw["learns"] not in LEARNS:
            raise ModelFileError(f"{where} {what}: learns {raw['learns']!r}, not one of {list(LEARNS)}")
        if wrong:
            raise ModelFileError(f"{where} {what}: its record has {wrong} of the wrong type")
        if unknown:
            raise ModelFileError(
                f"{where} {what}: its record has fields {unknown} this version does not know"
            )
        _check_sizes(raw, f"{where} {what}")
        return cls(**raw)


# what a record may say of its sizes, checked before a network of them is built
MAX_SIZE = 1 << 24  # a dimension, a side in pixels, a count of classes
MAX_LAYER = 1 << 28  # the learned layer's weights (feature_dim x embedding_dim): 1 GiB


def _check_sizes(raw: dict, where: str) -> None:
    for key in ("feature_dim", "embedding_dim", "resize", "crop"):
        if not 1 <= raw[key] <= MAX_SIZE:
            raise ModelFileError(f"{where}: its record says {key} {raw[key]:,} (1 to {MAX_SIZE:,} expected)")
    if raw["learns"] != "nothing" and raw["feature_dim"] * raw["embedding_dim"] > MAX_LAYER:
        raise ModelFileError(
            f"{where}: its record describes a layer of {raw['feature_dim']:,} x {raw['embedding_dim']:,} "
            f"weights (at most {MAX_LAYER:,})"
        )


def _fits(value: object, hint: object) -> bool:
    """Whether a value read from a file has a field's type (exactly: a bool is no int)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None):
            if value is None:
                return True
        elif typing.get_origin(option) is typing.Literal:
            if isinstance(value, str) and value in typing.get_args(option):
                return True
        elif option is float:
            if type(value) in (float, int):
                return True
        elif type(value) is option:
            return True
    return False
