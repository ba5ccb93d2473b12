"""Both variants' scores (dscl.scoring.scores), NMI (dscl.scoring.nmi) and the rows'
normalisation (dscl.linalg)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from dscl.evaluation.metrics import recall_at_k
from dscl.linalg import l2_normalize
from dscl.scoring.nmi import nmi
from dscl.scoring.scores import evaluate_embedding


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
