"""Validation classes and model selection (early stopping).

Section 4.1 of [1]: "In the same way as the baselines, we then perform early stopping".
The 2017 papers stopped on the test classes; here the stopping point is chosen on
*validation classes* carved from the training classes (:func:`carve_validation`), and
:class:`EarlyStopping` keeps the state of the best validation score.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "SELECT_METRICS",
    "SELECT_SPLITS",
    "SELECT_VARIANTS",
    "EarlyStopping",
    "SelectionRule",
    "carve_validation",
    "flatten_scores",
]

Split = Literal["validation", "test", "none"]
Metric = Literal["nmi", "recall@1", "map@r", "r_precision"]
Variant = Literal["with_sc", "without_sc"]
SELECT_SPLITS: tuple[str, ...] = get_args(Split)
SELECT_METRICS: tuple[str, ...] = get_args(Metric)
SELECT_VARIANTS: tuple[str, ...] = get_args(Variant)

Scores = dict[str, dict[str, float]]  # {"with_sc": {"nmi": .., "recall@1": ..}, ...}


def carve_validation(labels, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the training examples by class: ``n_classes`` classes drawn at random
    (seeded) become validation classes.

    Parameters
    ----------
    labels : array-like of shape (n,)
        The training labels.
    n_classes : int
        Validation classes, in [0, C - 2] for C training classes (at least two classes
        are left to train on); 0 returns an empty validation set.
    seed : int

    Returns
    -------
    ``(train_indices, validation_indices)``, sorted int64 arrays, class-disjoint.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if not 0 <= n_classes <= len(classes) - 2:
        raise ValueError(
            f"validation classes must be in [0, {len(classes) - 2}] for {len(classes)} training "
            f"classes (at least two must remain to train on), got {n_classes}"
        )
    rng = np.random.default_rng([seed, 0x5A1])  # independent of the other draws of `seed`
    held = rng.choice(classes, n_classes, replace=False) if n_classes else classes[:0]
    is_val = np.isin(labels, held)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def flatten_scores(scores: Scores, prefix: str = "val") -> dict[str, float]:
    """``{"val/with_sc/nmi": .., ...}``: curve names for the training log."""
    return {f"{prefix}/{variant}/{name}": value for variant, s in scores.items() for name, value in s.items()}


@dataclass(frozen=True)
class SelectionRule:
    """Which score selects the model.

    ``split``: "validation" (classes carved from the training classes), "test" (the test
    classes, the 2017 practice: results so selected are marked in the tables) or "none"
    (no selection: the last step). ``metric`` of ``variant`` is maximised: a later step
    replaces the best one only when it scores more than ``min_delta`` points above it
    (as Keras' ``EarlyStopping``), so that a score that moves by a hair between two
    machines does not move the selected step (the docs' "Model selection" page says how
    the margin was chosen); ``patience`` validations without such an improvement stop
    training (None: train to the end).
    """

    split: Split = "validation"
    metric: Metric = "recall@1"
    variant: Variant = "without_sc"
    patience: int | None = None
    min_delta: float = 0.5  # points (params.yaml's, chosen on validation evidence)

    def __post_init__(self):
        for name, valid in (
            ("split", SELECT_SPLITS),
            ("metric", SELECT_METRICS),
            ("variant", SELECT_VARIANTS),
        ):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {list(valid)}, got {getattr(self, name)!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 (or null), got {self.patience}")
        if not 0.0 <= self.min_delta < 100.0:
            raise ValueError(f"min_delta must be in [0, 100) points, got {self.min_delta}")


class EarlyStopping:
    """Validates a model every ``every`` steps and keeps the state of the best score.

    ``validate(model)`` returns :data:`Scores`. A later step must beat the best score by
    more than the rule's ``min_delta`` (a tie keeps the earlier step). With ``validate``
    None nothing is validated and the last state is the result. ``diverged`` is the step
    at which training met an unusable state and stopped (None: it did not), and
    ``stopped_by`` says what it was (a non-finite loss, collapsed embeddings).
    """

    def __init__(
        self,
        validate: Callable[[nn.Module], Scores] | None,
        every: int,
        rule: SelectionRule = SelectionRule(),
    ):
        if validate is not None and every < 1:
            raise ValueError(f"the validation interval must be >= 1, got {every}")
        self.validate = validate
        self.every = every
        self.rule = rule
        self.best_step: int | None = None
        self.best_scores: Scores | None = None
        self.best_state: dict | None = None
        self.since_best = 0
        self.diverged: int | None = None
        self.stopped_by: str | None = None

    @property
    def enabled(self) -> bool:
        return self.validate is not None

    def due(self, step: int, total: int) -> bool:
        return self.enabled and (step == 0 or step % self.every == 0 or step == total)

    def score(self, scores: Scores) -> float:
        return scores[self.rule.variant][self.rule.metric]

    def __call__(self, step: int, model: nn.Module) -> dict[str, float]:
        """Validate ``model`` at ``step``; returns the curve values to log."""
        scores = self.validate(model)
        margin = self.rule.min_delta
        if self.best_scores is None or self.score(scores) > self.score(self.best_scores) + margin:
            self.best_step, self.best_scores, self.since_best = step, scores, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.since_best += 1
        return flatten_scores(scores)

    @property
    def stop(self) -> bool:
        """Patience exhausted: no improvement in the last ``patience`` validations."""
        return self.rule.patience is not None and self.since_best >= self.rule.patience

    def restore(self, model: nn.Module) -> int | None:
        """Load the best state into ``model``; returns its step (None: nothing validated)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return self.best_step

    def state_dict(self) -> dict:
        return {
            "best_step": self.best_step,
            "best_scores": copy.deepcopy(self.best_scores),
            "best_state": self.best_state,
            "since_best": self.since_best,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_step = state["best_step"]
        self.best_scores = state["best_scores"]
        self.best_state = state["best_state"]
        self.since_best = state["since_best"]
