import numpy as np
import pytest
import torch

from dscl.evaluation.metrics import recall_at_k, retrieval_scores
from dscl.scoring.scores import evaluate_embedding


def brute_force_recall(x, y, ks):
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # (n, n)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")
    out = {}
    for k in ks:
        hits = [(y[order[i, :k]] == y[i]).any() for i in range(len(y))]
        out[k] = float(np.mean(hits))
    return out


@pytest.mark.parametrize("backend", ["faiss", "torch"])
@pytest.mark.parametrize("chunk", [7, 4096])
def test_recall_against_brute_force(backend, chunk):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 6)).astype(np.float32)
    y = rng.integers(0, 12, size=150)
    ks = (1, 2, 4, 8, 16)
    got = recall_at_k(x, y, ks, chunk=chunk, backend=backend)
    assert got == pytest.approx(brute_force_recall(x.astype(np.float64), y, ks), abs=1e-12)


def test_recall_excludes_the_query_even_with_duplicates():
    x = np.array([[0.0], [0.0], [10.0], [10.0]], dtype=np.float32)
    # each point's only exact duplicate has the other class: a self-match would give 1.0
    y = np.array([0, 1, 0, 1])
    for backend in ("faiss", "torch"):
        assert recall_at_k(x, y, (1,), backend=backend)[1] == 0.0
        assert recall_at_k(x, y, (3,), backend=backend)[3] == 1.0


def test_recall_bad_input():
    x = np.zeros((5, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"every K must be in \[1, 4\]"):
        recall_at_k(x, np.arange(5), (5,))
    with pytest.raises(ValueError, match=r"labels must have shape \(5,\)"):
        recall_at_k(x, np.arange(4), (1,))
    with pytest.raises(ValueError, match="backend"):
        recall_at_k(x, np.arange(5), (1,), backend="annoy")


@pytest.mark.parametrize("backend", ["faiss", "torch"])
@pytest.mark.parametrize("chunk", [5, 4096])
def test_map_at_r_and_r_precision_against_pytorch_metric_learning(backend, chunk):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    rng = np.random.default_rng(1)
    y = np.concatenate([rng.integers(0, 9, size=197), [40, 41]])  # two classes of one point
    x = (rng.normal(size=(199, 5)) + 0.8 * np.eye(5)[y % 5]).astype(np.float32)  # some signal
    got = retrieval_scores(x, y, ks=(1, 4), chunk=chunk, backend=backend)
    calc = AccuracyCalculator(
        include=("mean_average_precision_at_r", "r_precision", "precision_at_1"),
        k="max_bin_count",
        device=torch.device("cpu"),
    )
    ref = calc.get_accuracy(torch.from_numpy(x), torch.from_numpy(y), ref_includes_query=True)
    assert got["map@r"] == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-6)
    assert got["r_precision"] == pytest.approx(ref["r_precision"], abs=1e-6)
    # the lone points count for Recall@K (always a miss) but not for MAP@R (R = 0)
    assert got["recall@1"] == pytest.approx(ref["precision_at_1"] * 197 / 199, abs=1e-6)
    assert got["recall@1"] == recall_at_k(x, y, (1,), backend=backend)[1]


def test_map_at_r_by_hand():
    # on a line, no ties: class 0 at 0, 1, 1.9; class 1 at 2.2, 3
    x = np.array([[0.0], [1.0], [1.9], [2.2], [3.0]], dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1])
    # R = 2, 2, 2, 1, 1; the R nearest: 0 -> 1, 1.9 (hits 1 1); 1 -> 1.9, 0 (1 1);
    # 1.9 -> 2.2, 1 (0 1: AP (1/2) / 2); 2.2 -> 1.9 (0); 3 -> 2.2 (1)
    for backend in ("faiss", "torch"):
        got = retrieval_scores(x, y, ks=(), backend=backend)
        assert got == pytest.approx(
            {"map@r": (1 + 1 + 0.25 + 0 + 1) / 5, "r_precision": (1 + 1 + 0.5 + 0 + 1) / 5}
        )
    with pytest.raises(ValueError, match="at least two points"):
        retrieval_scores(x, np.arange(5), ks=(1,))


# -- the metrics' table: one entry per metric, read by the scores, the bootstrap and the report
def test_the_table_names_labels_and_orders_every_metric():
    from dscl.evaluation.metrics import METRICS, label, metric_names
    from dscl.report.tables import metric_columns
    from dscl.scoring.selection import SELECT_METRICS

    names = metric_names((1, 10, 100))
    assert names == ["nmi", "recall@1", "recall@10", "recall@100", "map@r", "r_precision"]
    assert metric_columns((1, 10, 100)) == names
    assert [label(n) for n in names] == ["NMI", "R@1", "R@10", "R@100", "MAP@R", "RP"]
    assert set(SELECT_METRICS) <= set(metric_names((1,)))  # what validation gives, in the table
    assert [m.name for m in METRICS if not m.paper] == ["map@r", "r_precision"]
    with pytest.raises(ValueError, match="unknown metric 'recall@x'"):
        label("recall@x")


def test_the_point_scores_and_the_bootstrap_follow_the_table(monkeypatch):
    """A metric added to the table is computed by the test evaluation and the bootstrap,
    and shown by the report, with nothing else to change."""
    from dscl.evaluation import bootstrap, metrics
    from dscl.report.tables import metric_columns
    from dscl.scoring.retrieval import QueryMetric

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8), 6)
    x = (rng.normal(size=(8, 5))[y] + 0.5 * rng.normal(size=(48, 5))).astype(np.float32)
    scores, details = evaluate_embedding(x, y, ks=(1, 4), return_details=True)
    hits = metrics.Metric(
        "hit@{k}", "H@{k}", QueryMetric("hit@{k}", lambda d, k: (d["first_hit"] < k, None), ("first_hit",))
    )
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, hits))
    monkeypatch.setattr(bootstrap, "METRICS", metrics.METRICS)
    weights = bootstrap.class_resamples(y, resamples=50, seed=1)
    out = bootstrap.resampled_scores(y, details["without_sc"], weights, (1, 4))
    assert list(out) == ["nmi", "recall@1", "recall@4", "map@r", "r_precision", "hit@1", "hit@4"]
    np.testing.assert_array_equal(out["hit@4"], out["recall@4"])
    assert metric_columns((1, 4))[-2:] == ["hit@1", "hit@4"] and metrics.label("hit@4") == "H@4"
    # the unweighted resample is the point estimate
    same = bootstrap.resampled_scores(y, details["without_sc"], np.ones((1, 8)), (1, 4))
    for name in ("recall@1", "recall@4", "map@r", "r_precision"):
        assert same[name][0] == pytest.approx(scores["without_sc"][name])
    # ... and the test evaluation's point scores, by either k-means seeding, hold it too
    from dscl.evaluation.protocol import evaluate_test

    for seeding in ("kmeans++", "random"):
        point = evaluate_test(x, y, ks=(1, 4), seeds=2, restarts=2, seeding=seeding)[0]
        for variant in ("with_sc", "without_sc"):
            assert list(point[variant])[-2:] == ["hit@1", "hit@4"], seeding
            assert point[variant]["hit@4"] == point[variant]["recall@4"]
