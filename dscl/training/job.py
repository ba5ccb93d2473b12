"""What training one method on one prepared dataset works from: its settings and the data
carved for it (validation classes, the pool of training examples, the embedding's size),
read once and handed to the strategy of what the method learns
(:mod:`dscl.training.strategies`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dscl import layout
from dscl.backbones.specs import FeatureConfig, ImageConfig
from dscl.errors import DSCLError
from dscl.linalg import l2_normalize
from dscl.methods import Method
from dscl.scoring.scores import validation_scores
from dscl.scoring.selection import EarlyStopping, carve_validation
from dscl.training.guard import check_spread, check_values
from dscl.training.loops import LoopOptions
from dscl.training.optim import OptimizerConfig
from dscl.training.options import CommonConfig, DatasetTrainConfig, MethodConfig
from dscl.training.sampling import training_pool

__all__ = ["DataSettingError", "TrainingJob"]


class DataSettingError(DSCLError, ValueError):
    """The dataset's training settings do not fit its data (too many validation classes,
    a class subsample larger than the classes left): ``key`` names the setting of
    ``train.datasets.<dataset>`` it concerns (None: the section). The train stage turns
    it into the pipeline's message, with the key in ``params.yaml``."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key

    def where(self, dataset: str) -> str:
        """The setting's key in ``params.yaml``."""
        return f"train.datasets.{dataset}" + (f".{self.key}" if self.key else "")


@dataclass(frozen=True)
class TrainingJob:
    """One method's training on one dataset: its settings, where its data lies, and what
    was carved from the data once for every seed's run.

    Attributes
    ----------
    dataset : str
    method : Method
    settings : the method's configuration (``train.<method>.<dataset>``)
    common, data, image, features_cfg : the rest of its configuration
    prepared, features : Path
        The prepared dataset and its cached backbone features.
    device : torch.device
    kmeans : dict
        The validation NMI's k-means options (:func:`dscl.scoring.scores.evaluate_embedding`).
    feature_dim : int
        The backbone's pooled feature.
    train_labels : ndarray (N,)
        Labels of the training split (validation classes included).
    val_idx, val_labels : ndarray or None
        The validation rows (of the training split; None when model selection looks at
        the test classes or nowhere) and their labels (None: no model selection).
    pool : ndarray of int
        The training examples batches are drawn from.
    classes_per_batch : int or None
    classes : ndarray
        The classes trained on (sorted).
    dim : int
        The learned embedding's dimension.
    """

    dataset: str
    method: Method
    settings: MethodConfig
    common: CommonConfig
    data: DatasetTrainConfig
    image: ImageConfig
    features_cfg: FeatureConfig
    prepared: Path
    features: Path
    device: torch.device
    kmeans: dict
    feature_dim: int
    train_labels: np.ndarray
    val_idx: np.ndarray | None
    val_labels: np.ndarray | None
    pool: np.ndarray
    classes_per_batch: int | None
    classes: np.ndarray
    dim: int

    @classmethod
    def plan(
        cls, *, settings: MethodConfig, common: CommonConfig, data: DatasetTrainConfig, **where
    ) -> TrainingJob:
        """Read the cached features' labels and carve the validation classes and the
        training pool (seeded with ``common.seed``), before any output is written;
        :class:`DataSettingError` where the dataset's settings do not fit its data.
        ``where``: the other fields (dataset, method, image, features_cfg, prepared,
        features, device, kmeans)."""
        features, rule = where["features"], common.selection
        train_labels = np.load(layout.labels_file(features, "train"))
        if rule.split == "validation":
            try:
                candidates, val_idx = carve_validation(train_labels, data.validation_classes, common.seed)
            except ValueError as err:
                raise DataSettingError(str(err), "validation_classes") from None
            val_labels = train_labels[val_idx]
        else:
            candidates, val_idx = np.arange(len(train_labels)), None
            val_labels = np.load(layout.labels_file(features, "test")) if rule.split == "test" else None
        try:
            pool, per_batch = training_pool(
                train_labels, candidates, data.class_subsample, data.class_sampling, common.seed
            )
        except ValueError as err:
            raise DataSettingError(str(err)) from None
        batch = getattr(settings, "batch_size", None)  # vanilla draws no batch
        if per_batch is not None and batch is not None:  # a batch no draw of classes could fill
            sizes = np.sort(np.bincount(train_labels[pool]))[::-1]
            most = int(sizes[:per_batch].sum())
            if batch > most:
                raise DataSettingError(
                    f"a batch of {batch} cannot be drawn from {per_batch} classes: "
                    f"the {per_batch} largest training classes hold {most:,} images",
                    "class_subsample",
                )
        classes = np.unique(train_labels[pool])
        info = json.loads(layout.info_file(features).read_text())
        kmeans = {k: v for k, v in (where.pop("kmeans") or {}).items() if k != "seed"}
        return cls(
            settings=settings, common=common, data=data, kmeans=kmeans, feature_dim=info["feature_dim"],
            train_labels=train_labels, val_idx=val_idx, val_labels=val_labels, pool=pool,
            classes_per_batch=per_batch, classes=classes,
            dim=settings.embedding_dim or data.embedding_dim or len(classes), **where,
        )  # fmt: skip

    def cached(self, split: str = "train") -> np.ndarray:
        """The validation rows of a cached feature array (centre crops)."""
        if self.common.selection.split == "test":
            return np.load(layout.feature_file(self.features, "test"))
        return np.load(layout.feature_file(self.features, split))[self.val_idx]

    def scores(self, emb: np.ndarray) -> dict:
        """Validation scores of an embedding, l2-normalised as its objective measures it
        (:mod:`dscl.training.guard`: a non-finite or collapsed embedding ends the run)."""
        check_values(emb)
        if self.method.normalized:
            emb = l2_normalize(emb)
        check_spread(emb)
        return validation_scores(emb, self.val_labels, self.common.seed, **self.kmeans)

    def stopper(self, validate) -> EarlyStopping:
        """Model selection validating with ``validate(model) -> scores`` (None: none)."""
        return EarlyStopping(validate, self.settings.validate_every, self.common.selection)

    def loop_options(self, seed: int, checkpointer, log, stopper: EarlyStopping) -> LoopOptions:
        """The loops' options of the run with ``seed`` that every kind of learning shares
        (a strategy adds its own)."""
        s = self.settings
        return LoopOptions(
            iterations=s.iterations,
            batch_size=s.batch_size,
            optim=OptimizerConfig(s.optimizer, s.lr, s.momentum, s.weight_decay, backbone_lr=s.backbone_lr),
            seed=seed,
            device=self.device,
            classes_per_batch=self.classes_per_batch,
            checkpointer=checkpointer,
            log=log,
            stopper=stopper,
        )
