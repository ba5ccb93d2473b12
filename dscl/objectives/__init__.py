"""Batch objectives: a function of the whole batch's embeddings F (n, d) and labels (n,).

DSCL (Eq. 10 of [1], with its closed-form gradient), or one of the metric-learning
baselines of Tables 1-3 and a current reference, taken from pytorch-metric-learning where
its implementation scales to the batch:

* ``triplet``: triplet loss with semi-hard negatives (Schroff et al. 2015), FaceNet's
  rule as TensorFlow's ``triplet_semihard_loss`` implements it
  (:func:`dscl.objectives.pairs.triplet_semihard_loss`);
* ``lifted``: lifted structured loss (Song et al. 2016, Eq. 4)
  (:func:`dscl.objectives.pairs.lifted_structure_loss`);
* ``npairs``: multi-class N-pair loss (Sohn 2016), ``pytorch_metric_learning.losses.NPairsLoss``
  with the l2 regulariser of the embeddings that paper uses;
* ``multisim``: multi-similarity loss and miner (Wang et al. 2019), pytorch-metric-learning's;
* ``facility``: the NMI-based facility-location loss (Song et al. 2017), the paper's
  strongest baseline, after TensorFlow 1's ``cluster_loss`` (:mod:`dscl.objectives.facility`);
* ``proxyanchor``: Proxy-Anchor (Kim et al. 2020), pytorch-metric-learning's, with one
  learned proxy per training class (:mod:`dscl.objectives.proxies`): an objective with parameters,
  bound to a run's classes by :meth:`Objective.bind`;
* ``softmax``: softmax regression over the training classes, the classification baseline
  (:mod:`dscl.objectives.softmax`): bound to a run's classes in the same way, its loss a
  mean over examples (:attr:`Objective.per_example`).

Every objective is exact for the whole batch, so under the chunked update of Section 4.1
its gradient with respect to F (one autograd pass on F alone, the closed form for DSCL)
is back-propagated chunk by chunk exactly as for DSCL; a loss that is a mean over examples
(softmax) is back-propagated chunk by chunk directly.

Importing this module does not import torch (the pipeline's configuration checks
settings against :data:`OBJECTIVES` before any tensor exists); building an objective does.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dscl.choices import MARGIN_TYPES
from dscl.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["OBJECTIVES", "Objective", "ObjectiveSpec", "check_settings", "make_objective"]

BatchLoss = Callable[["Tensor", "Tensor"], "Tensor"]
Setting = bool | float | str  # a loss setting's value: its type is its default's


@dataclass(frozen=True)
class ObjectiveSpec:
    """How to build one objective.

    ``build(**settings)`` returns ``loss(F, labels)``; ``defaults`` are its settings (a
    setting takes values of its default's type); ``normalized``: it measures l2-normalised
    embeddings (then so do validation and evaluation); ``closed_form``: where given, returns
    ``(loss, dLoss/dF)`` without autograd; ``choices``: the values a string setting may take;
    ``learned``: where given, ``learned(class_ids, embedding_dim, **settings)`` builds the
    objective's parameters as a module ``module(F, labels) -> loss`` (then ``build`` is
    unused) and ``lr_setting`` names the setting that scales their learning rate;
    ``per_example``: the loss is a mean over examples, and the module's ``summed(F, labels)``
    gives a chunk's sum of them.
    """

    build: Callable[..., BatchLoss]
    defaults: Mapping[str, Setting]
    normalized: bool
    closed_form: Callable[[], Callable[[Tensor, Tensor], tuple]] | None = None
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    learned: Callable[..., Any] | None = None
    lr_setting: str | None = None
    per_example: bool = False


def _dscl() -> BatchLoss:
    from dscl.objectives.dscl import dscl_loss

    return dscl_loss


def _dscl_closed_form():
    from dscl.objectives.dscl import dscl_loss_and_gradient

    return dscl_loss_and_gradient


def _pair_loss(name: str) -> Callable[..., BatchLoss]:
    def build(**settings) -> BatchLoss:
        from dscl.objectives import pairs

        fn = getattr(pairs, name)
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


def _facility(**settings) -> BatchLoss:
    import torch.nn.functional as F

    from dscl.objectives.facility import facility_location_loss

    return lambda f, y: facility_location_loss(F.normalize(f, dim=1), y, **settings)


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

OBJECTIVES.register(
    "facility",
    ObjectiveSpec(
        _facility,
        {"margin_multiplier": 1.0, "enable_pam_finetuning": True, "margin_type": "nmi"},
        True,
        choices={"margin_type": MARGIN_TYPES},
    ),
)


def _unbound(**settings) -> BatchLoss:
    def loss(f, y):
        raise RuntimeError("this objective has learned parameters: bind it to the classes (Objective.bind)")

    return loss


def _proxyanchor_module(class_ids, embedding_dim, margin=0.1, alpha=32.0, proxy_lr_multiplier=10.0):
    from dscl.objectives.proxies import ProxyAnchor

    return ProxyAnchor(class_ids, embedding_dim, margin=margin, alpha=alpha)


# proxies: 10x the last layer's learning rate, which at the e2e recipe's 1e-3 is the 1e-2
# that Kim et al. give them (their backbone's 1e-4 times 100)
OBJECTIVES.register(
    "proxyanchor",
    ObjectiveSpec(
        _unbound,
        {"margin": 0.1, "alpha": 32.0, "proxy_lr_multiplier": 10.0},
        True,
        learned=_proxyanchor_module,
        lr_setting="proxy_lr_multiplier",
    ),
)


def _softmax_module(class_ids, embedding_dim):
    from dscl.objectives.softmax import SoftmaxClassifier

    return SoftmaxClassifier(class_ids, embedding_dim)


OBJECTIVES.register("softmax", ObjectiveSpec(_unbound, {}, False, learned=_softmax_module, per_example=True))


def check_settings(name: str, settings: Mapping[str, Setting] | None) -> dict[str, Setting]:
    """``settings`` of objective ``name``, checked: an unknown name or setting, a value of
    the wrong type or an unknown choice raises ValueError naming what was expected.
    Returns the settings as a dict."""
    spec = OBJECTIVES.get(name)
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(spec.defaults))
    if unknown:
        raise ValueError(
            f"unknown loss setting(s) {unknown} for {name!r}; expected {sorted(spec.defaults) or 'none'}"
        )
    for key, value in settings.items():
        default = spec.defaults[key]
        if isinstance(default, bool | str):
            ok = type(value) is type(default)
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise ValueError(
                f"loss setting {key!r} of {name!r} must be a {type(default).__name__}, got {value!r}"
            )
        if key in spec.choices and value not in spec.choices[key]:
            raise ValueError(f"{key} of {name!r} must be one of {list(spec.choices[key])}, got {value!r}")
    return settings


@dataclass(frozen=True)
class Objective:
    """A batch objective: ``objective(F, labels)`` is the loss (differentiable in F);
    :meth:`loss_and_gradient` returns it with dLoss/dF, for the chunked update.

    Build it with :func:`make_objective`.
    """

    name: str
    settings: Mapping[str, Setting] = field(default_factory=dict)
    module: Any = field(default=None, compare=False, repr=False)  # learned parameters (bind)

    def __post_init__(self):
        spec = OBJECTIVES.get(self.name)
        object.__setattr__(self, "_fn", spec.build(**{**spec.defaults, **self.settings}))
        closed = spec.closed_form() if spec.closed_form is not None else None
        object.__setattr__(self, "_closed_form", closed)

    @property
    def learns_parameters(self) -> bool:
        """Whether the objective has parameters of its own (Proxy-Anchor's proxies)."""
        return OBJECTIVES.get(self.name).learned is not None

    @property
    def per_example(self) -> bool:
        """Whether the loss is a mean over examples (:meth:`summed_loss` gives a chunk's
        sum): the update of all layers then back-propagates chunk by chunk directly."""
        return OBJECTIVES.get(self.name).per_example

    @property
    def lr_multiplier(self) -> float:
        """The learning rate of the objective's parameters, relative to the last layer's."""
        spec = OBJECTIVES.get(self.name)
        if spec.lr_setting is None:
            return 1.0
        return float({**spec.defaults, **self.settings}[spec.lr_setting])

    def bind(self, class_ids, embedding_dim: int, seed: int = 0) -> Objective:
        """This objective with its parameters built for ``class_ids`` (initialised from
        ``seed``); itself when it has none."""
        spec = OBJECTIVES.get(self.name)
        if spec.learned is None:
            return self
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = spec.learned(class_ids, embedding_dim, **{**spec.defaults, **self.settings})
        return Objective(self.name, self.settings, module)

    def parameter_group(self, lr: float) -> list[dict]:
        """The optimiser's parameter group of the objective's parameters ([] without)."""
        params = [] if self.module is None else list(self.module.parameters())
        if not params:
            return []
        return [{"params": params, "lr": lr * self.lr_multiplier}]

    def learned_state(self) -> dict | None:
        """The state of the parameters it learned, on the CPU, to save with the model (None
        without: softmax whose class scores are the embedding itself)."""
        if self.module is None or not list(self.module.parameters()):
            return None
        return self.module.cpu().state_dict()

    def summed_loss(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The sum of the examples' losses of a chunk (an objective :attr:`per_example`)."""
        if not self.per_example or self.module is None:
            raise RuntimeError(f"{self.name!r} is not a bound mean over examples")
        return self.module.summed(embeddings, labels)

    @property
    def normalized(self) -> bool:
        """Whether the objective measures l2-normalised embeddings."""
        return OBJECTIVES.get(self.name).normalized

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The loss of the batch, shape (); differentiable in ``embeddings`` (n, d)."""
        if self.module is not None:
            return self.module(embeddings, labels)
        return self._fn(embeddings, labels)

    def loss_and_gradient(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, dLoss/dF)``, shapes () and (n, d), without a graph attached. With
        learned parameters, their gradient (from the same pass) is added to their ``.grad``."""
        if self._closed_form is not None:  # DSCL: Eqs. 8-9, no autograd
            return self._closed_form(embeddings, labels)
        import torch

        if self.module is not None:
            params = [p for p in self.module.parameters() if p.requires_grad]
            with torch.enable_grad():
                f = embeddings.detach().requires_grad_(True)
                loss = self.module(f, labels)
                grads = torch.autograd.grad(loss, [f, *params])
            for p, g in zip(params, grads[1:]):
                p.grad = g if p.grad is None else p.grad + g
            return loss.detach(), grads[0]
        with torch.enable_grad():
            f = embeddings.detach().requires_grad_(True)
            loss = self._fn(f, labels)
            if not loss.requires_grad:  # nothing to learn from this batch (no pairs)
                return loss.detach(), torch.zeros_like(f)
            (grad,) = torch.autograd.grad(loss, f)
        return loss.detach(), grad


def make_objective(name: str, settings: Mapping[str, Setting] | None = None) -> Objective:
    """The objective ``name`` with ``settings`` overriding its defaults; an unknown name
    or setting raises ValueError naming the valid ones.

    Examples
    --------
    >>> objective = make_objective("triplet", {"margin": 0.2})
    >>> objective.normalized
    True
    """
    return Objective(name, check_settings(name, settings))
