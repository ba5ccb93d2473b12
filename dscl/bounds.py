"""The range of a numeric setting, declared with its field.

``field_name: int = bounded(10, ge=1)`` is a dataclass field whose metadata carries a
:class:`Bound`; :func:`dscl.config.build` checks it when ``params.yaml`` is read (for a
list, every item), so a value out of range fails in one line naming the key, the value
and the range, before any stage does work. The library's own option classes
(:class:`dscl.evaluation.selection.SelectionRule`, :class:`dscl.training.optim.OptimizerConfig`)
declare theirs the same way. Importing this module imports nothing else of the package.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Bound", "bound_of", "bounded", "check", "violation"]


@dataclass(frozen=True)
class Bound:
    """``ge`` <= x (or ``gt`` < x) and x <= ``le`` (or x < ``lt``); None: unbounded."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def contains(self, x: float) -> bool:
        if isinstance(x, float) and not math.isfinite(x):
            return False
        return not (
            (self.ge is not None and x < self.ge)
            or (self.gt is not None and x <= self.gt)
            or (self.le is not None and x > self.le)
            or (self.lt is not None and x >= self.lt)
        )

    def __str__(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else None
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else None
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f">= {self.ge:g}" if self.ge is not None else f"> {self.gt:g}"
        if high:
            return f"<= {self.le:g}" if self.le is not None else f"< {self.lt:g}"
        return "finite"


def bounded(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, **kwargs):
    """A dataclass field (``default`` or ``default_factory=``) whose values must lie in the
    range; None (where the type allows it) is always accepted."""
    return dataclasses.field(default=default, metadata={"bound": Bound(ge, gt, le, lt)}, **kwargs)


def bound_of(f: dataclasses.Field) -> Bound | None:
    """The :class:`Bound` declared with a field, if any."""
    return f.metadata.get("bound")


def violation(f: dataclasses.Field, value: Any, name: str) -> str | None:
    """What is wrong with ``value`` for the field ``f`` (every item, for a list), said of
    ``name``; None when it is in range (or the field has no range, or it is None)."""
    bound = bound_of(f)
    if bound is None or value is None:
        return None
    items = value if isinstance(value, tuple) else (value,)
    if all(bound.contains(item) for item in items):
        return None
    each = "each item of " if isinstance(value, tuple) else ""
    shown = list(value) if isinstance(value, tuple) else value
    return f"{each}{name} must be {bound}, got {shown!r}"


def check(obj: Any) -> None:
    """Check every bounded field of a dataclass instance (for instances built in code, not
    from params.yaml); ValueError naming the field, its value and its range."""
    for f in dataclasses.fields(obj):
        problem = violation(f, getattr(obj, f.name), f.name)
        if problem is not None:
            raise ValueError(problem)
