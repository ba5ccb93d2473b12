"""The dataset registry: every dataset is looked up by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dscl.registry import Registry

__all__ = ["DATASETS", "DatasetSpec", "dataset_names", "get_dataset", "register"]


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


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset (each module of :mod:`dscl.datasets` registers its own)."""
    return DATASETS.register(spec.name, spec)


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def get_dataset(name: str) -> DatasetSpec:
    """The dataset ``name``; ValueError naming the valid ones otherwise."""
    return DATASETS.get(name)
