"""Batch objectives: a function of the whole batch's embeddings F (n, d) and labels (n,).

DSCL (Eq. 10 of [1], with its closed-form gradient) and the baselines of Tables 1-3 and
a current reference: ``triplet`` (semi-hard, :mod:`dscl.objectives.pairs`), ``lifted``
(:mod:`dscl.objectives.pairs`), ``npairs`` and ``multisim`` (pytorch-metric-learning's),
``facility`` (:mod:`dscl.objectives.facility`), ``proxyanchor`` (learned proxies,
:mod:`dscl.objectives.proxies`) and ``softmax`` (:mod:`dscl.objectives.softmax`). Each is
exact for the whole batch, so the chunked update of Section 4.1 back-propagates its
gradient with respect to F chunk by chunk exactly as for DSCL.

Each objective's settings are a class of :mod:`dscl.objectives.settings`, registered in
:data:`OBJECTIVES` by the :func:`objective` decorator; the class builds the objective.
Importing this module imports no torch (settings are checked before any tensor exists).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dscl.objectives.settings import OBJECTIVES, ObjectiveSettings, objective
from dscl.schema import SchemaError, validate

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["OBJECTIVES", "Objective", "ObjectiveSettings", "check_settings", "make_objective", "objective"]

Setting = bool | float | str  # a loss setting's value (its field's type in the settings class)


def check_settings(name: str, settings: Mapping[str, Setting] | None) -> dict[str, Setting]:
    """``settings`` of objective ``name``, checked against its settings class
    (:mod:`dscl.objectives.settings`): an unknown name or setting, a value of the wrong
    type, out of its range or not among its choices raises ValueError naming what was
    expected. Returns the settings as given, as a dict (the defaults are the class's)."""
    cls = OBJECTIVES.get(name)
    settings = dict(settings or {})
    try:
        validate(settings, cls, name)
    except SchemaError as err:
        raise ValueError(f"loss settings: {err}") from None
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
        spec = OBJECTIVES.get(self.name)(**self.settings)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_fn", None if self.learns_parameters else spec.loss())
        closed = spec.closed_form()
        object.__setattr__(self, "_closed_form", closed)

    @property
    def learns_parameters(self) -> bool:
        """Whether the objective has parameters of its own (Proxy-Anchor's proxies)."""
        return type(self._spec).learned is not ObjectiveSettings.learned

    @property
    def per_example(self) -> bool:
        """Whether the loss is a mean over examples (:meth:`summed_loss` gives a chunk's
        sum): the update of all layers then back-propagates chunk by chunk directly."""
        return self._spec.per_example

    @property
    def lr_multiplier(self) -> float:
        """The learning rate of the objective's parameters, relative to the last layer's."""
        setting = self._spec.lr_setting
        return 1.0 if setting is None else float(getattr(self._spec, setting))

    def bind(self, class_ids, embedding_dim: int, seed: int = 0) -> Objective:
        """This objective with its parameters built for ``class_ids`` (initialised from
        ``seed``); itself when it has none."""
        if not self.learns_parameters:
            return self
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._spec.learned(class_ids, embedding_dim)
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
        return self._spec.normalized

    def _loss(self):
        return self._fn if self._fn is not None else self._spec.loss()  # the latter: unbound, an error

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The loss of the batch, shape (); differentiable in ``embeddings`` (n, d)."""
        if self.module is not None:
            return self.module(embeddings, labels)
        return self._loss()(embeddings, labels)

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
            loss = self._loss()(f, labels)
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
