"""Reading params.yaml: each stage reads only its own section into a frozen dataclass.

An unknown or misspelt key, a missing key, or a value of the wrong type fails at once
with the expected names, before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dscl.datasets import dataset_names
from dscl.methods import METHODS as METHOD_REGISTRY

T = TypeVar("T")
PARAMS_FILE = Path("params.yaml")
METHODS = tuple(METHOD_REGISTRY)


class ParamsError(ValueError):
    """params.yaml does not have the expected form."""


def load_params(path: Path = PARAMS_FILE) -> dict:
    if not path.is_file():
        raise ParamsError(f"{path} not found (run the stage from the repository root)")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    check_experiment(params)
    from stages.validate import check_all  # the stage modules import this one

    check_all(params)
    return params


def check_experiment(params: dict) -> None:
    """The lists that generate the stages name known datasets and methods."""
    for key, valid in (("datasets", dataset_names()), ("methods", list(METHODS))):
        names = params.get(key)
        if not isinstance(names, list) or not names:
            raise ParamsError(f"params.yaml: '{key}' must be a non-empty list of names from {valid}")
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise ParamsError(f"params.yaml: unknown {key} {unknown}; valid names: {valid}")


def convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(value, option, where)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ParamsError(f"{where} must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ParamsError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where} must be a mapping, got {value!r}")
        _, vt = typing.get_args(tp)
        return {k: convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is dict:  # a free-form mapping, checked by whoever reads it
        if not isinstance(value, dict):
            raise ParamsError(f"{where} must be a mapping, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {tp!r} at {where}")


def build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown and missing keys."""
    if not isinstance(data, dict):
        raise ParamsError(f"params.yaml: {where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"params.yaml: unknown key(s) {unknown} in {where}; expected {sorted(fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ParamsError(f"params.yaml: missing key {where}.{name}")
            continue
        kwargs[name] = convert(data[name], hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ParamsError(f"params.yaml: {where}: {exc}") from None


def section(params: dict, dotted: str, cls: type[T]) -> T:
    """The dataclass for the section at ``dotted`` (e.g. ``"train.dscl_last"``)."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"params.yaml: missing section {dotted}")
        node = node[part]
    return build(cls, node, dotted)


def entry(params: dict, dotted: str, key: str, what: str) -> Any:
    """``params[dotted][key]`` for a per-dataset mapping, with a clear error."""
    node: Any = params
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or key not in node:
        known = sorted(node) if isinstance(node, dict) else []
        raise ParamsError(f"params.yaml: {dotted} has no entry for {what} {key!r}; it has {known}")
    return node[key]
