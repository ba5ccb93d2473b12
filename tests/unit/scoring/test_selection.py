"""Validation classes, early stopping and per-batch class sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dscl.objectives import make_objective
from dscl.scoring.scores import validation_scores
from dscl.scoring.selection import EarlyStopping, SelectionRule, carve_validation
from dscl.training import BatchSampler, LoopOptions, OptimizerConfig, train_last_layer
from dscl.training.checkpoint import Checkpointer


def test_validation_classes_are_carved_from_the_training_classes():
    labels = np.repeat(np.arange(10, 35), 4)  # 25 classes
    train, val = carve_validation(labels, 5, seed=0)
    assert len(np.unique(labels[val])) == 5 and len(np.unique(labels[train])) == 20
    assert not set(labels[train]) & set(labels[val])  # class-disjoint
    assert sorted(np.concatenate([train, val])) == list(range(len(labels)))
    again, _ = carve_validation(labels, 5, seed=0)
    other, _ = carve_validation(labels, 5, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert len(carve_validation(labels, 0, seed=0)[1]) == 0
    with pytest.raises(ValueError, match=r"must be in \[0, 23\] for 25 training classes"):
        carve_validation(labels, 24, seed=0)


def _scripted(values):
    """A validation whose score at each call is the next of ``values``."""
    it = iter(values)
    return lambda model: {
        "without_sc": {"recall@1": next(it), "nmi": 0.0},
        "with_sc": {"recall@1": 0.0, "nmi": 0.0},
    }


def test_early_stopping_keeps_the_best_state_and_honours_patience():
    model = nn.Linear(2, 2)
    stopper = EarlyStopping(_scripted([50, 60, 60, 55, 54]), every=10, rule=SelectionRule(patience=3))
    assert stopper.due(0, 40) and stopper.due(10, 40) and not stopper.due(15, 40)
    assert stopper.due(37, 37)  # the last step is always validated
    best_weight = None
    for step in (0, 10, 20, 30, 40):
        with torch.no_grad():
            model.weight.fill_(step)
        values = stopper(step, model)
        assert set(values) == {
            "val/without_sc/recall@1",
            "val/without_sc/nmi",
            "val/with_sc/recall@1",
            "val/with_sc/nmi",
        }
        if step == 10:
            best_weight = model.weight.detach().clone()
        assert stopper.stop == (step == 40)  # 3 validations without improvement
    assert stopper.best_step == 10  # a tie (60 at step 20) keeps the earlier step
    assert stopper.restore(model) == 10 and torch.equal(model.weight, best_weight)
    restored = EarlyStopping(None, 0)
    restored.load_state_dict(stopper.state_dict())
    assert restored.best_step == 10 and restored.since_best == 3
    with pytest.raises(ValueError, match="variant must be one of"):
        SelectionRule(variant="both")
    with pytest.raises(ValueError, match="split must be one of"):
        SelectionRule(split="train")


def test_validation_scores_are_percent():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    emb = np.eye(3)[labels] * 10 + 0.01 * rng.normal(size=(60, 3))
    scores = validation_scores(emb.astype(np.float32), labels)
    assert scores["without_sc"]["recall@1"] == 100.0 and scores["without_sc"]["nmi"] == 100.0


def test_validation_clusters_as_the_test_nmi_of_the_dataset(monkeypatch):
    """Validation's k-means is seeded and iterated as the dataset's test k-means: SOP's
    faiss k-means from points drawn at random (20 iterations; greedy k-means++ over its
    1,000 validation classes cost 387 s per validation), k-means++ elsewhere."""
    from dscl import config
    from dscl.scoring import scores as scores_module
    from dscl.scoring.kmeans import sampled_kmeans
    from dscl.scoring.nmi import nmi

    cfg = config.load()
    assert cfg.kmeans_options("sop") == {
        "seed": 0, "kmeans_niter": 20, "kmeans_nredo": 1, "kmeans_backend": "auto", "seeding": "random",
    }  # fmt: skip
    assert cfg.kmeans_options("digits")["seeding"] == "kmeans++"
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(40), 3)
    emb = (rng.normal(size=(40, 16))[labels] + 0.8 * rng.normal(size=(120, 16))).astype(np.float32)
    got = validation_scores(emb, labels, 3, seeding="random", kmeans_niter=20, kmeans_nredo=1)
    rep = scores_module.l2_normalize(torch.from_numpy(emb))
    want = round(100 * nmi(labels, sampled_kmeans(rep, 40, seed=3, niter=20)), 2)
    assert got["without_sc"]["nmi"] == want
    monkeypatch.setattr(scores_module, "kmeans", None)  # k-means++ is not called
    assert validation_scores(emb, labels, 3, seeding="random", kmeans_niter=20, kmeans_nredo=1) == got
    with pytest.raises(ValueError, match="seeding must be one of"):
        validation_scores(emb, labels, seeding="kmeans||")


def test_per_batch_classes_cover_every_training_image():
    labels = np.repeat(np.arange(40), 5)
    pool = np.flatnonzero(labels % 10 != 0)  # 36 classes in the pool
    sampler = BatchSampler(pool, 30, labels, classes_per_batch=8)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        batch = sampler(rng)
        assert len(batch) == 30 and len(set(batch)) == 30 and set(batch) <= set(pool)
        assert len(np.unique(labels[batch])) <= 8
        seen |= set(batch.tolist())
    assert seen == set(pool.tolist())  # classes are drawn anew: all images get seen
    with pytest.raises(ValueError, match=r"classes per batch must be in \[2, 36\]"):
        BatchSampler(pool, 30, labels, classes_per_batch=37)


def _blobs(seed=0, classes=8, per_class=30, d=6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 3
    labels = np.repeat(np.arange(classes), per_class)
    x = centres[labels] + rng.normal(size=(len(labels), d))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(labels)


def _train_head(iterations, checkpointer, log, stopper_every=4):
    x, y = _blobs()
    train_idx, val_idx = carve_validation(y.numpy(), 3, seed=0)

    def validate(layer):
        with torch.no_grad():
            return validation_scores(layer(x[val_idx]).numpy(), y[val_idx].numpy())

    torch.manual_seed(0)
    head = nn.Linear(6, 5)
    stopper = EarlyStopping(validate, stopper_every)
    options = LoopOptions(
        iterations=iterations,
        batch_size=40,
        optim=OptimizerConfig("adam", 0.05),
        seed=0,
        device=torch.device("cpu"),
        checkpointer=checkpointer,
        log=log,
        stopper=stopper,
    )
    head = train_last_layer(head, x, y, train_idx, make_objective("dscl"), options)
    return head, stopper


def test_last_layer_returns_the_selected_state_and_resumes_it(tmp_path):
    logged = []
    head, stopper = _train_head(12, Checkpointer(None, "x", 1), lambda s, v: logged.append((s, v)))
    assert logged[0][0] == 0 and "loss" not in logged[0][1]  # validated before any update
    steps_with_val = [s for s, v in logged if "val/without_sc/recall@1" in v]
    assert steps_with_val == [0, 4, 8, 12]
    best = max((v["val/without_sc/recall@1"], -s) for s, v in logged if s in steps_with_val)
    assert stopper.best_step == -best[1]
    # an interrupted run resumes with the selection state it had
    calls = {"n": 0}

    def interrupt(step, values):
        calls["n"] += 1
        if step == 10:
            raise KeyboardInterrupt

    ckpt = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        _train_head(12, Checkpointer(ckpt, "run", 3), interrupt)
    resumed, again = _train_head(12, Checkpointer(ckpt, "run", 3), lambda s, v: None)
    assert again.best_step == stopper.best_step and again.best_scores == stopper.best_scores
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), resumed.state_dict().values()))


def test_a_later_step_replaces_the_best_only_beyond_the_margin():
    model = nn.Linear(2, 2)
    rule = SelectionRule(min_delta=0.5)
    stopper = EarlyStopping(_scripted([50.0, 50.5, 50.9, 51.3, 51.5]), every=1, rule=rule)
    for step in range(5):
        stopper(step, model)
    # 50.5 is not beyond 50 + 0.5; 50.9 is; 51.3 is not beyond 50.9 + 0.5; 51.5 is
    assert stopper.best_step == 4
    stopper = EarlyStopping(_scripted([50.0, 50.4, 50.3]), every=1, rule=rule)
    for step in range(3):
        stopper(step, model)
    assert stopper.best_step == 0
    with pytest.raises(ValueError, match=r"min_delta must be in \[0, 100\) points, got -1"):
        SelectionRule(min_delta=-1.0)


def _diverging_head(validate_every: int | None):
    """A last layer trained at a learning rate that overflows within a few steps (N-pairs:
    DSCL and the normalised objectives are scale-invariant, and merely stall)."""
    x, y = _blobs()
    train_idx, val_idx = carve_validation(y.numpy(), 3, seed=0)

    def validate(layer):
        with torch.no_grad():
            emb = layer(x[val_idx]).numpy()
        if not np.isfinite(emb).all():
            from dscl.training.guard import NonFiniteError

            raise NonFiniteError("validation embedding")
        return validation_scores(emb, y[val_idx].numpy(), kmeans_nredo=2)

    torch.manual_seed(0)
    head = nn.Linear(6, 5)
    start = head.weight.detach().clone()
    stopper = EarlyStopping(validate if validate_every else None, validate_every or 0)
    logged = []
    options = LoopOptions(
        iterations=30,
        batch_size=40,
        optim=OptimizerConfig("sgd", 1e30),
        seed=0,
        device=torch.device("cpu"),
        log=lambda s, v: logged.append((s, v)),
        stopper=stopper,
    )
    head = train_last_layer(head, x, y, train_idx, make_objective("npairs"), options)
    return head, stopper, start, logged


def test_a_diverging_run_stops_at_its_step_and_keeps_the_best_validated_state():
    head, stopper, start, logged = _diverging_head(validate_every=10)
    assert stopper.diverged is not None and 1 <= stopper.diverged <= 30
    assert stopper.best_step == 0 and torch.equal(head.weight, start)  # the state validated at 0
    assert [s for s, _ in logged] == list(range(stopper.diverged))  # nothing logged at or after it
    assert all(np.isfinite(v["loss"]) for s, v in logged if "loss" in v)


def test_a_divergence_before_any_validation_names_its_step():
    from dscl.training.guard import DivergedError

    with pytest.raises(
        DivergedError, match=r"became NaN or infinite at step \d+, before any validated state"
    ):
        _diverging_head(validate_every=None)
