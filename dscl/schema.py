"""Validation of plain data (YAML's or JSON's values) against a frozen dataclass, by pydantic.

The one strictness of the project's schemas, :data:`SCHEMA` (strict, closed, finite),
shared by the sections of ``params.yaml`` (:mod:`dscl.config`) and the objectives'
settings (:mod:`dscl.objectives.settings`), and the one wording of their errors:
:func:`validate` raises :class:`SchemaError` in one line that names the key, the value
and what is allowed (``train.common.seeds[1] must be >= 0, got -1``; unknown keys with the
keys the mapping takes; a choice with the valid names). Validation is strict on the data
as JSON gives it: a list is a tuple, an integer is a number, nothing else is converted
(``"3"`` is not 3, ``true`` is not 1, NaN is no number). Importing this module imports
pydantic alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import typing
from typing import Any

import pydantic

from dscl.errors import DSCLError

__all__ = ["SCHEMA", "SchemaError", "schema_class", "validate"]

# strict, closed and finite (the module's docstring says why strict)
SCHEMA = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
schema_class = functools.partial(pydantic.dataclasses.dataclass, frozen=True, config=SCHEMA)
"""Decorator: a frozen pydantic dataclass with :data:`SCHEMA`'s strictness."""


class SchemaError(DSCLError, ValueError):
    """Data that does not have the form a schema expects (the message names where)."""


@functools.cache
def _adapter(tp: Any) -> pydantic.TypeAdapter:
    """pydantic's validator of ``{"value": <a value of type tp>}``: the wrapper gives a
    plain dataclass (a dataset's options, the selection rule) the schema's strictness,
    as a section gives it to the dataclasses it holds."""
    return pydantic.TypeAdapter(pydantic.create_model("Value", __config__=SCHEMA, value=(tp, ...)))


# what a value must be, for pydantic's error types (the rest keep pydantic's words)
_MUST = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "dataclass_type": "must be a mapping",
    "greater_than": "must be > {gt:g}",
    "greater_than_equal": "must be >= {ge:g}",
    "less_than": "must be < {lt:g}",
    "less_than_equal": "must be <= {le:g}",
    "too_short": "must list at least {min_length} item(s)",
}


def _where(where: str, loc: tuple) -> str:
    return where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _said(errors: list[dict], tp: Any, where: str) -> str:
    """One line of params.yaml's error for pydantic's errors: unknown keys first (all of
    one mapping's, with the keys it takes), otherwise the first error."""
    unknown = [e for e in errors if e["type"] == "unexpected_keyword_argument"]
    if unknown:
        parent = tuple(unknown[0]["loc"][:-1])
        keys = sorted(str(e["loc"][-1]) for e in unknown if tuple(e["loc"][:-1]) == parent)
        return f"unknown key(s) {keys} in {_where(where, parent)}; expected {_keys(tp, parent)}"
    err = errors[0]
    kind, ctx = err["type"], err.get("ctx") or {}
    at = _where(where, tuple(err["loc"]))
    if kind in ("missing_argument", "missing"):
        return f"missing key {at}"
    if kind == "value_error":
        return f"{at}: {ctx['error']}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", ctx["expected"])
        return f"{at} must be one of {choices}, got {err['input']!r}"
    if kind in _MUST:
        return f"{at} {_MUST[kind].format(**ctx)}, got {err['input']!r}"
    return f"{at}: {err['msg']}, got {err['input']!r}"


def _keys(tp: Any, loc: tuple) -> list[str]:
    """The keys the mapping at ``loc`` inside ``tp`` takes (its dataclass's fields)."""
    for part in loc:
        if isinstance(part, int) or not dataclasses.is_dataclass(tp):
            return []
        hint = typing.get_type_hints(tp).get(part)
        tp = next((a for a in (typing.get_args(hint) or (hint,)) if dataclasses.is_dataclass(a)), None)
    return sorted(f.name for f in dataclasses.fields(tp)) if dataclasses.is_dataclass(tp) else []


def validate(value: Any, tp: Any, where: str) -> Any:
    """``value`` (plain data) validated as type ``tp``; :class:`SchemaError` naming
    ``where`` and what was expected otherwise."""
    try:
        data = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        what = "plain data (numbers, strings, lists, mappings)"
        raise SchemaError(f"{where} must be {what}, got {value!r}") from None
    try:
        return _adapter(tp).validate_json(f'{{"value": {data}}}', strict=True).value
    except pydantic.ValidationError as exc:
        errors = [{**e, "loc": tuple(e["loc"])[1:]} for e in exc.errors()]
        raise SchemaError(_said(errors, tp, where)) from None
