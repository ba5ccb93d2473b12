"""Writes that never leave a half-written file or folder behind."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["atomic_dir", "atomic_path", "replace_dir", "save_npy", "save_torch", "write_text"]

# temporary names beside the target: .<name>.<pid>.<random>.tmp (the pid says whose)
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _umask() -> int:
    # os.umask only sets it: set and restore (once per process; stages are single-threaded here)
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _sweep(path: Path) -> None:
    """Remove what a killed writer of ``path`` left beside it (its process is gone)."""
    for left in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        m = _TMP.match(left.name)
        if m and m["name"] == path.name and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            if left.is_dir() and not left.is_symlink():
                shutil.rmtree(left, ignore_errors=True)
            else:
                left.unlink(missing_ok=True)


def _temporary(path: Path, folder: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path)
    make = tempfile.mkdtemp if folder else tempfile.mkstemp
    made = make(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    if not folder:
        os.close(made[0])
        made = made[1]
    # mkstemp/mkdtemp create 0600/0700 whatever the umask: give the umask's permissions,
    # so that a shared DVC cache or a colleague can read the output
    os.chmod(made, (0o777 if folder else 0o666) & ~_umask())
    return Path(made)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``
    (with the umask's permissions).

    On an exception (or an interruption) the temporary file is removed and ``path`` is
    left as it was; what a killed run left is removed by the next write of ``path``.
    """
    path = Path(path)
    tmp = _temporary(path, folder=False)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole
    (:func:`replace_dir`: ``path`` is never absent)."""
    path = Path(path)
    tmp = _temporary(path, folder=True)
    try:
        yield tmp
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    """Linux's renameat2 (glibc 2.28 and later), or None. Python's os module does not
    expose the exchange of two paths, hence ctypes."""
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


def _exchange_available() -> bool:
    return _renameat2() is not None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (RENAME_EXCHANGE); False where the system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def replace_dir(new: Path, path: Path) -> None:
    """Put the folder ``new`` in the place of ``path`` (a folder or nothing). The old
    folder is swapped out in one step where the system can (Linux), so that ``path`` is
    never absent, then removed; elsewhere it is renamed aside first."""
    new, path = Path(new), Path(path)
    if not path.exists():
        os.replace(new, path)
        return
    if _exchange(new, path):  # ``new`` now holds the old folder
        shutil.rmtree(new, ignore_errors=True)
        return
    old = path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
    os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically with ``\\n`` line endings."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def save_torch(path: str | os.PathLike, obj) -> None:
    """``torch.save`` atomically and reproducibly.

    Saved straight to a file, the archive's internal folder is named after the file, and
    the temporary file's random name would change the bytes of every save. Serialised in
    memory first, the archive is named by PyTorch's default and equal inputs give equal
    bytes (DVC hashes them).
    """
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
