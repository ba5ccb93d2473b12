"""Batch objectives: a function of the whole batch's embeddings F (n, d) and labels (n,).

DSCL (Eq. 10 of [1], with its closed-form gradient), or one of the metric-learning
baselines of Tables 1-3 and a current reference, taken from pytorch-metric-learning where
its implementation scales to the batch:

* ``triplet``: triplet loss with semi-hard negatives (Schroff et al. 2015), FaceNet's
  rule as TensorFlow's ``triplet_semihard_loss`` implements it
  (:func:`dscl.pair_losses.triplet_semihard_loss`);
* ``lifted``: lifted structured loss (Song et al. 2016, Eq. 4)
  (:func:`dscl.pair_losses.lifted_structure_loss`);
* ``npairs``: multi-class N-pair loss (Sohn 2016), ``pytorch_metric_learning.losses.NPairsLoss``
  with the l2 regulariser of the embeddings that paper uses;
* ``multisim``: multi-similarity loss and miner (Wang et al. 2019), pytorch-metric-learning's.

Every objective is exact for the whole batch, so under the chunked update of Section 4.1
its gradient with respect to F (one autograd pass on F alone, the closed form for DSCL)
is back-propagated chunk by chunk exactly as for DSCL.

Importing this module does not import torch (the pipeline's configuration checks
settings against :data:`OBJECTIVES` before any tensor exists); building an objective does.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dscl.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["OBJECTIVES", "Objective", "ObjectiveSpec", "check_settings", "make_objective"]

BatchLoss = Callable[["Tensor", "Tensor"], "Tensor"]


@dataclass(frozen=True)
class ObjectiveSpec:
    """How to build one objective.

    ``build(**settings)`` returns ``loss(F, labels)``; ``defaults`` are its settings;
    ``normalized``: it measures l2-normalised embeddings (then so do validation and
    evaluation); ``closed_form``: where given, returns ``(loss, dLoss/dF)`` without autograd.
    """

    build: Callable[..., BatchLoss]
    defaults: Mapping[str, float]
    normalized: bool
    closed_form: Callable[[], Callable[[Tensor, Tensor], tuple]] | None = None


def _dscl() -> BatchLoss:
    from dscl.loss import dscl_loss

    return dscl_loss


def _dscl_closed_form():
    from dscl.loss import dscl_loss_and_gradient

    return dscl_loss_and_gradient


def _pair_loss(name: str) -> Callable[..., BatchLoss]:
    def build(**settings) -> BatchLoss:
        from dscl import pair_losses

        fn = getattr(pair_losses, name)
        return lambda f, y: fn(f, y, **settings)

    return build


def _npairs(l2_reg: float = 0.002) -> BatchLoss:
    from pytorch_metric_learning import losses, regularizers

    loss = losses.NPairsLoss(embedding_regularizer=regularizers.LpRegularizer(), embedding_reg_weight=l2_reg)
    return lambda f, y: loss(f, y)


def _multisim(alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, epsilon: float = 0.1) -> BatchLoss:
    from pytorch_metric_learning import losses, miners

    loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
    miner = miners.MultiSimilarityMiner(epsilon=epsilon)
    return lambda f, y: loss(f, y, miner(f, y))


OBJECTIVES: Registry[ObjectiveSpec] = Registry("objective")
OBJECTIVES.register("dscl", ObjectiveSpec(lambda: _dscl(), {}, False, _dscl_closed_form))
OBJECTIVES.register("triplet", ObjectiveSpec(_pair_loss("triplet_semihard_loss"), {"margin": 0.2}, True))
OBJECTIVES.register(
    "lifted", ObjectiveSpec(_pair_loss("lifted_structure_loss"), {"neg_margin": 1.0, "pos_margin": 0.0}, True)
)
OBJECTIVES.register("npairs", ObjectiveSpec(_npairs, {"l2_reg": 0.002}, False))
OBJECTIVES.register(
    "multisim", ObjectiveSpec(_multisim, {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1}, True)
)


def check_settings(name: str, settings: Mapping[str, float] | None) -> dict[str, float]:
    """``settings`` of objective ``name``, checked: an unknown name or setting raises
    ValueError naming the valid ones. Returns the settings as a dict."""
    spec = OBJECTIVES.get(name)
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(spec.defaults))
    if unknown:
        raise ValueError(
            f"unknown loss setting(s) {unknown} for {name!r}; expected {sorted(spec.defaults) or 'none'}"
        )
    return settings


@dataclass(frozen=True)
class Objective:
    """A batch objective: ``objective(F, labels)`` is the loss (differentiable in F);
    :meth:`loss_and_gradient` returns it with dLoss/dF, for the chunked update.

    Build it with :func:`make_objective`.
    """

    name: str
    settings: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        spec = OBJECTIVES.get(self.name)
        object.__setattr__(self, "_fn", spec.build(**{**spec.defaults, **self.settings}))
        closed = spec.closed_form() if spec.closed_form is not None else None
        object.__setattr__(self, "_closed_form", closed)

    @property
    def normalized(self) -> bool:
        """Whether the objective measures l2-normalised embeddings."""
        return OBJECTIVES.get(self.name).normalized

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The loss of the batch, shape (); differentiable in ``embeddings`` (n, d)."""
        return self._fn(embeddings, labels)

    def loss_and_gradient(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, dLoss/dF)``, shapes () and (n, d), without a graph attached."""
        if self._closed_form is not None:  # DSCL: Eqs. 8-9, no autograd
            return self._closed_form(embeddings, labels)
        import torch

        with torch.enable_grad():
            f = embeddings.detach().requires_grad_(True)
            loss = self._fn(f, labels)
            if not loss.requires_grad:  # nothing to learn from this batch (no pairs)
                return loss.detach(), torch.zeros_like(f)
            (grad,) = torch.autograd.grad(loss, f)
        return loss.detach(), grad


def make_objective(name: str, settings: Mapping[str, float] | None = None) -> Objective:
    """The objective ``name`` with ``settings`` overriding its defaults; an unknown name
    or setting raises ValueError naming the valid ones.

    Examples
    --------
    >>> objective = make_objective("triplet", {"margin": 0.2})
    >>> objective.normalized
    True
    """
    return Objective(name, check_settings(name, settings))
