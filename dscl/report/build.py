"""Writing one dataset's report: its table (Markdown and CSV) with intervals, the
comparison table (DSCL minus each baseline), the comparison figure and the t-SNE plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dscl import layout
from dscl.atomic import write_text
from dscl.evaluation.bootstrap import class_resamples, interval, paired_difference, resampled_scores
from dscl.linalg import l2_normalize
from dscl.methods import METHODS
from dscl.report.gallery import Tile, choose_queries, draw_gallery, neighbours, retrieval_rows, worst_queries
from dscl.report.options import BootstrapConfig, GalleryConfig, TsneConfig
from dscl.report.plots import plot_methods, plot_tsne
from dscl.report.tables import (
    COUNTERPART,
    METHOD_NAMES,
    VARIANTS,
    build_comparison,
    build_table,
    render_comparison_csv,
    render_comparison_markdown,
    render_csv,
    render_markdown,
)

__all__ = ["bootstrap_methods", "test_images", "write_galleries", "write_report"]


def test_images(prepared: Path, transform, labels: np.ndarray):
    """``image(i)``: test image ``i`` of the prepared dataset as the network saw it (the
    test-time decoding, before the backbone's normalisation), (h, w, c) uint8, decoded
    once; checked against the embeddings' labels."""
    from dscl.datasets import read_split
    from dscl.images import ImageDataset

    split = read_split(prepared, "test")
    if not np.array_equal(split.labels, labels):
        raise RuntimeError(
            f"{prepared}: the prepared test table and the embeddings disagree: re-run the pipeline"
        )
    dataset = ImageDataset(split, transform)
    cache: dict[int, np.ndarray] = {}

    def image(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = dataset[i][0].permute(1, 2, 0).numpy()
        return cache[i]

    return image


def _best_baseline(methods: list[str], metrics: Path) -> str | None:
    """The baseline with the table's best R@1 (without SC): the comparison figure's."""
    import json

    scores = {
        m: json.loads(layout.metrics_file(metrics, m).read_text())["without_sc"]["recall@1"]
        for m in methods
        if not m.startswith("dscl_") and m != "vanilla"
    }
    return max(scores, key=lambda m: (scores[m], m)) if scores else None


def write_galleries(
    dataset: str,
    methods: list[str],
    *,
    embeddings: Path,
    metrics: Path,
    labels: np.ndarray,
    image,
    plots: Path,
    cfg: GalleryConfig,
) -> None:
    """``<plots>/retrieval_<method>.png`` for every method (the same seeded queries, then
    the queries the method gets most wrong, among at most ``cfg.candidates`` test images
    drawn with the seed) and ``<plots>/retrieval.png`` (the vanilla
    backbone, DSCL on the last layer and end to end, and the best baseline, side by side)."""
    queries = choose_queries(labels, cfg.queries, cfg.seed)
    candidates = np.arange(len(labels))
    if len(candidates) > cfg.candidates:  # the all-pairs search would cost O(n^2 d) per method
        candidates = np.sort(
            np.random.default_rng(cfg.seed).choice(candidates, cfg.candidates, replace=False)
        )
    embedded = {
        m: l2_normalize(np.load(layout.embedding_file(embeddings / m)).astype(np.float32)) for m in methods
    }
    for method in methods:
        emb = embedded[method]
        rows = retrieval_rows(emb, labels, queries, cfg.k, image)
        sections = {0: "seeded queries (the same for every method)"}
        if cfg.worst:  # among a seeded sample of candidates: every test image up to cfg.candidates
            _, ids = neighbours(emb, candidates, cfg.k)
            worst = worst_queries(labels, ids, cfg.worst, exclude=queries.tolist(), queries=candidates)
            sections[len(rows)] = f"the queries it gets most wrong (lowest precision at {cfg.k})"
            rows += retrieval_rows(emb, labels, worst, cfg.k, image)
        title = f"{dataset}: {METHOD_NAMES[method]}: nearest test images (green: same class; query excluded)"
        draw_gallery(rows, plots / f"retrieval_{method}.png", title, cfg.thumb, sections)
    compared = [
        m for m in ("vanilla", "dscl_last", "dscl_e2e", _best_baseline(methods, metrics)) if m in methods
    ]
    rows, columns = [], {}
    for q in queries[: cfg.compare_queries]:
        tiles = [Tile(image(int(q)), (f"query: {labels[q]}",), None)]
        for m in compared:
            columns.setdefault(len(tiles), METHOD_NAMES[m])
            d, ids = neighbours(embedded[m], np.array([q]), cfg.compare_k)
            tiles += [
                Tile(image(int(j)), (str(labels[j]), f"d = {dist:.3f}"), bool(labels[j] == labels[q]))
                for dist, j in zip(d[0], ids[0])
            ]
        rows.append(("", tiles))
    title = f"{dataset}: the same test queries, {cfg.compare_k} nearest images per method (green: same class)"
    draw_gallery(rows, plots / "retrieval.png", title, min(cfg.thumb, 64), columns=columns)


def bootstrap_methods(
    methods: list[str], evaluation: Path, labels: np.ndarray, ks: tuple[int, ...], cfg: BootstrapConfig
) -> tuple[dict, dict]:
    """Intervals of every method's figures and of DSCL minus each baseline, from one set
    of class resamples shared by all methods (:mod:`dscl.evaluation.bootstrap`).

    Returns
    -------
    ``(intervals, differences)``: ``intervals[method][variant][metric]`` and
    ``differences[(dscl method, baseline)][variant][metric]``, each a
    :class:`dscl.evaluation.bootstrap.Interval` of fractions.
    """
    weights = class_resamples(labels, cfg.resamples, cfg.seed)
    resampled: dict = {}
    for method in methods:
        runs = layout.details_files(evaluation / method)
        if not runs:
            raise FileNotFoundError(f"no evaluation details in {evaluation / method}: run its evaluate stage")
        resampled[method] = {}
        for variant in VARIANTS:
            per_run = [
                resampled_scores(labels, {k: np.load(p) for k, p in run[variant].items()}, weights, ks)
                for run in runs
            ]
            resampled[method][variant] = {m: np.mean([r[m] for r in per_run], axis=0) for m in per_run[0]}
    intervals = {
        method: {
            v: {m: interval(x, cfg.level) for m, x in scores.items()} for v, scores in by_variant.items()
        }
        for method, by_variant in resampled.items()
    }
    differences = {}
    for baseline in methods:
        ours = COUNTERPART[METHODS.get(baseline).learns]
        if baseline.startswith("dscl_") or ours not in resampled:
            continue
        differences[(ours, baseline)] = {
            v: {
                m: paired_difference(resampled[ours][v][m], resampled[baseline][v][m], cfg.level)
                for m in scores
            }
            for v, scores in resampled[baseline].items()
        }
    return intervals, differences


def write_report(
    dataset: str,
    methods: list[str],
    *,
    metrics: Path,
    embeddings: Path,
    evaluation: Path,
    table: Path,
    plots: Path,
    ks: tuple[int, ...],
    tsne: TsneConfig,
    bootstrap: BootstrapConfig,
    prepared: Path | None = None,
    transform=None,
    gallery: GalleryConfig | None = None,
) -> None:
    """``<table>.md`` and ``<table>.csv``, ``<table>_comparison.md`` and ``.csv``,
    ``<plots>/methods.png`` and ``<plots>/tsne_<method>.png`` of every method of ``methods``.

    Parameters
    ----------
    metrics : Path
        ``reports/metrics/<dataset>``: one JSON of scores per method.
    embeddings : Path
        ``data/embeddings/<dataset>``: one folder per method (its test embedding, labels
        and ``info.json``).
    evaluation : Path
        ``data/evaluation/<dataset>``: each method's per-query quantities (the bootstrap's).
    prepared, transform :
        The prepared dataset and its test-time decoding: with them, the retrieval
        galleries (``retrieval_<method>.png``, ``retrieval.png``) and t-SNE thumbnails.
    """
    labels = np.load(layout.labels_file(embeddings / methods[0]))
    intervals, differences = bootstrap_methods(methods, evaluation, labels, ks, bootstrap)
    frame = build_table(dataset, methods, metrics, ks, embeddings, intervals)
    write_text(table.with_suffix(".md"), render_markdown(dataset, frame, ks))
    write_text(table.with_suffix(".csv"), render_csv(frame, ks))
    frame = build_comparison(methods, metrics, ks, differences)
    comparison = table.with_name(f"{table.name}_comparison")
    write_text(comparison.with_suffix(".md"), render_comparison_markdown(dataset, frame, ks))
    write_text(comparison.with_suffix(".csv"), render_comparison_csv(frame))
    plot_methods(dataset, methods, metrics, plots / "methods.png")
    image = None if prepared is None else test_images(prepared, transform, labels)
    for method in methods:
        src = embeddings / method
        plot_tsne(
            np.load(layout.embedding_file(src)),
            np.load(layout.labels_file(src)),
            f"{dataset}: {METHOD_NAMES[method]} (test, t-SNE)",
            plots / f"tsne_{method}.png",
            tsne,
            image,
        )
    if image is not None:
        write_galleries(
            dataset,
            methods,
            embeddings=embeddings,
            metrics=metrics,
            labels=labels,
            image=image,
            plots=plots,
            cfg=gallery or GalleryConfig(),
        )
