"""Each objective's settings: one class per objective, the one source of its defaults and
ranges, registered under the objective's name by the :func:`objective` decorator.

A class is a frozen, strict pydantic dataclass (:data:`dscl.schema.SCHEMA`): its fields
are the settings a method's ``loss:`` entry of ``params.yaml`` may give, its class
attributes say how the objective is trained (``normalized``, ``per_example``,
``lr_setting``), and its methods build the objective: :meth:`loss`, :meth:`closed_form`
(DSCL's Eqs. 8-9) or :meth:`learned` (a module with parameters of its own). This module
imports no torch, so the configuration is checked before any tensor exists; each class
imports its implementation when it builds it. The docs' Extending page adds one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from dscl.choices import MarginType
from dscl.registry import Registry
from dscl.schema import schema_class

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "DSCL",
    "OBJECTIVES",
    "Facility",
    "Lifted",
    "MultiSimilarity",
    "NPairs",
    "ObjectiveSettings",
    "ProxyAnchor",
    "Softmax",
    "Triplet",
    "objective",
]

BatchLoss = Callable[["Tensor", "Tensor"], "Tensor"]


class ObjectiveSettings:
    """What every objective's settings class says and builds (the fields are its own).

    Class attributes (set by :func:`objective`): ``name``; ``normalized``: the objective
    measures l2-normalised embeddings (then so do validation and evaluation);
    ``per_example``: the loss is a mean over examples and the learned module's
    ``summed(F, labels)`` gives a chunk's sum of them; ``lr_setting``: the field that scales
    the learned parameters' learning rate (relative to the last layer's).
    """

    name: ClassVar[str]
    normalized: ClassVar[bool]
    per_example: ClassVar[bool] = False
    lr_setting: ClassVar[str | None] = None

    def loss(self) -> BatchLoss:
        """``loss(F, labels)``, differentiable in F (an objective with learned parameters
        has none before it is bound to a run's classes)."""
        raise RuntimeError(
            f"objective {self.name!r} has learned parameters: bind it to the classes (Objective.bind)"
        )

    def closed_form(self) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
        """``(loss, dLoss/dF)`` without autograd, where the objective has a closed form."""
        return None

    def learned(self, class_ids, embedding_dim: int) -> Any:
        """The module of the objective's learned parameters for ``class_ids`` (its call
        is the loss), or None for an objective without parameters."""
        return None


OBJECTIVES: Registry[type[ObjectiveSettings]] = Registry("objective")


def objective(
    name: str, *, normalized: bool, per_example: bool = False, lr_setting: str | None = None
) -> Callable[[type], type[ObjectiveSettings]]:
    """Class decorator: make the class a schema dataclass of the objective ``name``'s
    settings and register it in :data:`OBJECTIVES`."""

    def register(cls: type) -> type[ObjectiveSettings]:
        cls = schema_class(cls)
        cls.name, cls.normalized, cls.per_example, cls.lr_setting = name, normalized, per_example, lr_setting
        if lr_setting is not None and lr_setting not in cls.__pydantic_fields__:
            raise ValueError(f"objective {name!r}: lr_setting {lr_setting!r} is not one of its fields")
        return OBJECTIVES.register(name, cls)

    return register


@objective("dscl", normalized=False)
class DSCL(ObjectiveSettings):
    """Deep Spectral Clustering Learning (Eq. 10 of Law et al. 2017): no settings; its
    gradient in closed form (Eqs. 8-9, :func:`dscl.objectives.dscl.dscl_loss_and_gradient`)."""

    def loss(self) -> BatchLoss:
        from dscl.objectives.dscl import dscl_loss

        return dscl_loss

    def closed_form(self):
        from dscl.objectives.dscl import dscl_loss_and_gradient

        return dscl_loss_and_gradient


@objective("triplet", normalized=True)
class Triplet(ObjectiveSettings):
    """Triplet loss with semi-hard negatives (Schroff et al. 2015):
    :func:`dscl.objectives.pairs.triplet_semihard_loss`."""

    margin: float = Field(0.2, ge=0)

    def loss(self) -> BatchLoss:
        from dscl.objectives.pairs import triplet_semihard_loss

        return functools.partial(triplet_semihard_loss, margin=self.margin)


@objective("lifted", normalized=True)
class Lifted(ObjectiveSettings):
    """Lifted structured loss (Song et al. 2016, Eq. 4):
    :func:`dscl.objectives.pairs.lifted_structure_loss`."""

    neg_margin: float = Field(1.0, ge=0)
    pos_margin: float = Field(0.0, ge=0)

    def loss(self) -> BatchLoss:
        from dscl.objectives.pairs import lifted_structure_loss

        return functools.partial(
            lifted_structure_loss, neg_margin=self.neg_margin, pos_margin=self.pos_margin
        )


@objective("npairs", normalized=False)
class NPairs(ObjectiveSettings):
    """Multi-class N-pair loss (Sohn 2016): ``pytorch_metric_learning.losses.NPairsLoss``
    with the l2 regulariser of the embeddings (weight ``l2_reg``) that paper uses."""

    l2_reg: float = Field(0.002, ge=0)

    def loss(self) -> BatchLoss:
        from pytorch_metric_learning import losses, regularizers

        loss = losses.NPairsLoss(
            embedding_regularizer=regularizers.LpRegularizer(), embedding_reg_weight=self.l2_reg
        )
        return lambda f, y: loss(f, y)


@objective("multisim", normalized=True)
class MultiSimilarity(ObjectiveSettings):
    """Multi-similarity loss and miner (Wang et al. 2019), pytorch-metric-learning's
    ``MultiSimilarityLoss`` (``alpha``, ``beta``, ``base``) and ``MultiSimilarityMiner``
    (``epsilon``)."""

    alpha: float = Field(2.0, gt=0)
    beta: float = Field(50.0, gt=0)
    base: float = Field(0.5, ge=-1, le=1)
    epsilon: float = Field(0.1, ge=0)

    def loss(self) -> BatchLoss:
        from pytorch_metric_learning import losses, miners

        loss = losses.MultiSimilarityLoss(alpha=self.alpha, beta=self.beta, base=self.base)
        miner = miners.MultiSimilarityMiner(epsilon=self.epsilon)
        return lambda f, y: loss(f, y, miner(f, y))


@objective("facility", normalized=True)
class Facility(ObjectiveSettings):
    """The NMI-based facility-location loss (Song et al. 2017), on l2-normalised
    embeddings: :func:`dscl.objectives.facility.facility_location_loss`."""

    margin_multiplier: float = Field(1.0, ge=0)
    enable_pam_finetuning: bool = True
    margin_type: MarginType = "nmi"

    def loss(self) -> BatchLoss:
        import torch.nn.functional as F

        from dscl.objectives.facility import facility_location_loss

        settings = {
            "margin_multiplier": self.margin_multiplier,
            "enable_pam_finetuning": self.enable_pam_finetuning,
            "margin_type": self.margin_type,
        }
        return lambda f, y: facility_location_loss(F.normalize(f, dim=1), y, **settings)


# proxies: 10x the last layer's learning rate, which at the e2e recipe's 1e-3 is the 1e-2
# that Kim et al. give them (their backbone's 1e-4 times 100)
@objective("proxyanchor", normalized=True, lr_setting="proxy_lr_multiplier")
class ProxyAnchor(ObjectiveSettings):
    """Proxy-Anchor (Kim et al. 2020), one learned proxy per training class:
    :class:`dscl.objectives.proxies.ProxyAnchor`."""

    margin: float = Field(0.1, ge=0)
    alpha: float = Field(32.0, gt=0)
    proxy_lr_multiplier: float = Field(10.0, gt=0)

    def learned(self, class_ids, embedding_dim: int):
        from dscl.objectives.proxies import ProxyAnchor

        return ProxyAnchor(class_ids, embedding_dim, margin=self.margin, alpha=self.alpha)


@objective("softmax", normalized=False, per_example=True)
class Softmax(ObjectiveSettings):
    """Softmax regression over the training classes, the classification baseline: no
    settings; :class:`dscl.objectives.softmax.SoftmaxClassifier`."""

    def learned(self, class_ids, embedding_dim: int):
        from dscl.objectives.softmax import SoftmaxClassifier

        return SoftmaxClassifier(class_ids, embedding_dim)
