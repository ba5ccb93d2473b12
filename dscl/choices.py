"""The named choices of the library and of ``params.yaml``, each listed once.

The schema (:mod:`dscl.config`) types its fields with these ``Literal`` types, so a bad
value in ``params.yaml`` is refused with the valid names; the library checks its own
arguments against the same tuples (``DEVICES`` is ``get_args(Device)``). Importing this
module imports nothing else.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "CLASS_SAMPLINGS",
    "CROP_MODES",
    "DECODERS",
    "DEVICES",
    "KMEANS_BACKENDS",
    "KMEANS_SEEDINGS",
    "MARGIN_TYPES",
    "OPTIMIZERS",
    "ClassSampling",
    "CropMode",
    "Decoder",
    "Device",
    "KMeansBackend",
    "KMeansSeeding",
    "MarginType",
    "Optimizer",
]

Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when present (dscl.device)
CropMode = Literal["center", "random"]  # training crops (dscl.images)
Decoder = Literal["auto", "cpu", "gpu"]  # auto: JPEGs decoded on the GPU on CUDA (dscl.images)
KMeansBackend = Literal["auto", "faiss", "torch"]  # auto: faiss, or torch on a GPU without faiss-gpu
# the test k-means' seeding: greedy k-means++ (few clusters), or faiss's k distinct points
# drawn at random (many clusters: SOP's 11,316), dscl.evaluation.protocol
KMeansSeeding = Literal["kmeans++", "random"]
MarginType = Literal["nmi", "ami", "ari", "vmeasure", "const"]  # the facility location's margin
Optimizer = Literal["sgd", "adam"]  # dscl.training.optim
ClassSampling = Literal[
    "per_batch", "once"
]  # new classes every batch, or drawn once (dscl.training.sampling)

DEVICES: tuple[str, ...] = get_args(Device)
CROP_MODES: tuple[str, ...] = get_args(CropMode)
DECODERS: tuple[str, ...] = get_args(Decoder)
KMEANS_BACKENDS: tuple[str, ...] = get_args(KMeansBackend)
KMEANS_SEEDINGS: tuple[str, ...] = get_args(KMeansSeeding)
MARGIN_TYPES: tuple[str, ...] = get_args(MarginType)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
CLASS_SAMPLINGS: tuple[str, ...] = get_args(ClassSampling)
