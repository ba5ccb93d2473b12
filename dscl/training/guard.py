"""Catching a diverging run at the step where it diverges.

An update step checks its loss and every parameter's gradient before it changes any
parameter (:func:`check_finite`); a non-finite one raises :class:`NonFiniteError`, and
the loops of :mod:`dscl.training.loops` end training there, keeping the best state
validated before it, or raise :class:`DivergedError` when nothing was validated yet.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DivergedError", "NonFiniteError", "check_finite"]


class NonFiniteError(ArithmeticError):
    """A non-finite loss, gradient or validation embedding; ``what`` names which."""

    def __init__(self, what: str):
        super().__init__(f"non-finite {what}")
        self.what = what


class DivergedError(ArithmeticError):
    """Training met a non-finite value at ``step`` before any state was validated."""

    def __init__(self, step: int, what: str):
        super().__init__(f"the {what} became NaN or infinite at step {step}, before any validated state")
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
