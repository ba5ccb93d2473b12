"""Linear algebra shared across the library: the rank-truncated thin SVD of the loss
(Eq. 10) and of test-time spectral clustering (Algorithm 2), and the rows' l2
normalisation of the embeddings (training, embedding, evaluation)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dscl._arrays import as_float_matrix

__all__ = ["l2_normalize", "rank_truncated_svd"]


def l2_normalize(embeddings):
    """Rows scaled to unit Euclidean norm (zero rows stay zero); keeps the array type."""
    was_numpy = isinstance(embeddings, np.ndarray)
    x = as_float_matrix(embeddings)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return x.cpu().numpy() if was_numpy else x


def rank_truncated_svd(
    m: Tensor, rtol: float | None = None, *, zero_rank: str = "the matrix has numerical rank 0"
) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD of ``m`` truncated to its numerical rank.

    Singular values below ``rtol * max(S)`` count as zero, the relative threshold of the
    authors' code (and of ``numpy.linalg.matrix_rank``, whose default is
    ``rtol = max(n, d) * eps``).

    Parameters
    ----------
    m : Tensor of shape (n, d)
    rtol : float, optional
        Default ``max(n, d) * eps(dtype)``.
    zero_rank : str
        The message of the ValueError raised when the rank is 0.

    Returns
    -------
    ``(U, S, Vh)`` of shapes (n, r), (r,), (r, d), r the numerical rank.
    """
    u, s, vh = torch.linalg.svd(m, full_matrices=False)  # (n, q), (q,), (q, d), q = min(n, d)
    if rtol is None:
        rtol = max(m.shape) * torch.finfo(m.dtype).eps
    r = int((s > rtol * s[0]).sum()) if s[0] > 0 else 0  # sorted in decreasing order
    if r == 0:
        raise ValueError(zero_rank)
    return u[:, :r], s[:r], vh[:r]
