"""Writing one dataset's report: its table (Markdown and CSV), the comparison figure and
the t-SNE plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dscl import layout
from dscl.atomic import write_text
from dscl.config import TsneConfig
from dscl.report.plots import plot_methods, plot_tsne
from dscl.report.tables import METHOD_NAMES, build_rows, render_csv, render_markdown

__all__ = ["write_report"]


def write_report(
    dataset: str,
    methods: list[str],
    *,
    metrics: Path,
    embeddings: Path,
    table: Path,
    plots: Path,
    ks: tuple[int, ...],
    tsne: TsneConfig,
) -> None:
    """``<table>.md`` and ``<table>.csv``, ``<plots>/methods.png`` and
    ``<plots>/tsne_<method>.png`` of every method of ``methods``.

    Parameters
    ----------
    metrics : Path
        ``reports/metrics/<dataset>``: one JSON of scores per method.
    embeddings : Path
        ``data/embeddings/<dataset>``: one folder per method (its test embedding, labels
        and ``info.json``).
    """
    columns, rows = build_rows(dataset, methods, metrics, ks, embeddings)
    write_text(table.with_suffix(".md"), render_markdown(dataset, columns, rows))
    write_text(table.with_suffix(".csv"), render_csv(columns, rows))
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
