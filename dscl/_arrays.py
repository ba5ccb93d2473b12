"""Conversions between the array types the library accepts (NumPy and torch)."""

from __future__ import annotations

import numpy as np
import torch


def as_float_matrix(x, name: str = "embeddings") -> torch.Tensor:
    """Return ``x`` as a 2-d floating-point tensor (float32 or float64), checked.

    NumPy arrays are wrapped without a copy where possible; tensors keep their device.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    elif not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must have at least 2 rows and 1 column, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contain NaN or infinite values")
    return x


def as_label_vector(labels, n: int | None = None, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-d int64 NumPy array, checked against length ``n``."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got {labels.shape}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {labels.dtype}")
    return labels.astype(np.int64, copy=False)


def to_numpy32(x: torch.Tensor) -> np.ndarray:
    """Contiguous float32 NumPy copy of a tensor (what faiss takes)."""
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
