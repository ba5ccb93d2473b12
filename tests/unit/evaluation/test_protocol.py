"""The test evaluation's NMI: the mean over k-means seeds, each the best of its restarts,
its spread recorded; one seed is the single k-means of validation."""

from __future__ import annotations

import numpy as np
import pytest

from dscl.evaluation.bootstrap import class_resamples, resampled_scores
from dscl.evaluation.protocol import evaluate_test, kmeans_spread
from dscl.scoring.scores import evaluate_embedding

OPTIONS = {"seed": 3, "kmeans_niter": 50, "kmeans_backend": "torch"}


def blobs(separation: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(5), 40)
    x = np.eye(5, 8)[labels] * separation + rng.normal(size=(200, 8))
    return x.astype(np.float32), labels


def test_one_seed_is_the_single_kmeans_of_validation():
    x, y = blobs(1.0)
    scores, details, nmis = evaluate_test(x, y, (1, 2), seeds=1, restarts=8, **OPTIONS)
    assert scores == evaluate_embedding(x, y, (1, 2), kmeans_nredo=8, **OPTIONS)
    assert details["with_sc"]["assignment"].shape == (1, 200)
    assert nmis["without_sc"] == [scores["without_sc"]["nmi"]]


def test_the_nmi_is_the_mean_over_seeds_each_the_best_of_its_restarts():
    x, y = blobs(1.0)
    scores, details, nmis = evaluate_test(x, y, (1,), seeds=4, restarts=2, **OPTIONS)
    first = evaluate_embedding(x, y, (1,), kmeans_nredo=2, **OPTIONS)
    assert nmis["with_sc"][0] == first["with_sc"]["nmi"]
    for variant in ("with_sc", "without_sc"):
        assert len(nmis[variant]) == 4
        assert scores[variant]["nmi"] == pytest.approx(np.mean(nmis[variant]))
        assert scores[variant]["recall@1"] == first[variant]["recall@1"]  # retrieval untouched
        assert details[variant]["assignment"].shape == (4, 200)
    assert len(set(nmis["without_sc"])) > 1  # overlapping blobs: the seeds disagree


def test_the_bootstrap_averages_every_seeds_partition():
    x, y = blobs(1.0)
    _, details, nmis = evaluate_test(x, y, (1,), seeds=3, restarts=2, **OPTIONS)
    weights = np.ones((1, 5))  # the identity resample: every class once
    got = resampled_scores(y, details["without_sc"], weights, (1,))["nmi"]
    assert got[0] == pytest.approx(np.mean(nmis["without_sc"]))
    weights = class_resamples(y, 50, seed=0)
    means = resampled_scores(y, details["without_sc"], weights, (1,))["nmi"]
    singles = [
        resampled_scores(y, {**details["without_sc"], "assignment": a}, weights, (1,))["nmi"]
        for a in details["without_sc"]["assignment"]
    ]
    np.testing.assert_allclose(means, np.mean(singles, axis=0))


def test_the_spread_is_recorded_in_points_and_absent_with_one_seed():
    out = kmeans_spread([{"with_sc": [0.5, 0.52], "without_sc": [0.6, 0.6]}], 2, 0, 100)
    assert out["nmi_sd"] == {"with_sc": round(100 * np.std([0.5, 0.52], ddof=1), 2), "without_sc": 0.0}
    assert out["nmi"] == [{"with_sc": [50.0, 52.0], "without_sc": [60.0, 60.0]}]
    assert (out["seeds"], out["first_seed"], out["restarts"]) == (2, 0, 100)
    two_runs = kmeans_spread([{"v": [0.1, 0.3]}, {"v": [0.5, 0.5]}], 2, 0, 1)
    assert two_runs["nmi_sd"]["v"] == round(float(np.sqrt((np.var([10, 30], ddof=1) + 0) / 2)), 2)
    assert kmeans_spread([{"v": [0.4]}], 1, 0, 200)["nmi_sd"] == {"v": None}


def test_seeds_and_restarts_are_at_least_one():
    x, y = blobs(1.0)
    with pytest.raises(ValueError, match=">= 1"):
        evaluate_test(x, y, (1,), seeds=0, **OPTIONS)
    with pytest.raises(ValueError, match=">= 1"):
        evaluate_test(x, y, (1,), restarts=0, **OPTIONS)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_the_seeds_in_one_batch_keep_what_kmeans_keeps_for_each(backend):
    from dscl.evaluation.protocol import best_partitions
    from dscl.scoring.kmeans import kmeans

    x, _ = blobs(1.5, seed=4)
    got = best_partitions(x, 5, [7, 8, 9], 4, 50, backend)
    want = np.stack([kmeans(x, 5, seed=s, niter=50, nredo=4, backend=backend) for s in (7, 8, 9)])
    np.testing.assert_array_equal(got, want)


def test_random_seeding_is_the_libraries_kmeans_beside_the_same_search():
    """seeding="random" (SOP's many clusters): each variant's partition is faiss's k-means
    from k random points (the anchors' practice), the retrieval figures those of the
    k-means++ protocol (one search), and the partitions are kept for the bootstrap."""
    from dscl.linalg import l2_normalize
    from dscl.scoring.kmeans import sampled_kmeans
    from dscl.scoring.nmi import nmi

    rng = np.random.default_rng(5)
    y = np.concatenate([np.arange(60), rng.integers(0, 60, 240)])
    x = (rng.normal(size=(60, 16))[y] + 0.6 * rng.normal(size=(300, 16))).astype(np.float32)
    scores, details, nmis = evaluate_test(
        x, y, ks=(1, 4), seeds=2, restarts=1, seeding="random", kmeans_niter=20
    )
    plusplus, _, _ = evaluate_test(x, y, ks=(1, 4), seeds=1, restarts=1)
    expected = [nmi(y, sampled_kmeans(l2_normalize(x), 60, seed=s, niter=20)) for s in (0, 1)]
    assert nmis["without_sc"] == expected
    assert scores["without_sc"]["nmi"] == pytest.approx(np.mean(expected))
    assert details["without_sc"]["assignment"].shape == (2, 300)
    for variant in ("with_sc", "without_sc"):
        for name in ("recall@1", "recall@4", "map@r", "r_precision"):
            assert scores[variant][name] == plusplus[variant][name]
    with pytest.raises(ValueError, match="seeding must be one of"):
        evaluate_test(x, y, seeding="kmeans||")
