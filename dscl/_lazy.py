"""A package's public names imported on first use (PEP 562), so that importing the
package imports none of its modules (and no torch)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], object]:
    """The module-level ``__getattr__`` of ``package``: each name of ``homes`` is read
    from its module (``homes[name]``, a submodule of ``package``) when first asked for."""

    def __getattr__(name: str):
        if name in homes:
            return getattr(import_module(f"{package}.{homes[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
