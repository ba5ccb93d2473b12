"""The methods' training curves of one dataset, gathered in one table.

The table has the columns ``step``, ``method``, ``curve`` and ``value``: each trained
method's loss per iteration (relative to its first value: the objectives differ in scale)
and its validation score (the metric and variant that model selection maximises,
``train.common.selection``) at every validation, read from the DVCLive logs of the
train stages. dvc.yaml's top-level ``plots`` draw each file as one figure that overlays
the methods (``.dvc/plots/methods.json``): ``dvc plots show``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dscl import layout

__all__ = ["gather", "read_curve"]

LOSS = "training loss / its first value"


def read_curve(path: Path, column: str) -> list[tuple[int, str]]:
    """``(step, value)`` rows of a DVCLive TSV; the value is kept as written."""
    rows = list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))
    if rows and column not in rows[0]:
        raise ValueError(f"{path} has no column {column!r}; it has {sorted(rows[0])}")
    return [(int(r["step"]), r[column]) for r in rows]


def gather(train_dir: Path, dataset: str, methods: list[str], metric: str, variant: str) -> str:
    """The table of the methods' curves (TSV text, ``\\n`` line ends)."""
    validation = f"validation {metric} ({variant.replace('_', ' ')})"
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["step", "method", "curve", "value"])
    for method in methods:
        logs = layout.curves_dir(train_dir / layout.train_key(dataset, method))
        if not logs.is_dir():
            raise FileNotFoundError(f"{logs} not found: run the stage train@{dataset}-{method} first")
        loss = layout.loss_curve(logs)  # none for a method that learns nothing
        rows = read_curve(loss, "loss") if loss.is_file() else []
        if rows:  # the objectives differ in scale: each loss relative to its first value
            first = float(rows[0][1])
            for step, value in rows:
                writer.writerow([step, method, LOSS, f"{float(value) / first:.6g}" if first else value])
        score = logs / "val" / variant / f"{metric}.tsv"  # none without a validation split
        if score.is_file():
            for step, value in read_curve(score, metric):
                writer.writerow([step, method, validation, value])
    return out.getvalue()
