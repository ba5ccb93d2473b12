"""The DSCL loss of Eq. (10) with its closed-form gradient (Eqs. 8-9).

Notation follows [1]. For a mini-batch representation ``F`` of shape (n, d) and a
ground-truth assignment ``Y`` of shape (n, k), the ground-truth clustering matrix is
``C = Y Y^+``. We write ``C = J J^T`` with ``J = Y diag(n_c)^{-1/2}`` (n, k), whose
columns are orthonormal, exactly as the authors' TensorFlow code does.

With the thin SVD ``F = U S V^T`` restricted to the numerical rank r:

* ``F F^+ = U U^T``, so ``tr(C F F^+) = ||J^T U||^2`` and
  ``Loss(F) = k - ||J^T U||^2``                               (Eq. 10)
* ``P := F^+ J = V S^{-1} (U^T J)``                            (d, k)
* ``G := (J - F P) P^T = (J - U (U^T J)) P^T``                 (Eq. 9), and
  ``dLoss/dF = -2 G``                                          (Eq. 8)

Every product above is (n, d) x (d, d) or smaller and the products with ``J`` are
gathers/segment sums over the labels, so the cost is O(n d^2) and no (n, n) matrix
is ever formed. The backward pass never differentiates through the SVD.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dscl.linalg import rank_truncated_svd

__all__ = [
    "DSCLLoss",
    "dscl_gradient",
    "dscl_loss",
    "dscl_loss_and_gradient",
    "subspace_loss_and_gradient",
]


# --------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------
def _check_embeddings(embeddings: Tensor) -> None:
    if not isinstance(embeddings, Tensor):
        raise TypeError(f"embeddings must be a torch.Tensor, got {type(embeddings).__name__}")
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (n, d), got {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise TypeError(f"embeddings must be a floating-point tensor, got {embeddings.dtype}")
    n, d = embeddings.shape
    if n < 2 or d < 1:
        raise ValueError(f"embeddings must have n >= 2 rows and d >= 1 columns, got {(n, d)}")
    if not bool(torch.isfinite(embeddings).all()):
        raise ValueError("embeddings contain NaN or infinite values")


def _check_labels(labels: Tensor, n: int) -> None:
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # The SVD is not implemented for half types: compute in float32 and cast back.
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


# --------------------------------------------------------------------------------------
# The partition matrix C = J J^T, as operators
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _LabelBasis:
    """``J = Y diag(n_c)^{-1/2}`` applied through the labels, never materialised.

    Y is the (n, k) one-hot assignment of arbitrary integer labels.
    """

    index: Tensor  # (n,) class index in 0..k-1
    scale: Tensor  # (k,) 1 / sqrt(n_c)
    k: int

    @classmethod
    def from_labels(cls, labels: Tensor, dtype: torch.dtype, device: torch.device):
        uniq, index, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        if uniq.numel() < 2:
            raise ValueError(
                "labels must contain at least 2 distinct classes, got "
                f"{uniq.numel()} (the loss is constant for a single cluster)"
            )
        index = index.to(device)
        scale = counts.to(device=device, dtype=dtype).rsqrt()
        return cls(index=index, scale=scale, k=int(uniq.numel()))

    def t_matmul(self, x: Tensor) -> Tensor:
        """``J^T x`` for x of shape (n, m); returns (k, m). A segment sum, O(n m)."""
        out = x.new_zeros((self.k, x.shape[1]))
        out.index_add_(0, self.index, x)
        return out * self.scale[:, None]

    def matmul(self, m: Tensor) -> Tensor:
        """``J m`` for m of shape (k, p); returns (n, p). A gather, O(n p)."""
        return (m * self.scale[:, None])[self.index]


@dataclass(frozen=True)
class _DenseBasis:
    """``J`` given as an explicit (n, k) matrix with orthonormal columns."""

    j: Tensor

    @property
    def k(self) -> int:
        return self.j.shape[1]

    def t_matmul(self, x: Tensor) -> Tensor:
        return self.j.T @ x

    def matmul(self, m: Tensor) -> Tensor:
        return self.j @ m


def _loss_and_gradient(f: Tensor, basis, rtol: float | None) -> tuple[Tensor, Tensor]:
    """Return ``(Loss(F), dLoss/dF)`` for ``C = J J^T``; see the module docstring."""
    u, s, vh = rank_truncated_svd(f, rtol, zero_rank="embeddings have numerical rank 0 (all rows are zero)")
    utj = basis.t_matmul(u).T  # U^T J, (r, k)
    loss = basis.k - utj.square().sum()  # Eq. (10): k - tr(C F F^+)
    p = vh.T @ (utj / s[:, None])  # P = F^+ J = V S^-1 U^T J, (d, k)
    # Eq. (9): G = (J - F [F^+ J]) [F^+ (Y^+)^T]^T = (J - U (U^T J)) P^T,  (n, d)
    g = basis.matmul(p.T) - u @ (utj @ p.T)
    return loss, -2.0 * g  # Eq. (8): dLoss/dF = -2 G


def _from_labels(embeddings: Tensor, labels: Tensor, rtol) -> tuple[Tensor, Tensor]:
    """Loss and gradient for label-derived C, in the dtype of ``embeddings``."""
    work = embeddings.detach().to(_compute_dtype(embeddings.dtype))
    basis = _LabelBasis.from_labels(labels, work.dtype, work.device)
    loss, grad = _loss_and_gradient(work, basis, rtol)
    return loss.to(embeddings.dtype), grad.to(embeddings.dtype)


class _DSCLFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, embeddings: Tensor, labels: Tensor, rtol):
        loss, grad = _from_labels(embeddings, labels, rtol)
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: Tensor):
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
def dscl_loss(embeddings: Tensor, labels: Tensor, rtol: float | None = None) -> Tensor:
    """DSCL loss ``k - tr(C F F^+)`` of Eq. (10) of [1], with the closed-form backward.

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
        The mini-batch representation F, float32 or float64 (half types are computed in
        float32), on any device.
    labels : Tensor of shape (n,)
        Integer class labels, any values; k is the number of distinct labels (>= 2).
    rtol : float, optional
        Relative singular-value threshold of the pseudo-inverse; default
        ``max(n, d) * eps(dtype)``.

    Returns
    -------
    Tensor of shape ()
        The loss, in [0, k]. Its gradient is Eq. (8), ``-2 (I - F F^+) C (F^+)^T``,
        computed as Eq. (9) in O(n d^2) without forming an (n, n) matrix.

    References
    ----------
    .. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
    """
    _check_embeddings(embeddings)
    _check_labels(labels, embeddings.shape[0])
    return _DSCLFunction.apply(embeddings, labels, rtol)


def dscl_gradient(embeddings: Tensor, labels: Tensor, rtol: float | None = None) -> Tensor:
    """Gradient of :func:`dscl_loss` with respect to ``embeddings``, as a plain tensor.

    This is ``-2 G`` with G of Eq. (9) of [1]. It lets a caller back-propagate a large
    batch chunk by chunk (Section 4.1 of [1]): compute the gradient once for the whole
    batch, then for each sub-batch ``F_i`` back-propagate ``(F_i * grad_i).sum()``.

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
    labels : Tensor of shape (n,)
    rtol : float, optional
        See :func:`dscl_loss`.

    Returns
    -------
    Tensor of shape (n, d), same dtype and device as ``embeddings``, no graph attached.
    """
    return dscl_loss_and_gradient(embeddings, labels, rtol)[1]


def dscl_loss_and_gradient(
    embeddings: Tensor, labels: Tensor, rtol: float | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`dscl_loss` and :func:`dscl_gradient` from one SVD, without a graph.

    Returns
    -------
    (loss, gradient) : Tensor of shape (), Tensor of shape (n, d)
    """
    _check_embeddings(embeddings)
    _check_labels(labels, embeddings.shape[0])
    return _from_labels(embeddings, labels, rtol)


def subspace_loss_and_gradient(
    embeddings: Tensor, basis: Tensor, rtol: float | None = None
) -> tuple[Tensor, Tensor]:
    """Loss and gradient for a general target projection ``C = Q Q^T``.

    The label-free form used by the authors' gradient check, where ``C = Y Y^+`` for a
    real-valued ``Y``: pass ``Q`` (n, k), an orthonormal basis of the column space of Y.

    Parameters
    ----------
    embeddings : Tensor of shape (n, d)
    basis : Tensor of shape (n, k)
        Orthonormal columns (``Q^T Q = I``).
    rtol : float, optional
        See :func:`dscl_loss`.

    Returns
    -------
    (loss, gradient) : Tensor of shape (), Tensor of shape (n, d)
        ``k - tr(C F F^+)`` and its gradient with respect to F.
    """
    _check_embeddings(embeddings)
    if basis.ndim != 2 or basis.shape[0] != embeddings.shape[0]:
        raise ValueError(f"basis must have shape ({embeddings.shape[0]}, k), got {tuple(basis.shape)}")
    dtype = _compute_dtype(embeddings.dtype)
    return _loss_and_gradient(embeddings.detach().to(dtype), _DenseBasis(basis.to(dtype)), rtol)


class DSCLLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`dscl_loss`.

    Parameters
    ----------
    rtol : float, optional
        Relative singular-value threshold of the pseudo-inverse.
    """

    def __init__(self, rtol: float | None = None) -> None:
        super().__init__()
        self.rtol = rtol

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return dscl_loss(embeddings, labels, self.rtol)

    def extra_repr(self) -> str:
        return f"rtol={self.rtol}"
