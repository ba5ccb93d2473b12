"""Running a stage from the command line: input errors print as one clear line."""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from dscl.errors import DSCLError
from stages.lifetime import tie_to_parent

# Errors about the user's input or data (bad params, unknown names, a corrupt archive, a
# model file from elsewhere): the library's DSCLError, and a library function's
# ValueError about its arguments; their message says what was expected.
# DSCL_TRACEBACK=1 shows the traceback as well.
INPUT_ERRORS = (DSCLError, ValueError)


def _collective_failed(exc: BaseException) -> bool:
    """A failure raised inside a torch.distributed collective of a multi-process run: a
    peer process (or node) stopped, and its own log says why."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or not isinstance(exc, RuntimeError):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    # a collective of the stage's own code, or DDP's all-reduce inside the backward pass
    return any(f"torch{os.sep}distributed" in frame.filename for frame in frames) or any(
        mark in str(exc) for mark in ("gloo", "NCCL", "ProcessGroup", "by peer")
    )


def _one_line(message, category, filename, lineno, line=None) -> str:
    """A warning as the stages print them: ``warning: <message>``, one line."""
    return f"warning: {message}\n"


def run(main: Callable[[], None]) -> None:
    tie_to_parent()  # done already when run as ``python -m stages.<name>``
    logging.basicConfig(format="%(message)s")  # the library's messages (its loggers: info)
    logging.getLogger("dscl").setLevel(logging.INFO)
    if not os.environ.get("DSCL_TRACEBACK"):
        warnings.formatwarning = _one_line
    try:
        main()
    except INPUT_ERRORS as exc:
        if os.environ.get("DSCL_TRACEBACK"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a missing, unreadable or unwritable file: named, with the reason
        missing = isinstance(exc, FileNotFoundError)
        if os.environ.get("DSCL_TRACEBACK") or (exc.filename is None and not missing):
            raise
        if exc.filename is None:  # the project's own message (e.g. "run the train stage first")
            print(f"error: {exc}", file=sys.stderr)
        else:
            hint = " (the stage that writes it runs first: `dvc repro`)" if missing else ""
            print(f"error: {exc.filename}: {exc.strerror}{hint}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as exc:
        if os.environ.get("DSCL_TRACEBACK") or not _collective_failed(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        rank = os.environ.get("RANK", "?")
        print(
            f"error: rank {rank}: the process group failed ({first}): another process or node "
            f"stopped, and its log says why",
            file=sys.stderr,
        )
        sys.exit(1)
