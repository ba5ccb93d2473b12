"""The dataset registry: every dataset is looked up by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetSpec", "register", "get_dataset", "dataset_names"]


@dataclass(frozen=True)
class DatasetSpec:
    """How to obtain and split one dataset.

    ``prepare(out_dir, root, verify_checksum)`` writes the prepared form
    (:mod:`dscl.datasets.prepared`) into ``out_dir``; downloads and extracted files go
    under ``root``. A dataset with settings of its own (``options``, a dataclass, e.g.
    where the user's folder is) is prepared by ``prepare(out_dir, root, verify_checksum,
    options)``.
    """

    name: str
    description: str
    prepare: Callable[..., None]
    options: type | None = None

    def run(self, out_dir: Path, root: Path, verify_checksum: bool, options=None) -> None:
        """Prepare the dataset (``options``: an instance of :attr:`options`, or None for
        its defaults)."""
        if self.options is None:
            if options is not None:
                raise ValueError(f"dataset {self.name!r} takes no options, got {options!r}")
            self.prepare(out_dir, root, verify_checksum)
        else:
            self.prepare(out_dir, root, verify_checksum, options if options is not None else self.options())


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def dataset_names() -> list[str]:
    return sorted(_REGISTRY)


def get_dataset(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; valid names: {dataset_names()}") from None
