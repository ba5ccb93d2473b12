"""Datasets, looked up by name: ``get_dataset("digits")``.

Each dataset converts its own format into the prepared form of
:mod:`dscl.datasets.prepared` (``train.csv``/``test.csv`` of ``path,label``).
"""

from dscl.datasets import cars196, cub200, digits, imagefolder, sop  # noqa: F401  (they register)
from dscl.datasets.prepared import Split, read_meta, read_split
from dscl.datasets.registry import DatasetSpec, dataset_names, get_dataset

__all__ = ["DatasetSpec", "Split", "dataset_names", "get_dataset", "read_meta", "read_split"]
