"""The base of the library's errors.

Every error the library raises about its input (a setting, a file, a dataset, a model, an
image) is a :class:`DSCLError`, whose message is one line naming what was expected. The
stages (``stages/cli.py``) and the ``dscl`` command catch it in one place and print
``error: <message>``; each class also keeps its standard base (``ValueError``, ...), so
code that caught those still does.
"""

from __future__ import annotations

__all__ = ["DSCLError"]


class DSCLError(Exception):
    """An error about the library's input, said in one line."""
