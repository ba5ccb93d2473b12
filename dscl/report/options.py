"""The report's options (params.yaml: ``report``), small frozen dataclasses the library
defines and checks itself (:mod:`dscl.schema`)."""

from __future__ import annotations

from pydantic import Field

from dscl.schema import schema_class as section_class

__all__ = ["BootstrapConfig", "GalleryConfig", "TsneConfig"]


@section_class
class TsneConfig:
    perplexity: float = Field(30.0, gt=0)
    max_points: int = Field(3000, ge=2)
    max_classes: int = Field(30, ge=1)
    seed: int = Field(0, ge=0)
    thumbnails: int = Field(60, ge=0)  # images drawn at a seeded subsample of the points (0: dots only)


@section_class
class GalleryConfig:
    """``report.gallery``: the retrieval figures (dscl.report.gallery)."""

    queries: int = Field(8, ge=1)  # seeded test queries, the same for every method
    k: int = Field(8, ge=1)  # neighbours shown per query
    worst: int = Field(4, ge=0)  # and the queries each method gets most wrong (lowest precision at k)
    candidates: int = Field(2000, ge=1)  # ... among a seeded sample of this many test images (SOP: 60,502)
    compare_queries: int = Field(6, ge=0)  # the comparison figure: these many of the queries ...
    compare_k: int = Field(5, ge=1)  # ... with these many neighbours for each compared method
    thumb: int = Field(72, ge=1)  # thumbnail size in pixels
    seed: int = Field(0, ge=0)

    def __post_init__(self):
        if self.compare_queries > self.queries:
            raise ValueError(
                f"compare_queries ({self.compare_queries}) must not exceed queries ({self.queries})"
            )


@section_class
class BootstrapConfig:
    """``report.bootstrap``: the confidence intervals over test classes (dscl.evaluation.bootstrap)."""

    resamples: int = Field(1000, ge=100)  # at least 100 for a 95% interval
    level: float = Field(0.95, gt=0, lt=1)
    seed: int = Field(0, ge=0)
