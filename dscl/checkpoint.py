"""Resumable training state, written atomically."""

from __future__ import annotations

from pathlib import Path

import torch

from dscl.atomic import save_torch

__all__ = ["Checkpointer"]


class Checkpointer:
    """Saves and restores a training state tagged with a fingerprint of its settings.

    A checkpoint whose fingerprint differs (the settings changed) is ignored, so an
    interrupted run resumes only the same run. :meth:`clear` removes the state once
    training has completed: a later run (new code, ``dvc repro --force``) starts afresh.
    """

    def __init__(self, path: str | Path | None, fingerprint: str, every: int):
        self.path = None if path is None else Path(path)
        self.fingerprint = fingerprint
        self.every = max(1, int(every))

    def load(self) -> dict | None:
        """The matching saved state, or None. Read from disk once: the stage asks whether
        it resumes before the training loop restores from it."""
        if not hasattr(self, "_loaded"):
            self._loaded = None
            if self.path is not None and self.path.is_file() and self.path.stat().st_size:
                state = torch.load(self.path, map_location="cpu", weights_only=True)  # data, never code
                if state.get("fingerprint") == self.fingerprint:
                    self._loaded = state
        return self._loaded

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self._loaded = None

    def resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, rng, extra=None) -> int:
        """Restore ``model``, ``optimizer``, the NumPy generator ``rng`` and ``extra`` (any
        object with ``state_dict``/``load_state_dict``, e.g. the early-stopping state) from a
        matching checkpoint; return the iteration to start from (0 without one)."""
        state = self.load()
        if state is None:
            return 0
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        if extra is not None and state.get("extra") is not None:
            extra.load_state_dict(state["extra"])
        return int(state["iteration"])

    def maybe_save(
        self, iteration: int, total: int, model, optimizer, rng, extra=None, force: bool = False
    ) -> None:
        """Save the state every ``every`` iterations, after the last one, and when
        ``force``d (training stops early)."""
        if self.path is None or (iteration % self.every and iteration != total and not force):
            return
        state = {
            "fingerprint": self.fingerprint,
            "iteration": iteration,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": rng.bit_generator.state,
            "extra": None if extra is None else extra.state_dict(),
        }
        save_torch(self.path, state)
