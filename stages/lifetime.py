"""A stage's life tied to its parent's: imported first (``stages/__init__.py``), before any
heavy import, so that no window of seconds (torch's import) is left in which the parent can
die unnoticed."""

from __future__ import annotations

import os
import signal
import sys

_tied = False


def _interrupted(signum, frame):
    raise SystemExit(128 + signum)


def tie_to_parent() -> None:
    """End this stage when the process that started it (``dvc repro``, or torchrun's
    agent) dies, even by SIGKILL: Linux sends SIGTERM then (``PR_SET_PDEATHSIG``), which
    ends the stage as an interruption does (its temporary files removed), so no orphan
    writes into the next run's outputs. A parent that died before the tie was made is seen
    as a change of parent (to init or to a subreaper, whichever adopted the stage).
    Elsewhere than Linux, a no-op."""
    global _tied
    if _tied or not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    signal.signal(signal.SIGTERM, _interrupted)
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    _tied = True
    if parent == 1 or os.getppid() != parent:  # the parent died before the tie was made
        raise SystemExit(128 + signal.SIGTERM)
