"""Catching a run that diverges or collapses, at the step where it does.

An update step checks its loss and every parameter's gradient before it changes any
parameter (:func:`check_finite`); each validation checks that the embeddings still spread
(:func:`check_values`: finite, not overflowing; :func:`check_spread`, on the embeddings
as the objective measures them: not constant, not on a line). Any
failure is an
:class:`UnusableError`; the loops of :mod:`dscl.training.loops` end training there,
keeping the best state validated before it, or raise :class:`DivergedError` when
nothing was validated yet.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dscl.errors import DSCLError

__all__ = [
    "CollapsedError",
    "DivergedError",
    "NonFiniteError",
    "UnusableError",
    "check_finite",
    "check_spread",
    "check_values",
]

# the embeddings' spread about their mean, relative to their size, below which they have
# collapsed (float32 rounding of a constant embedding leaves about 1e-7)
SPREAD_FLOOR = 1e-4
# the largest embedding value whose square float32 holds (distances, Gram matrices)
VALUE_CEILING = float(np.sqrt(np.finfo(np.float32).max))


class UnusableError(DSCLError, ArithmeticError):
    """A state training cannot go on from; ``what`` says what happened to it."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class NonFiniteError(UnusableError):
    """A non-finite loss, gradient or validation embedding."""

    def __init__(self, name: str):
        super().__init__(f"the {name} became NaN or infinite")


class CollapsedError(UnusableError):
    """Validation embeddings that lost their spread (constant, or on one line)."""


class DivergedError(DSCLError, ArithmeticError):
    """Training met an unusable state at ``step`` before any state was validated."""

    def __init__(self, step: int, what: str):
        super().__init__(f"{what} at step {step}, before any validated state")
        self.step = step
        self.what = what


def check_finite(loss, optimizer: torch.optim.Optimizer) -> None:
    """Raise :class:`NonFiniteError` unless ``loss`` (a number or a tensor) and the
    gradient of every parameter of ``optimizer`` are finite (one synchronisation)."""
    if not math.isfinite(float(loss.detach() if isinstance(loss, torch.Tensor) else loss)):
        raise NonFiniteError("loss")
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
        raise NonFiniteError("gradient")


def check_values(embeddings: np.ndarray) -> None:
    """Raise :class:`UnusableError` unless validation ``embeddings`` are finite and within
    :data:`VALUE_CEILING` (beyond it their squares overflow float32)."""
    x = np.asarray(embeddings)
    if not np.isfinite(x).all():
        raise NonFiniteError("validation embedding")
    largest = float(np.abs(x).max(initial=0.0))
    if largest > VALUE_CEILING:
        raise UnusableError(
            f"the validation embeddings grew to {largest:.1e} "
            f"(past {VALUE_CEILING:.1e}, where float32 squares overflow)"
        )


def check_spread(embeddings: np.ndarray) -> None:
    """Raise :class:`CollapsedError` when the rows of ``embeddings`` (n, d) have collapsed:
    their spread about the mean below :data:`SPREAD_FLOOR` of their size, or, with d >= 2,
    centred rank below 2 (every row on one line; the threshold of
    :func:`dscl.linalg.rank_truncated_svd`)."""
    x = np.asarray(embeddings, dtype=np.float64)
    centred = x - x.mean(axis=0)
    size = float(np.linalg.norm(x))
    spread = float(np.linalg.norm(centred))
    if size == 0 or spread <= SPREAD_FLOOR * size:
        raise CollapsedError(
            f"the validation embeddings collapsed to a point "
            f"(spread {spread / max(size, 1e-300):.1e} of their size)"
        )
    if x.shape[1] >= 2 and len(x) >= 2:
        s = np.linalg.svd(centred, compute_uv=False)
        rank = int((s > max(x.shape) * np.finfo(np.float32).eps * s[0]).sum())
        if rank < 2:
            raise CollapsedError("the validation embeddings collapsed onto a line (centred rank 1)")
