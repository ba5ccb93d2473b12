"""Writing one dataset's report: its table (Markdown and CSV) with intervals, the
comparison table (DSCL minus each baseline), the comparison figure and the t-SNE plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dscl import layout
from dscl.atomic import write_text
from dscl.bootstrap import class_resamples, interval, paired_difference, resampled_scores
from dscl.config import BootstrapConfig, TsneConfig
from dscl.methods import METHODS
from dscl.report.plots import plot_methods, plot_tsne
from dscl.report.tables import (
    COUNTERPART,
    METHOD_NAMES,
    VARIANTS,
    build_comparison,
    build_rows,
    render_comparison_csv,
    render_comparison_markdown,
    render_csv,
    render_markdown,
)

__all__ = ["bootstrap_methods", "write_report"]


def bootstrap_methods(
    methods: list[str], evaluation: Path, labels: np.ndarray, ks: tuple[int, ...], cfg: BootstrapConfig
) -> tuple[dict, dict]:
    """Intervals of every method's figures and of DSCL minus each baseline, from one set
    of class resamples shared by all methods (:mod:`dscl.bootstrap`).

    Returns
    -------
    ``(intervals, differences)``: ``intervals[method][variant][metric]`` and
    ``differences[(dscl method, baseline)][variant][metric]``, each a
    :class:`dscl.bootstrap.Interval` of fractions.
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
    """
    labels = np.load(embeddings / methods[0] / "test_labels.npy")
    intervals, differences = bootstrap_methods(methods, evaluation, labels, ks, bootstrap)
    columns, rows = build_rows(dataset, methods, metrics, ks, embeddings, intervals)
    write_text(table.with_suffix(".md"), render_markdown(dataset, columns, rows))
    write_text(table.with_suffix(".csv"), render_csv(columns, rows))
    columns, rows = build_comparison(methods, metrics, ks, differences)
    comparison = table.with_name(f"{table.name}_comparison")
    write_text(comparison.with_suffix(".md"), render_comparison_markdown(dataset, columns, rows))
    write_text(comparison.with_suffix(".csv"), render_comparison_csv(columns, rows))
    plot_methods(dataset, methods, metrics, plots / "methods.png")
    for method in methods:
        src = embeddings / method
        plot_tsne(
            np.load(layout.embedding_file(src)),
            np.load(src / "test_labels.npy"),
            f"{dataset}: {METHOD_NAMES[method]} (test, t-SNE)",
            plots / f"tsne_{method}.png",
            tsne,
        )
