"""The methods the pipeline compares: a registry from a method's name to what it learns
and the objective it minimises.

A method learns ``nothing`` (the pretrained feature is the embedding), the
``last_layer`` (on cached features) or ``all_layers`` (on images, with the chunked update
of Section 4.1 of [1]). Its objective is a function of the whole batch's embeddings F
(n, d) and labels (n,): DSCL (Eq. 10 of [1], with its closed-form gradient), or one of
the metric-learning baselines of Tables 1-3 and a current reference, taken from
pytorch-metric-learning where its implementation scales to the batch:

* ``triplet``: triplet loss with semi-hard negatives (Schroff et al. 2015), FaceNet's
  rule as TensorFlow's ``triplet_semihard_loss`` implements it: for every positive pair
  (a, p) the nearest negative farther than p, or the farthest negative when there is
  none; l2-normalised embeddings, Euclidean distance;
* ``lifted``: lifted structured loss (Song et al. 2016), Eq. (4) of that paper on every
  positive pair of the batch, l2-normalised embeddings;
* ``npairs``: multi-class N-pair loss (Sohn 2016), ``pytorch_metric_learning.losses.NPairsLoss``
  with the l2 regulariser of the embeddings that paper uses;
* ``multisim``: multi-similarity loss and miner (Wang et al. 2019),
  ``pytorch_metric_learning`` (cosine similarity).

pytorch-metric-learning's semi-hard triplet miner and lifted structured loss materialise
an n x n x n mask of triplets or a (positive pairs x negative pairs) mask: at the paper's
batch of n = 1260 that is 2e9 entries for the miner and about 2e10 for the lifted loss
(CUB's 100 training classes). The two are therefore written here in O(n^2) memory, and the tests
check them against pytorch-metric-learning on batches small enough for both.

Every objective is exact for the whole batch, so under the chunked update its gradient
with respect to F (one autograd pass on F alone, the closed form for DSCL) is
back-propagated chunk by chunk exactly as for DSCL.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from dscl.loss import dscl_loss, dscl_loss_and_gradient

__all__ = ["Method", "METHODS", "LEARNS", "OBJECTIVES", "Objective", "get_method", "make_objective",
           "triplet_semihard_loss", "lifted_structure_loss"]

LEARNS = ("nothing", "last_layer", "all_layers")


@dataclass(frozen=True)
class Method:
    name: str
    learns: str  # one of LEARNS
    objective: str | None  # a key of OBJECTIVES, "softmax" (classification), or None
    title: str  # as the tables print it

    @property
    def normalized(self) -> bool:
        """Whether the objective sees l2-normalised embeddings (then so does evaluation)."""
        return self.objective in OBJECTIVES and OBJECTIVES[self.objective].normalized


# --------------------------------------------------------------------------------------
# Objectives of a batch's embeddings
# --------------------------------------------------------------------------------------
def _squared_distances(x: Tensor) -> Tensor:
    """Squared Euclidean distances of the rows of ``x`` (n, n)."""
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)


def _pairwise_distance(x: Tensor) -> Tensor:
    """Euclidean distances of the rows of ``x`` (n, n), with a gradient safe at 0."""
    return torch.sqrt(_squared_distances(x) + 1e-12)


def triplet_semihard_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.2) -> Tensor:
    """Triplet loss with semi-hard negatives (FaceNet; TensorFlow's ``triplet_semihard_loss``).

    On l2-normalised embeddings and squared Euclidean distances D: for every positive
    pair (a, p), a != p, the negative n is the nearest to a with D(a, n) > D(a, p), or
    the farthest from a when no negative is that far; the loss is the mean over the
    positive pairs of ``max(0, D(a, p) - D(a, n) + margin)``. O(n^2) memory: each
    anchor's negative distances are sorted once and searched.
    """
    d = _squared_distances(F.normalize(embeddings, dim=1))
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    if not bool(pos.any()) or bool(same.all()):
        return embeddings.sum() * 0.0
    dd = d.detach()
    # each anchor's negative distances in increasing order, its positives pushed past them
    neg_sorted, order = torch.sort(torch.where(same, dd.max() + 1.0, dd), dim=1)
    n_neg = (~same).sum(1, keepdim=True)
    first = torch.searchsorted(neg_sorted, dd.contiguous(), right=True)  # first one farther
    chosen = torch.gather(order, 1, torch.where(first < n_neg, first, n_neg - 1))  # (n, n)
    a, p = pos.nonzero(as_tuple=True)
    return torch.relu(d[a, p] - d[a, chosen[a, p]] + margin).mean()


def lifted_structure_loss(embeddings: Tensor, labels: Tensor, neg_margin: float = 1.0,
                          pos_margin: float = 0.0) -> Tensor:
    """Lifted structured loss (Song et al. 2016, Eq. 4), on l2-normalised embeddings.

    For every positive pair (i, j), i < j:
    ``J_ij = log(sum_{k in N_i} exp(a - D_ik) + sum_{l in N_j} exp(a - D_jl)) + D_ij - b``
    with a = ``neg_margin``, b = ``pos_margin``, and the loss is ``mean(max(0, J_ij)^2) / 2``
    over the pairs: pytorch-metric-learning's ``LiftedStructureLoss`` (same distance,
    margins and reduction) in O(n^2) memory, the per-example sums computed once.
    """
    d = _pairwise_distance(F.normalize(embeddings, dim=1))
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    if not bool(pos.any()) or bool(same.all()):
        return embeddings.sum() * 0.0
    # s_i = log sum_{k in N_i} exp(a - D_ik); -inf where i has no negative
    s = torch.logsumexp(torch.where(same, torch.full_like(d, -torch.inf), neg_margin - d), dim=1)
    # J for every ordered pair, kept on the positive ones (pml counts each unordered pair
    # twice and halves: the mean is the same). Dense on purpose: gathering s[i], s[j] for
    # the pairs back-propagates through an index accumulation whose order varies between
    # runs on the CPU, and the gradient with it; broadcasting keeps it bit-reproducible.
    j_all = torch.logaddexp(s[:, None], s[None, :]) + d - pos_margin
    return torch.where(pos, torch.relu(j_all) ** 2, 0.0).sum() / pos.sum() / 2


def _npairs(l2_reg: float = 0.002) -> Callable[[Tensor, Tensor], Tensor]:
    from pytorch_metric_learning import losses, regularizers

    loss = losses.NPairsLoss(embedding_regularizer=regularizers.LpRegularizer(),
                             embedding_reg_weight=l2_reg)
    return lambda f, y: loss(f, y)


def _multisim(alpha: float = 2.0, beta: float = 50.0, base: float = 0.5,
              epsilon: float = 0.1) -> Callable[[Tensor, Tensor], Tensor]:
    from pytorch_metric_learning import losses, miners

    loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
    miner = miners.MultiSimilarityMiner(epsilon=epsilon)
    return lambda f, y: loss(f, y, miner(f, y))


def _bind(fn):
    """A factory: settings -> ``fn`` of (F, labels) with those settings."""
    return lambda **kw: (lambda f, y: fn(f, y, **kw))


@dataclass(frozen=True)
class ObjectiveSpec:
    factory: Callable[..., Callable[[Tensor, Tensor], Tensor]]
    defaults: Mapping[str, float]
    normalized: bool  # the objective measures l2-normalised embeddings
    closed_form: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None


OBJECTIVES: dict[str, ObjectiveSpec] = {
    "dscl": ObjectiveSpec(_bind(dscl_loss), {}, False, dscl_loss_and_gradient),
    "triplet": ObjectiveSpec(_bind(triplet_semihard_loss), {"margin": 0.2}, True),
    "lifted": ObjectiveSpec(_bind(lifted_structure_loss), {"neg_margin": 1.0, "pos_margin": 0.0}, True),
    "npairs": ObjectiveSpec(_npairs, {"l2_reg": 0.002}, False),
    "multisim": ObjectiveSpec(_multisim, {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1}, True),
}


@dataclass(frozen=True)
class Objective:
    """A batch objective: ``objective(F, labels)`` is the loss (differentiable in F);
    :meth:`loss_and_gradient` returns it with dLoss/dF, for the chunked update."""

    name: str
    settings: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        spec = OBJECTIVES[self.name]
        object.__setattr__(self, "_fn", spec.factory(**{**spec.defaults, **self.settings}))

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self._fn(embeddings, labels)

    def loss_and_gradient(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        spec = OBJECTIVES[self.name]
        if spec.closed_form is not None:  # DSCL: Eqs. 8-9, no autograd
            return spec.closed_form(embeddings, labels)
        with torch.enable_grad():
            f = embeddings.detach().requires_grad_(True)
            loss = self._fn(f, labels)
            if not loss.requires_grad:  # nothing to learn from this batch (no pairs)
                return loss.detach(), torch.zeros_like(f)
            (grad,) = torch.autograd.grad(loss, f)
        return loss.detach(), grad


def make_objective(name: str, settings: Mapping[str, float] | None = None) -> Objective:
    """The objective ``name`` with ``settings`` overriding its defaults; an unknown name
    or setting raises ValueError naming the valid ones."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; valid names: {list(OBJECTIVES)}")
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(OBJECTIVES[name].defaults))
    if unknown:
        raise ValueError(f"unknown loss setting(s) {unknown} for {name!r}; expected "
                         f"{sorted(OBJECTIVES[name].defaults) or 'none'}")
    return Objective(name, settings)


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------
_TITLES = {"dscl": "Ours", "triplet": "Triplet s.h.", "lifted": "Lifted struct",
           "npairs": "Npairs", "multisim": "Multi-similarity"}


def _registry() -> dict[str, Method]:
    methods = {
        "vanilla": Method("vanilla", "nothing", None, "Vanilla backbone"),
        "softmax": Method("softmax", "all_layers", "softmax", "Softmax regression"),
    }
    for objective, title in _TITLES.items():
        methods[f"{objective}_last"] = Method(f"{objective}_last", "last_layer", objective,
                                              f"{title} (last layer)")
        methods[f"{objective}_e2e"] = Method(f"{objective}_e2e", "all_layers", objective,
                                             f"{title} (end-to-end)")
    return methods


METHODS: dict[str, Method] = _registry()


def get_method(name: str) -> Method:
    """The registered method ``name``; ValueError naming the valid ones otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names: {list(METHODS)}")
    return METHODS[name]
