"""Resumable training state, written atomically."""

from __future__ import annotations

import hashlib
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch

from dscl.atomic import save_torch

__all__ = ["Checkpointer", "code_digest", "files_digest"]


def files_digest(paths: Iterable[Path]) -> str:
    """SHA-256 over the names and bytes of ``paths`` (files; folders: every file under
    them, in sorted order)."""
    h = hashlib.sha256()
    for path in sorted(map(Path, paths)):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            name = f.relative_to(path) if path.is_dir() else Path(f.name)  # where it lies does not matter
            h.update(name.as_posix().encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def code_digest(package: str = "dscl") -> str:
    """SHA-256 of the package's source (every ``.py`` file under it, whatever this process
    imported): a run resumed after a change of the code starts afresh, rather than mix
    the old and the new."""
    root = Path(sys.modules[package].__file__).parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


class Checkpointer:
    """Saves and restores a training state tagged with a fingerprint of its settings.

    A checkpoint whose fingerprint differs (the settings, the code or the data changed)
    is ignored, so an interrupted run resumes only the same run. A damaged one (a
    truncated copy, a disk error) is set aside as ``<name>.damaged``, with a warning, and
    training starts afresh. :meth:`clear` removes the state once training has completed: a
    later run (new code, ``dvc repro --force``) starts afresh.
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
                try:
                    state = torch.load(self.path, map_location="cpu", weights_only=True)  # data, never code
                    if not isinstance(state, dict):
                        raise TypeError(f"a {type(state).__name__}, not a training state")
                except Exception as exc:  # torch's many ways to meet a damaged file
                    aside = self.path.with_name(self.path.name + ".damaged")
                    self.path.replace(aside)
                    warnings.warn(
                        f"{self.path} is damaged ({exc.__class__.__name__}): set aside as {aside.name}; "
                        f"training starts afresh",
                        stacklevel=2,
                    )
                    return None
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
