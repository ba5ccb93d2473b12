"""The report's tables: an NMI that moves with the k-means seed is marked with its range."""

from __future__ import annotations

import json

import numpy as np

from dscl.report.build import nmi_ranges
from dscl.report.tables import build_rows, render_csv, render_markdown


def test_an_nmi_that_moves_with_the_kmeans_seed_is_marked_with_its_range(tmp_path):
    scores = {"nmi": 50.0, "recall@1": 60.0, "map@r": 10.0, "r_precision": 20.0}
    for method in ("vanilla", "dscl_last"):
        (tmp_path / f"{method}.json").write_text(json.dumps({"with_sc": scores, "without_sc": scores}))
    ranges = {
        "vanilla": {"with_sc": 3.5, "without_sc": 0.5},
        "dscl_last": {"with_sc": 0.0, "without_sc": 0.1},
    }
    columns, rows = build_rows("d", ["vanilla", "dscl_last"], tmp_path, (1,), nmi_ranges=ranges)
    md = render_markdown("d", columns, rows)
    marked = [line for line in md.splitlines() if "k-means ±" in line and line.startswith("|")]
    assert marked == [
        "| Vanilla backbone (with SC) | measured | — | 50.00 (k-means ±3.50) | 60.00 | 10.00 | 20.00 |"
    ]
    assert "moves by more than 0.5 points with the k-means seed" in md
    assert render_csv(columns, rows).splitlines()[1].startswith("Vanilla backbone (with SC),measured,—,50.0,")
    columns, rows = build_rows("d", ["dscl_last"], tmp_path, (1,), nmi_ranges=ranges)
    assert "k-means" not in render_markdown("d", columns, rows)  # nothing moved: no mark, no note


def test_nmi_ranges_are_zero_on_separated_clusters_and_wide_on_raw_noise(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    for name, x in (
        ("dscl_last", np.eye(4, 6)[labels] * 10 + rng.normal(size=(200, 6))),  # four clear clusters
        ("vanilla", rng.normal(size=(200, 6))),  # no structure: the partition is anyone's
    ):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "test.npy", x.astype(np.float32))
    options = {"seed": 0, "kmeans_niter": 50, "kmeans_nredo": 1, "kmeans_backend": "torch"}
    got = nmi_ranges(["dscl_last", "vanilla"], tmp_path, labels, options)
    assert got["dscl_last"] == {"with_sc": 0.0, "without_sc": 0.0}
    assert got["vanilla"]["without_sc"] > 0.5
