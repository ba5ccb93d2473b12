"""The objectives (dscl.objectives, dscl.objectives.pairs) and the method registry
(dscl.methods): checked against pytorch-metric-learning (and, for the semi-hard rule, a
direct reading of its definition), and through the chunked update of Section 4.1."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import losses, miners

from dscl.methods import METHODS, get_method
from dscl.objectives import OBJECTIVES, make_objective
from dscl.objectives.dscl import dscl_loss_and_gradient
from dscl.objectives.pairs import lifted_structure_loss, triplet_semihard_loss
from dscl.registry import Registry
from dscl.training import chunked_step, freeze_batchnorm
from tests.unit.training.test_training import make_batch, make_model


def batch(n=30, d=5, k=4, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=dtype), torch.randint(0, k, (n,), generator=gen) * 7


@pytest.mark.parametrize("margins", [(1.0, 0.0), (0.5, 0.1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_lifted_structure_equals_pytorch_metric_learning(margins, seed):
    f, y = batch(seed=seed)
    ref = losses.LiftedStructureLoss(neg_margin=margins[0], pos_margin=margins[1])
    f1 = f.clone().requires_grad_(True)
    f2 = f.clone().requires_grad_(True)
    ours = lifted_structure_loss(f1, y, *margins)
    theirs = ref(f2, y)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-9)
    ours.backward()
    theirs.backward()
    assert torch.allclose(f1.grad, f2.grad, rtol=1e-7, atol=1e-10)


def semihard_by_definition(f, y, margin):
    """FaceNet's semi-hard rule read literally, one positive pair at a time."""
    x = torch.nn.functional.normalize(f, dim=1)
    d = torch.cdist(x, x) ** 2
    terms = []
    for a in range(len(y)):
        negatives = [d[a, k] for k in range(len(y)) if y[k] != y[a]]
        for p in range(len(y)):
            if p == a or y[p] != y[a]:
                continue
            farther = [v for v in negatives if v > d[a, p]]
            dn = min(farther) if farther else max(negatives)
            terms.append(torch.relu(d[a, p] - dn + margin))
    return torch.stack(terms).mean()


@pytest.mark.parametrize("margin", [0.2, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_semihard_follows_its_definition(margin, seed):
    f, y = batch(seed=seed)
    assert float(triplet_semihard_loss(f, y, margin)) == pytest.approx(
        float(semihard_by_definition(f, y, margin)), rel=1e-9
    )


def test_triplet_semihard_uses_only_semihard_triplets_when_they_exist():
    # where every positive pair has a farther negative (separated classes), the loss is
    # over pml's semi-hard triplets, each positive pair with its nearest such negative
    f, y = batch(n=40, d=8, k=3, seed=3)
    f = 0.3 * f + 3 * torch.nn.functional.one_hot(y // 7, 8).double()
    ours = triplet_semihard_loss(f, y, 10.0)  # a margin so wide every farther negative is in it
    a, p, n = miners.TripletMarginMiner(margin=10.0, type_of_triplets="semihard", distance=_squared())(f, y)
    x = torch.nn.functional.normalize(f, dim=1)
    d = torch.cdist(x, x) ** 2
    best = {}
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
        if (ai, pi) not in best or d[ai, ni] < d[ai, best[(ai, pi)]]:
            best[(ai, pi)] = ni
    pairs = int((y[:, None] == y[None, :]).sum() - len(y))
    assert len(best) == pairs  # every pair had a semi-hard negative
    ref = torch.stack([torch.relu(d[ai, pi] - d[ai, ni] + 10.0) for (ai, pi), ni in best.items()]).mean()
    assert float(ours) == pytest.approx(float(ref), rel=1e-9)


def _squared():
    from pytorch_metric_learning.distances import LpDistance

    return LpDistance(normalize_embeddings=True, p=2, power=2)


def test_npairs_and_multisim_are_pytorch_metric_learning():
    f, y = batch()
    ref = losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)(f, y, miners.MultiSimilarityMiner(0.1)(f, y))
    assert float(make_objective("multisim")(f, y)) == pytest.approx(float(ref), rel=1e-12)
    npairs = losses.NPairsLoss()(f, y)
    with_reg = make_objective("npairs", {"l2_reg": 0.0})(f, y)
    assert float(with_reg) == pytest.approx(float(npairs), rel=1e-12)
    assert float(make_objective("npairs")(f, y)) > float(npairs)  # + the l2 regulariser


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_gradient_is_that_of_autograd(name):
    f, y = batch(dtype=torch.float64)
    objective = make_objective(name).bind(torch.unique(y), f.shape[1])
    if objective.module is not None:
        objective.module.double()
    loss, grad = objective.loss_and_gradient(f, y)
    g = f.clone().requires_grad_(True)
    ref = objective(g, y)
    ref.backward()
    assert float(loss) == pytest.approx(float(ref.detach()), rel=1e-9)
    assert torch.allclose(grad, g.grad, rtol=1e-6, atol=1e-9)
    if name == "dscl":  # the closed form of Eqs. 8-9, not autograd
        assert torch.allclose(grad, dscl_loss_and_gradient(f, y)[1])


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_gradient_is_bit_reproducible(name):
    """The same batch gives the same gradient, bit for bit (DVC hashes the models): at
    the paper's n = 1260 with few classes, where an index accumulation's order would show."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(1260, 3, generator=g)
    y = torch.randint(0, 3, (1260,), generator=g)
    objective = make_objective(name).bind(torch.arange(3), 3)
    first = objective.loss_and_gradient(f, y)[1]
    for _ in range(4):
        assert torch.equal(objective.loss_and_gradient(f, y)[1], first)


# every batch objective but DSCL (its closed form has its own test) and the per-example
# softmax: a loss added to the registry is checked here with no list to update
BATCH = [n for n in OBJECTIVES if n != "dscl" and not OBJECTIVES.get(n).per_example]


@pytest.mark.parametrize("name", BATCH)
@pytest.mark.parametrize("chunk_size", [1, 7, 100])
def test_chunked_update_equals_whole_batch_backprop(name, chunk_size):
    """Section 4.1's update with a batch objective: F embedded without a graph, dLoss/dF
    for the whole batch, chunk-by-chunk back-propagation: the whole batch's gradient
    exactly (and, for Proxy-Anchor, the proxies' gradient from the same pass)."""
    images, labels = make_batch()
    reference = make_model()
    objective = make_objective(name).bind(torch.unique(labels), reference.head.out_features, seed=3)
    reference.train()
    freeze_batchnorm(reference)
    reference.zero_grad()
    objective(reference(images), labels).backward()
    learned = list(objective.module.named_parameters()) if objective.module else []
    expected = {k: p.grad.clone() for k, p in learned}
    if objective.module is not None:
        objective.module.zero_grad()
    model = make_model()
    params = list(model.parameters()) + (list(objective.module.parameters()) if objective.module else [])
    optimizer = torch.optim.SGD(params, lr=0.0)
    chunked_step(
        model,
        images,
        labels,
        optimizer,
        objective=objective,
        chunk_size=chunk_size,
        device=torch.device("cpu"),
    )
    for k, p in model.named_parameters():
        # float32 with other batch shapes: the same sums in another order, within 1e-4 of
        # the gradient's own scale (a wrong chunk moves it by far more)
        ref = dict(reference.named_parameters())[k].grad
        assert torch.allclose(p.grad, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max())), k
    for k, p in objective.module.named_parameters() if objective.module else []:
        assert torch.allclose(p.grad, expected[k], rtol=1e-4, atol=1e-6), k


def test_proxyanchor_binds_seeded_proxies_to_the_training_classes():
    objective = make_objective("proxyanchor", {"proxy_lr_multiplier": 100.0})
    assert objective.learns_parameters and objective.normalized and objective.lr_multiplier == 100.0
    with pytest.raises(RuntimeError, match="bind"):
        objective(torch.randn(4, 3), torch.tensor([1, 1, 5, 5]))
    a = objective.bind([5, 1, 9], 3, seed=0)
    b = objective.bind([1, 5, 9], 3, seed=0)
    assert a.module.class_ids.tolist() == [1, 5, 9]
    assert torch.equal(a.module.loss.proxies, b.module.loss.proxies)
    assert not torch.equal(a.module.loss.proxies, objective.bind([1, 5, 9], 3, seed=1).module.loss.proxies)
    assert a.parameter_group(0.001)[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"labels \[7\] are not among"):
        a(torch.randn(4, 3), torch.tensor([1, 7, 5, 5]))
    assert make_objective("dscl").bind([1, 2], 3).module is None


def test_a_batch_without_pairs_gives_no_gradient():
    f = torch.randn(5, 3)
    y = torch.arange(5)  # every example alone in its class
    for name in ("triplet", "lifted"):
        loss, grad = make_objective(name).loss_and_gradient(f, y)
        assert float(loss) == 0 and not grad.any()


def test_registry():
    assert {"vanilla", "softmax", "dscl_last", "dscl_e2e"} <= set(METHODS)
    for objective in ("triplet", "lifted", "npairs", "multisim"):
        assert get_method(f"{objective}_last").learns == "last_layer"
        assert get_method(f"{objective}_e2e").learns == "all_layers"
    assert get_method("triplet_e2e").normalized and not get_method("dscl_e2e").normalized
    with pytest.raises(ValueError, match="valid names: .*dscl_last"):
        get_method("dscl_lats")
    with pytest.raises(ValueError, match=r"expected \['margin'\]"):
        make_objective("triplet", {"margn": 0.1})


def test_registry_refuses_duplicates_and_names_the_valid_entries():
    registry = Registry("widget")
    registry.register("a", 1)
    assert registry.decorator("b")(2) == 2 and registry.names() == ["a", "b"] and "a" in registry
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        registry.register("a", 3)
    with pytest.raises(ValueError, match=r"unknown widget 'c'; valid names: \['a', 'b'\]"):
        registry.get("c")


def test_importing_the_registries_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, dscl.config, dscl.methods, dscl.objectives, dscl.backbones, dscl.datasets; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_objective_is_its_settings_class_registered_by_a_decorator():
    """Each objective's settings are one class (dscl.objectives.settings): its fields the
    settings with their defaults and ranges, checked before anything is built; a new
    objective is a loss and one decorated class, and a name is registered once."""
    import functools

    from pydantic import Field

    from dscl.objectives import ObjectiveSettings, check_settings, objective

    for cls in OBJECTIVES.values():
        assert issubclass(cls, ObjectiveSettings) and OBJECTIVES.get(cls.name) is cls
        cls()  # every setting has its default
    with pytest.raises(ValueError, match=r"triplet.margin must be >= 0, got -0.5"):
        check_settings("triplet", {"margin": -0.5})
    with pytest.raises(ValueError, match=r"multisim.alpha must be a number, got 'two'"):
        check_settings("multisim", {"alpha": "two"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['margin'\] in dscl; expected \[\]"):
        check_settings("dscl", {"margin": 0.1})
    assert check_settings("lifted", {"neg_margin": 2}) == {"neg_margin": 2}  # as given

    def scaled_norm(f, y, scale):
        return scale * f.norm()

    try:

        @objective("scaled_norm", normalized=False)
        class ScaledNorm(ObjectiveSettings):
            scale: float = Field(1.0, gt=0)

            def loss(self):
                return functools.partial(scaled_norm, scale=self.scale)

        f, y = batch()
        assert float(make_objective("scaled_norm", {"scale": 2.0})(f, y)) == pytest.approx(
            2 * float(f.norm())
        )
        with pytest.raises(ValueError, match="registered twice"):
            objective("scaled_norm", normalized=False)(type("Again", (ObjectiveSettings,), {}))
    finally:
        OBJECTIVES._entries.pop("scaled_norm", None)
    with pytest.raises(ValueError, match="lr_setting 'rate' is not one of its fields"):
        objective("no_rate", normalized=False, lr_setting="rate")(type("NoRate", (ObjectiveSettings,), {}))
    assert "no_rate" not in OBJECTIVES
