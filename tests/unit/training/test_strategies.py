"""One strategy per kind of learning, the typed model record, and softmax as an objective."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dscl.objectives import make_objective
from dscl.training import OptimizerConfig, freeze_batchnorm, make_optimizer, summed_step
from dscl.training.kinds import KINDS, kind_for
from dscl.training.record import MODEL_FORMAT, ModelFileError, ModelRecord
from dscl.training.strategies import strategy_for
from tests.unit.training.test_training import CPU, make_batch, make_model

BASE = {
    "format": MODEL_FORMAT,
    "method": "dscl_e2e",
    "dataset": "digits",
    "learns": "all_layers",
    "backbone": "pixels",
    "backbone_weights": "none",
    "resize": 8,
    "crop": 8,
    "feature_dim": 64,
    "embedding_dim": 5,
    "selected_on": "validation",
    "trained_classes": 5,
    "objective": "dscl",
    "normalized": False,
    "validation_classes": 2,
}


def test_a_record_is_written_in_its_fields_order_and_read_back_equal():
    outcome = {
        "weights": "none",
        "iterations": 10,
        "embedding": "head",
        "selected_step": 4,
        "environment": {},
    }
    record = ModelRecord.from_dict({**BASE, **outcome})
    written = record.to_dict()
    assert list(written) == [*BASE, *outcome]  # nothing unset written, nothing reordered
    assert ModelRecord.from_dict(written) == record
    vanilla = ModelRecord.from_dict({**BASE, "learns": "nothing", "objective": None})
    assert vanilla.to_dict()["objective"] is None  # a field of every record is written even when None
    assert vanilla.output_dim == 64 and record.output_dim == 5


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"format": 1}, "model format 1, this version reads"),
        ({"feature_dim": "64"}, r"has \['feature_dim'\] of the wrong type"),
        ({"normalized": 1}, r"has \['normalized'\] of the wrong type"),
        ({"learns": "everything"}, "learns 'everything', not one of"),
        ({"code": "import os"}, r"has fields \['code'\] this version does not know"),
    ],
)
def test_a_record_from_elsewhere_is_refused_in_one_line(change, said):
    with pytest.raises(ModelFileError, match=said):
        ModelRecord.from_dict({**BASE, **change}, "model.pt")
    with pytest.raises(ModelFileError, match=r"lacks \['crop'\]"):
        ModelRecord.from_dict({k: v for k, v in BASE.items() if k != "crop"}, "model.pt")


def test_every_kind_of_learning_has_one_strategy():
    from dscl.training.strategies import Strategy

    assert KINDS.names() == ["nothing", "last_layer", "all_layers"]  # the one registry
    assert all(isinstance(strategy_for(k), type(kind_for(k)) | Strategy) for k in KINDS.names())
    assert all(isinstance(strategy_for(k), Strategy) for k in KINDS.names())
    with pytest.raises(ValueError, match="unknown kind of learning 'everything'"):
        strategy_for("everything")


@pytest.mark.parametrize("learns", ["last_layer", "all_layers"])
def test_the_builder_makes_the_network_a_saved_state_loads_into(learns):
    """Training and loading build the network one way: from the record."""
    record = ModelRecord.from_dict({**BASE, "learns": learns})
    strategy = strategy_for(learns)
    trained = strategy.build(record, seed=3)
    again = strategy.build(record, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), again.state_dict().values()))
    loaded = strategy.loaded(record, strategy.state(trained))
    x = (
        torch.randint(0, 17, (4, 1, 8, 8), dtype=torch.uint8)
        if learns == "all_layers"
        else torch.randn(4, 64)
    )
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))
    assert strategy_for("nothing").build(record) is None


def test_softmax_is_an_objective_with_learned_parameters_only_where_it_needs_them():
    softmax = make_objective("softmax")
    assert softmax.per_example and not softmax.normalized
    assert softmax.bind(torch.arange(6), 6).learned_state() is None  # the embedding is the scores
    bound = softmax.bind(torch.arange(4), 6, seed=1)
    assert set(bound.learned_state()) == {"class_ids", "classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("chunk_size", [1, 7, 100])
def test_the_summed_step_is_the_whole_batch_cross_entropy(chunk_size):
    """Chunk by chunk, the accumulated gradients are those of the batch's mean
    cross-entropy, the classifier's included."""
    images, labels = make_batch()
    classes = torch.unique(labels)
    reference, model = make_model(), make_model()
    ref_objective = make_objective("softmax").bind(classes, 6, seed=2)
    objective = make_objective("softmax").bind(classes, 6, seed=2)
    for net in (reference, model):  # as the loop does: batch norm's statistics fixed
        net.train()
        freeze_batchnorm(net)
    ref_loss = ref_objective(reference(images), labels)
    ref_loss.backward()
    optimizer = make_optimizer(
        [{"params": list(model.parameters())}, *objective.parameter_group(1.0)], OptimizerConfig("sgd", 1e-30)
    )
    loss = summed_step(
        model, images, labels, optimizer, objective=objective, chunk_size=chunk_size, device=CPU, amp=False,
        batch_total=len(labels),
    )  # fmt: skip
    assert loss == pytest.approx(ref_loss.item(), rel=1e-6)
    pairs = [*zip(reference.parameters(), model.parameters())]
    pairs += [*zip(ref_objective.module.parameters(), objective.module.parameters())]
    for p, q in pairs:
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6)


def test_a_label_outside_the_classes_is_named():
    bound = make_objective("softmax").bind(torch.tensor([3, 13]), 2)
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the classifier's classes"):
        bound(torch.zeros(2, 2), torch.tensor([3, 7]))
    assert isinstance(bound.module, nn.Module)
