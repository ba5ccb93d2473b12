"""The authors' visual demo (dscl.experiments.simplex): the projection onto the simplex and
the six clusters it recovers."""

import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from dscl.experiments.simplex import project_to_simplex, run_simplex_demo
from dscl.scoring.kmeans import kmeans


def test_project_to_simplex():
    x = torch.randn(200, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p = project_to_simplex(x)
    assert (p >= 0).all() and torch.allclose(p.sum(dim=1), torch.ones(200, dtype=torch.float64))
    assert torch.allclose(project_to_simplex(p), p)  # projection is idempotent
    # optimality: no point of a fine grid on the 2-simplex is closer than the projection
    grid = (
        torch.stack(torch.meshgrid(torch.linspace(0, 1, 101), torch.linspace(0, 1, 101), indexing="ij"), -1)
        .reshape(-1, 2)
        .double()
    )
    grid = grid[grid.sum(1) <= 1]
    grid = torch.cat([grid, 1 - grid.sum(1, keepdim=True)], 1)  # (m, 3) on the simplex
    q = torch.randn(20, 3, dtype=torch.float64)
    nearest_on_grid = torch.cdist(q, grid).min(1).values
    assert ((q - project_to_simplex(q)).norm(dim=1) <= nearest_on_grid + 1e-12).all()


def test_authors_visual_demo_recovers_six_clusters():
    for seed in range(3):
        demo = run_simplex_demo(n_clusters=6, iterations=150, seed=seed)
        assert (demo.final >= 0).all()
        assert torch.allclose(demo.final.sum(1), torch.ones(len(demo.final), dtype=torch.float64))
        before = adjusted_rand_score(demo.labels, kmeans(demo.initial.numpy(), 6, seed=0, nredo=10))
        after = adjusted_rand_score(demo.labels, kmeans(demo.final.numpy(), 6, seed=0, nredo=10))
        assert before < 0.2
        assert after == pytest.approx(1.0)
        assert demo.losses[-1] < demo.losses[0]
