"""Running a stage from the command line: input errors print as one clear line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from dscl.config import ParamsError
from dscl.datasets.archive import DatasetError

# Errors about the user's input or data (bad params, unknown names, a corrupt archive):
# their message says what was expected. DSCL_TRACEBACK=1 shows the traceback as well.
INPUT_ERRORS = (ParamsError, DatasetError, ValueError)


def run(main: Callable[[], None]) -> None:
    try:
        main()
    except INPUT_ERRORS as exc:
        if os.environ.get("DSCL_TRACEBACK"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
