import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from dscl.evaluation.metrics import recall_at_k, retrieval_scores
from dscl.linalg import l2_normalize
from dscl.scoring.nmi import nmi
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


@pytest.mark.parametrize("seed", range(5))
def test_nmi_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 2000))
    a = rng.integers(0, int(rng.integers(2, 60)), size=n) * 3 - 11
    b = np.where(rng.random(n) < 0.5, a, rng.integers(0, 40, size=n))
    for method in ("arithmetic", "geometric", "min", "max"):
        assert nmi(a, b, method) == pytest.approx(
            normalized_mutual_info_score(a, b, average_method=method), abs=1e-12
        )


def test_nmi_edge_cases():
    assert nmi([0, 0, 1, 1], [5, 5, 9, 9]) == pytest.approx(1.0)
    assert nmi([0, 0, 0], [1, 1, 1]) == 1.0
    assert nmi([0, 1, 2, 3], [0, 0, 0, 0]) == 0.0
    with pytest.raises(ValueError, match="average_method"):
        nmi([0, 1], [0, 1], "harmonic")
    with pytest.raises(ValueError, match=r"assignments must have shape \(3,\)"):
        nmi([0, 1, 2], [0, 1])


def test_evaluate_embedding_structure_and_values():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(6, 10)) * 4
    y = np.repeat(np.arange(6), 40) + 100
    x = (centres[y - 100] + rng.normal(size=(240, 10))).astype(np.float32)
    res = evaluate_embedding(x, y, ks=(1, 2, 4), seed=0)
    assert set(res) == {"with_sc", "without_sc"}
    for scores in res.values():
        assert set(scores) == {"nmi", "recall@1", "recall@2", "recall@4", "map@r", "r_precision"}
        assert 0.5 < scores["map@r"] <= scores["r_precision"] <= 1.0
        assert scores["nmi"] > 0.9 and scores["recall@1"] > 0.95
    assert res["without_sc"]["recall@1"] == recall_at_k(l2_normalize(x), y, (1,))[1]
    # deterministic for a fixed seed
    assert evaluate_embedding(x, y, ks=(1, 2, 4), seed=0) == res
    with pytest.raises(ValueError, match="at least 2 classes"):
        evaluate_embedding(x, np.zeros(240, dtype=int))


def test_l2_normalize_keeps_type():
    t = l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert isinstance(t, torch.Tensor)
    assert torch.allclose(t, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


# -- k-means: faiss and the torch implementation ----------------------------------------
def _blobs(n=1500, centers=30, std=3.0, seed=0):
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n, 24, centers=centers, cluster_std=std, random_state=seed)
    return x.astype(np.float32), y


def _naive_kmeans_plusplus(x: np.ndarray, k: int, rng) -> np.ndarray:
    """scikit-learn's greedy k-means++ written as loops over candidates, in float64."""
    n = len(x)
    trials = 2 + int(np.log(k))
    centres = [int(rng.integers(n))]
    closest = ((x - x[centres[0]]) ** 2).sum(1)
    for _ in range(1, k):
        draws = rng.random(trials) * closest.sum()
        candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws), n - 1)
        best, best_potential = None, np.inf
        for c in candidates:
            potential = np.minimum(closest, ((x - x[c]) ** 2).sum(1)).sum()
            if potential < best_potential:
                best, best_potential = c, potential
        closest = np.minimum(closest, ((x - x[best]) ** 2).sum(1))
        centres.append(int(best))
    return np.array(centres)


def test_kmeans_plusplus_seeding_is_the_greedy_rule():
    from dscl.scoring.kmeans import seed_centroids

    x, _ = _blobs(n=300, centers=8, std=3.0, seed=4)
    got = seed_centroids(torch.from_numpy(x), 8, [np.random.default_rng([5, r]) for r in range(3)])
    assert got.shape == (3, 8, 24)
    for r in range(3):
        want = _naive_kmeans_plusplus(x.astype(np.float64), 8, np.random.default_rng([5, r]))
        np.testing.assert_array_equal(got[r].numpy(), x[want])


def test_batched_lloyd_is_each_run_alone_and_chunking_changes_nothing(monkeypatch):
    from sklearn.metrics import adjusted_rand_score

    import dscl.scoring.kmeans as km

    x, y = _blobs()
    t = torch.from_numpy(x)
    centroids = km.seed_centroids(t, 30, [np.random.default_rng([0, r]) for r in range(4)])
    together = km.lloyd(t, centroids, 100)  # (4, n)
    for r in range(4):
        np.testing.assert_array_equal(km.lloyd(t, centroids[r : r + 1], 100)[0], together[r])
    assign = km.kmeans(x, 30, seed=0, nredo=8, backend="torch")
    assert normalized_mutual_info_score(y, assign) > 0.9
    monkeypatch.setattr(km, "BUDGET", 97)  # runs one by one, and points 3 or 4 at a time
    assert adjusted_rand_score(km.kmeans(x, 30, seed=0, nredo=8, backend="torch"), assign) == 1.0


def test_faiss_and_torch_refine_the_same_seeding_alike():
    from sklearn.metrics import adjusted_rand_score

    from dscl.scoring.kmeans import kmeans

    x, y = _blobs()
    by_faiss = kmeans(x, 30, seed=0, nredo=5, backend="faiss")
    by_torch = kmeans(x, 30, seed=0, nredo=5, backend="torch")
    assert adjusted_rand_score(by_faiss, by_torch) == 1.0
    assert normalized_mutual_info_score(y, by_torch) > 0.9


def test_restarts_keep_the_lowest_objective():
    from sklearn.metrics import adjusted_rand_score

    from dscl.scoring.kmeans import kmeans, objectives

    x, y = _blobs(n=600, centers=6, std=0.5, seed=1)
    assert adjusted_rand_score(y, kmeans(x, 6, seed=0, nredo=3)) == 1.0

    def objective(assign):  # the sum of squared distances to the cluster means, by loops
        return sum(((x[assign == c] - x[assign == c].mean(0)) ** 2).sum() for c in np.unique(assign))

    x, _ = _blobs(n=800, centers=40, std=4.0, seed=2)
    runs = [kmeans(x, 40, seed=3, nredo=r) for r in (1, 4, 16)]  # each the first runs of the next
    values = [objective(a) for a in runs]
    assert values[2] <= values[1] <= values[0]
    assert objectives(torch.from_numpy(x), np.stack(runs), 40) == pytest.approx(values, rel=1e-5)


def test_the_nmi_of_an_ambiguous_embedding_does_not_move_with_the_seed():
    """Overlapping clusters: one k-means run's NMI moves with its seed; the lowest
    objective of 200 runs does not (the evaluation's default)."""
    from dscl.scoring.kmeans import kmeans

    x, y = _blobs(n=500, centers=8, std=6.0, seed=7)
    once = [normalized_mutual_info_score(y, kmeans(x, 8, seed=s, nredo=1)) for s in range(8)]
    best = [normalized_mutual_info_score(y, kmeans(x, 8, seed=s)) for s in range(8)]
    assert max(once) - min(once) > 0.01
    assert max(best) - min(best) <= 0.005


def test_kmeans_empty_clusters_and_bad_input():
    from dscl.scoring.kmeans import kmeans

    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 12 points, 3 distinct
    for backend in ("torch", "faiss"):
        assign = kmeans(x, 5, seed=0, backend=backend)
        assert assign.shape == (12,) and set(assign.tolist()) <= set(range(5))
        for p in range(3):  # identical points share their cluster
            assert len(set(assign[4 * p : 4 * p + 4].tolist())) == 1
    with pytest.raises(ValueError, match=r"n_clusters must be in \[1, 12\]"):
        kmeans(x, 13)
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'faiss', 'torch'\)"):
        kmeans(x, 2, backend="sklearn")
    with pytest.raises(ValueError, match="niter and nredo must be >= 1"):
        kmeans(x, 2, nredo=0)


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
    """A metric added to the table is computed by the bootstrap and shown by the report,
    with nothing else to change."""
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
