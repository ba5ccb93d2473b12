"""The report's tables: the NMI is a mean over k-means seeds; where that mean may move by
more than half a point with the seeds, the cell is marked with one k-means' spread."""

from __future__ import annotations

import json

from dscl.report.tables import build_table, render_csv, render_markdown


def test_an_nmi_that_moves_with_the_kmeans_seed_is_marked_with_its_spread(tmp_path):
    scores = {"nmi": 50.0, "recall@1": 60.0, "map@r": 10.0, "r_precision": 20.0}
    spreads = {  # 20 seeds: a mean moves by about twice sd / sqrt(20), marked from sd = 1.12
        "vanilla": {"with_sc": 3.5, "without_sc": 1.1},
        "dscl_last": {"with_sc": 0.0, "without_sc": 0.1},
    }
    for method, sd in spreads.items():
        kmeans = {"seeds": 20, "first_seed": 0, "restarts": 10, "nmi_sd": sd}
        record = {"with_sc": scores, "without_sc": scores, "kmeans": kmeans}
        (tmp_path / f"{method}.json").write_text(json.dumps(record))
    table = build_table("d", ["vanilla", "dscl_last"], tmp_path, (1,))
    md = render_markdown("d", table, (1,))
    marked = [line for line in md.splitlines() if "k-means sd" in line and line.startswith("|")]
    assert marked == [
        "| Vanilla backbone (with SC) | measured | — | 50.00 (k-means sd 3.50) | 60.00 | 10.00 | 20.00 |"
    ]
    assert "may move by more than 0.5 points with the seeds" in md
    assert "NMI: the mean over k-means seeds" in md
    csv = render_csv(table, (1,)).splitlines()
    assert csv[0].endswith(",nmi k-means sd")
    assert csv[1] == "Vanilla backbone (with SC),measured,—,50.0,60.0,10.0,20.0,3.5"
    assert csv[2] == "Vanilla backbone (without SC),measured,—,50.0,60.0,10.0,20.0,1.1"  # listed, not marked
    table = build_table("d", ["dscl_last"], tmp_path, (1,))
    assert "k-means sd" not in render_markdown("d", table, (1,))  # nothing moved: no mark


def test_one_kmeans_seed_gives_no_spread_and_no_note(tmp_path):
    scores = {"nmi": 50.0, "recall@1": 60.0, "map@r": 10.0, "r_precision": 20.0}
    kmeans = {"seeds": 1, "first_seed": 0, "restarts": 1, "nmi_sd": {"with_sc": None, "without_sc": None}}
    (tmp_path / "vanilla.json").write_text(
        json.dumps({"with_sc": scores, "without_sc": scores, "kmeans": kmeans})
    )
    table = build_table("d", ["vanilla"], tmp_path, (1,))
    assert "k-means" not in render_markdown("d", table, (1,))
    assert "k-means" not in render_csv(table, (1,))


def test_the_worst_queries_among_candidates_are_those_of_the_whole_set_when_all_are_candidates():
    """The galleries' "most wrong" queries: with every test image a candidate, the same
    queries as before sampling existed; among a sample, only sampled images, each ranked
    by its own precision at k."""
    import numpy as np

    from dscl.report.gallery import neighbours, worst_queries

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 10)
    emb = rng.normal(size=(20, 16))[labels] + rng.normal(size=(200, 16))
    every = np.arange(len(labels))
    _, ids = neighbours(emb, every, 5)
    whole = worst_queries(labels, ids, 6, exclude=[3])
    np.testing.assert_array_equal(worst_queries(labels, ids, 6, exclude=[3], queries=every), whole)
    some = np.sort(rng.choice(every, 50, replace=False))
    _, ids_some = neighbours(emb, some, 5)
    picked = worst_queries(labels, ids_some, 6, queries=some)
    assert set(picked) <= set(some)
    precision = {q: (labels[i] == labels[q]).mean() for q, i in zip(some, ids_some)}
    assert max(precision[q] for q in picked) <= min(precision[q] for q in set(some) - set(picked))
