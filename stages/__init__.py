"""DVC stages: thin I/O wrappers over the :mod:`dscl` library, one module per stage."""

import sys

if sys.argv[:1] == ["-m"]:  # ``python -m stages.<name>``: Python sets "-m" while it imports us
    from stages.lifetime import tie_to_parent

    tie_to_parent()
