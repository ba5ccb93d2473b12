import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from dscl.scoring.kmeans import kmeans
from dscl.scoring.spectral import spectral_clustering, spectral_embedding


def blobs(n_per, k, d, spread, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 5
    labels = np.repeat(np.arange(k), n_per)
    return (centres[labels] + spread * rng.normal(size=(n_per * k, d))).astype(np.float32), labels


def test_spectral_embedding_matches_algorithm_2_by_hand():
    x, _ = blobs(20, 4, 6, 0.5, seed=0)
    x = x.astype(np.float64)
    t = spectral_embedding(x)
    m = x - x.mean(axis=0)
    u = np.linalg.svd(m, full_matrices=False)[0][:, : np.linalg.matrix_rank(m)]
    expected = u / np.linalg.norm(u, axis=1, keepdims=True)
    assert t.shape == expected.shape
    # singular vectors are defined up to sign (and rotation within repeated values):
    # compare the projections T T^T, which do not depend on that choice
    assert np.allclose(t @ t.T, expected @ expected.T, atol=1e-8)
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0)


def test_spectral_embedding_rank_and_types():
    rng = np.random.default_rng(1)
    low = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 10))  # rank 3, centred rank <= 3
    assert spectral_embedding(low).shape == (50, 3)
    t = spectral_embedding(torch.from_numpy(low))
    assert isinstance(t, torch.Tensor) and t.shape == (50, 3)
    with pytest.raises(ValueError, match="constant"):
        spectral_embedding(np.ones((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        spectral_embedding(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        spectral_embedding(np.ones(5))


def test_spectral_clustering_recovers_blobs():
    x, labels = blobs(30, 5, 8, 0.3, seed=2)
    assign = spectral_clustering(x, 5, seed=0)
    assert adjusted_rand_score(labels, assign) == pytest.approx(1.0)


def test_kmeans_is_seeded_and_checks_k():
    x, labels = blobs(25, 3, 4, 0.2, seed=3)
    a, b = kmeans(x, 3, seed=7, nredo=5), kmeans(x, 3, seed=7, nredo=5)
    assert np.array_equal(a, b)
    # one Lloyd run from random centroids may stop in a local minimum; five restarts
    # keep the best objective
    assert adjusted_rand_score(labels, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_clusters must be in"):
        kmeans(x, 0)
