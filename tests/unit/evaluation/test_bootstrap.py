"""The bootstrap over test classes against explicit resampling (the classes of each draw
copied, the metrics recomputed from scratch)."""

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from dscl.evaluation.bootstrap import class_resamples, interval, paired_difference, resampled_scores
from dscl.scoring.retrieval import query_scores, retrieval_details
from dscl.scoring.scores import evaluate_embedding


def data(seed=0, n_classes=6, per=7, d=4):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes) * 3 + 1, per)
    x = rng.normal(size=(len(labels), d)) + labels[:, None] * 0.3
    return x.astype(np.float32), labels


def test_resampled_scores_equal_the_metrics_of_each_resample():
    x, labels = data()
    scores, details = evaluate_embedding(x, labels, ks=(1, 2, 4), return_details=True)
    weights = class_resamples(labels, 20, seed=3)
    got = resampled_scores(labels, details["without_sc"], weights, (1, 2, 4))
    classes = np.unique(labels)
    found = details["without_sc"]
    for b, w in enumerate(weights):
        # the per-query values over the drawn copies (neighbours stay those of the full set);
        # a class drawn twice: one class with twice its images
        rows = np.concatenate(
            [np.flatnonzero(labels == c) for c, m in zip(classes, w) for _ in range(int(m))]
        )
        sub = {key: value[rows] for key, value in found.items() if key != "assignment"}
        expected = query_scores(sub, (1, 2, 4))
        for name, value in expected.items():
            assert got[name][b] == pytest.approx(value, abs=1e-12)
        assert got["nmi"][b] == pytest.approx(
            normalized_mutual_info_score(labels[rows], found["assignment"][rows]), abs=1e-12
        )
    # unit weights: the full-data scores
    full = resampled_scores(labels, found, np.ones((1, len(classes))), (1, 2, 4))
    for name, value in scores["without_sc"].items():
        assert full[name][0] == pytest.approx(value, abs=1e-12)


def test_resamples_are_seeded_and_draw_as_many_classes_as_there_are():
    labels = np.repeat(np.arange(9), 3)
    w = class_resamples(labels, 50, seed=1)
    assert w.shape == (50, 9) and (w.sum(1) == 9).all()
    np.testing.assert_array_equal(w, class_resamples(labels, 50, seed=1))
    assert not np.array_equal(w, class_resamples(labels, 50, seed=2))
    with pytest.raises(ValueError, match="resamples"):
        class_resamples(labels, 0)


def test_intervals_and_paired_differences():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 2000)
    iv = interval(a)
    assert iv.low == pytest.approx(0.5 - 1.96 * 0.1, abs=0.02) and iv.high == pytest.approx(
        0.5 + 1.96 * 0.1, abs=0.02
    )
    assert paired_difference(a + 0.05, a).holds  # the same resamples: the shift is certain
    assert not paired_difference(a, rng.permutation(a)).holds
    with pytest.raises(ValueError, match="level"):
        interval(a, 1.5)


def test_retrieval_details_are_what_the_scores_average():
    x, labels = data(1)
    details = retrieval_details(x, labels, 4)
    assert set(details) == {"first_hit", "r", "ap", "rp"}
    assert query_scores(details, (1, 4))["recall@1"] == pytest.approx(np.mean(details["first_hit"] < 1))
