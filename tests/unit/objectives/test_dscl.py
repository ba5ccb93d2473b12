import itertools
import math

import numpy as np
import pytest
import torch

from dscl.objectives.dscl import DSCLLoss, dscl_gradient, dscl_loss, subspace_loss_and_gradient


def naive_loss(f: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. (10) written densely: C = Y pinv(Y) and F pinv(F), both n x n, float64."""
    uniq = torch.unique(labels)
    y = (labels[:, None] == uniq[None, :]).double()  # (n, k)
    c = y @ torch.linalg.pinv(y)  # (n, n)
    f64 = f.double()
    return len(uniq) - torch.trace(c @ f64 @ torch.linalg.pinv(f64))


def naive_gradient(f: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. (8) written densely: -2 (I - F F^+) C (F^+)^T, an n x n formula."""
    uniq = torch.unique(labels)
    y = (labels[:, None] == uniq[None, :]).double()
    c = y @ torch.linalg.pinv(y)
    f64 = f.double()
    fp = torch.linalg.pinv(f64)  # (d, n)
    eye = torch.eye(f.shape[0], dtype=torch.float64)
    return -2.0 * (eye - f64 @ fp) @ c @ fp.T


def random_batch(n, d, k, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    f = torch.randn(n, d, generator=gen, dtype=dtype)
    labels = torch.randint(0, k, (n,), generator=gen)
    labels[:k] = torch.arange(k)  # every class present
    return f, labels


def test_matlab_gradient_check():
    """The authors' MATLAB check: n=10, d=4, C = Y Y^+ with a random real rank-7 Y;
    the closed form against central finite differences of tr(X pinv(X) C)."""
    gen = np.random.default_rng(0)
    n, d, rank_of_c = 10, 4, 7
    y = gen.random((n, rank_of_c)) * 10
    c = y @ np.linalg.pinv(y)
    f = gen.random((n, d)) * 10 - 5
    q, _ = np.linalg.qr(y)  # orthonormal basis of col(Y): C = Q Q^T
    loss, grad = subspace_loss_and_gradient(torch.from_numpy(f), torch.from_numpy(q))
    eps = 1e-7
    approx = np.zeros((n, d))
    for i in range(n):
        for j in range(d):
            e = np.zeros((n, d))
            e[i, j] = eps
            x1, x2 = f + e, f - e
            approx[i, j] = (np.trace(x1 @ np.linalg.pinv(x1) @ c) - np.trace(x2 @ np.linalg.pinv(x2) @ c)) / (
                2 * eps
            )
    # grad is that of Loss = k - tr(C F F^+): the opposite of the MATLAB "Real_gradient".
    assert np.linalg.norm(-grad.numpy() - approx) < 1e-5 * np.linalg.norm(approx)
    assert math.isclose(float(loss), rank_of_c - np.trace(c @ f @ np.linalg.pinv(f)), rel_tol=1e-10)


@pytest.mark.parametrize("n,d,k", [(12, 3, 4), (15, 6, 3), (9, 4, 9)])
def test_autograd_gradcheck(n, d, k):
    f, labels = random_batch(n, d, k, seed=n)
    f.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: dscl_loss(x, labels), (f,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "n,d,k",
    [(40, 5, 8), (40, 8, 5), (30, 30, 6), (50, 10, 50), (60, 7, 7)],
    ids=["d<k", "d>k", "d=n", "singletons", "d=k"],
)
def test_against_dense_formula(n, d, k):
    f, labels = random_batch(n, d, k, seed=n + d)
    labels = labels * 7 - 3  # arbitrary integer labels, not 0..k-1
    f.requires_grad_(True)
    loss = dscl_loss(f, labels)
    loss.backward()
    assert torch.allclose(loss, naive_loss(f.detach(), labels), atol=1e-10)
    assert torch.allclose(f.grad, naive_gradient(f.detach(), labels), atol=1e-9)
    assert torch.allclose(dscl_gradient(f.detach(), labels), f.grad, atol=1e-12)


def test_rank_deficient_embeddings():
    f, labels = random_batch(40, 8, 5, seed=3)
    f = f[:, :3] @ torch.randn(3, 8, dtype=torch.float64)  # rank 3 < d
    grad = dscl_gradient(f, labels)
    assert torch.isfinite(grad).all()
    assert torch.allclose(grad, naive_gradient(f, labels), atol=1e-8)
    assert torch.allclose(dscl_loss(f, labels), naive_loss(f, labels), atol=1e-8)


def test_float32_matches_float64():
    f, labels = random_batch(200, 16, 10, seed=5)
    g64 = dscl_gradient(f, labels)
    g32 = dscl_gradient(f.float(), labels)
    assert g32.dtype == torch.float32
    assert (g32.double() - g64).norm() / g64.norm() < 1e-4
    assert abs(float(dscl_loss(f.float(), labels)) - float(dscl_loss(f, labels))) < 1e-4


def test_loss_range_and_perfect_clustering():
    f, labels = random_batch(50, 6, 6, seed=2)
    assert 0.0 <= float(dscl_loss(f, labels)) <= 6.0
    onehot = (labels[:, None] == torch.arange(6)[None, :]).double()
    # F = Y Z with Z invertible reproduces C exactly: the loss is 0 and so is the gradient.
    perfect = onehot @ torch.randn(6, 6, dtype=torch.float64)
    assert abs(float(dscl_loss(perfect, labels))) < 1e-10
    assert dscl_gradient(perfect, labels).abs().max() < 1e-8


def test_invariances():
    f, labels = random_batch(60, 7, 5, seed=11)
    base = dscl_loss(f, labels)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(dscl_loss(f[perm], labels[perm]), base, atol=1e-10)
    # the gradient permutes with the batch
    assert torch.allclose(dscl_gradient(f[perm], labels[perm]), dscl_gradient(f, labels)[perm])
    renamed = torch.tensor([101, -5, 7, 3000, 42])[labels]
    assert torch.allclose(dscl_loss(f, renamed), base, atol=1e-10)
    rot, _ = torch.linalg.qr(torch.randn(7, 7, dtype=torch.float64))
    assert torch.allclose(dscl_loss(f @ rot, labels), base, atol=1e-10)
    assert torch.allclose(dscl_loss(3.5 * f, labels), base, atol=1e-10)


def test_gradient_descent_decreases_loss():
    f, labels = random_batch(100, 8, 8, seed=4)
    losses = []
    for _ in range(50):
        losses.append(float(dscl_loss(f, labels)))
        f = f - 20.0 * dscl_gradient(f, labels)
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(losses))  # monotone
    assert losses[-1] < 1e-3 * losses[0]


def test_module_and_half_precision():
    f, labels = random_batch(30, 4, 3, seed=8, dtype=torch.float32)
    module = DSCLLoss()
    assert torch.allclose(module(f, labels), dscl_loss(f, labels))
    fb = f.to(torch.bfloat16).requires_grad_(True)
    loss = dscl_loss(fb, labels)
    loss.backward()
    assert loss.dtype == torch.bfloat16 and fb.grad.dtype == torch.bfloat16


def test_chunked_surrogate_equals_full_backward():
    f, labels = random_batch(64, 5, 4, seed=9)
    w = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    dscl_loss(f @ w, labels).backward()
    full = w.grad.clone()
    w.grad = None
    grad = dscl_gradient((f @ w).detach(), labels)
    for chunk in torch.split(torch.arange(64), 16):
        ((f[chunk] @ w) * grad[chunk]).sum().backward()
    assert torch.allclose(w.grad, full, atol=1e-12)


def test_bad_input():
    f, labels = random_batch(10, 3, 2, seed=1)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        dscl_loss(f[0], labels)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        dscl_loss(f, labels[:5])
    with pytest.raises(ValueError, match="at least 2 distinct classes"):
        dscl_loss(f, torch.zeros(10, dtype=torch.long))
    bad = f.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        dscl_loss(bad, labels)
    with pytest.raises(TypeError, match="integer"):
        dscl_loss(f, labels.double())
    with pytest.raises(ValueError, match="rank 0"):
        dscl_loss(torch.zeros(10, 3, dtype=torch.float64), labels)
    with pytest.raises(ValueError, match=r"basis must have shape \(10, k\)"):
        subspace_loss_and_gradient(f, torch.zeros(4, 2, dtype=torch.float64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    f, labels = random_batch(300, 20, 10, seed=6, dtype=torch.float32)
    g_cpu = dscl_gradient(f, labels)
    g_gpu = dscl_gradient(f.cuda(), labels.cuda()).cpu()
    assert (g_gpu - g_cpu).norm() / g_cpu.norm() < 1e-4
