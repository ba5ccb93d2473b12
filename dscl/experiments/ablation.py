"""The embedding-dimension ablation the paper invites: it sets d = k (the number of
training classes) without testing another d; Song et al. (2016) report that d matters
little. Each listed last-layer method is trained again at each listed d, with its own
settings otherwise (seeds, validation-selected step), and evaluated with intervals over
the test classes (the report's bootstrap, the same class resamples for every row).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from dscl.evaluation.bootstrap import class_resamples, interval, resampled_scores
from dscl.methods import Method
from dscl.report.options import BootstrapConfig
from dscl.report.tables import METHOD_NAMES, VARIANTS, metric_columns, metric_label, table_head
from dscl.training.options import LastLayerConfig

__all__ = ["ablation_table", "render_ablation", "run_ablation"]


def run_ablation(
    methods: list[tuple[Method, LastLayerConfig]],
    dims: list[int],
    *,
    train: Callable[[Method, LastLayerConfig], list],
    embed: Callable[[object], np.ndarray],
    evaluate: Callable[[np.ndarray], tuple],
    labels: np.ndarray,
    ks: tuple[int, ...],
    bootstrap: BootstrapConfig,
    seeds: tuple[int, ...] | None = None,
) -> list[dict]:
    """One result per (method, d): ``{"method", "dim", "steps", "scores", "intervals"}``,
    scores (percent, the mean over seeds) and intervals per variant and metric.

    ``methods``: each last-layer method with its settings; ``train(method, settings)``
    gives its runs (:class:`~dscl.training.fit.TrainedRun`), ``embed(run)`` a run's test
    embedding, ``evaluate(embedding)`` the test evaluation's ``(scores, details, nmis)``
    (:func:`dscl.evaluation.protocol.evaluate_test`); ``labels``: the test labels;
    ``seeds``: the training seeds (None: each method's own)."""
    weights = class_resamples(labels, bootstrap.resamples, bootstrap.seed)
    results = []
    for method, settings in methods:
        if method.learns != "last_layer":
            raise ValueError(
                f"ablation: {method.name} does not learn the last layer alone (the ablation retrains those)"
            )
        for dim in dims:
            changes = {"embedding_dim": int(dim), **({} if seeds is None else {"seeds": tuple(seeds)})}
            runs = train(method, dataclasses.replace(settings, **changes))
            evaluated = [evaluate(embed(run))[:2] for run in runs]
            scores, intervals = _summarise(evaluated, labels, weights, ks, bootstrap.level)
            steps = [r.record.selected_step for r in runs]
            results.append(
                {
                    "method": method.name,
                    "dim": int(dim),
                    "steps": steps,
                    "scores": scores,
                    "intervals": intervals,
                }
            )
    return results


def _summarise(evaluated: list, labels: np.ndarray, weights, ks, level: float) -> tuple[dict, dict]:
    """The scores (percent, the mean over the runs) and their intervals over the test
    classes (the runs' resampled scores averaged), per variant and metric."""
    scores, intervals = {}, {}
    for variant in ("with_sc", "without_sc"):
        per_run = [resampled_scores(labels, d[variant], weights, ks) for _, d in evaluated]
        scores[variant] = {
            m: round(100 * float(np.mean([s[variant][m] for s, _ in evaluated])), 2) for m in per_run[0]
        }
        intervals[variant] = {
            m: interval(np.mean([r[m] for r in per_run], axis=0), level) for m in per_run[0]
        }
    return scores, intervals


def ablation_table(results: list[dict], ks: tuple[int, ...]) -> pd.DataFrame:
    """The ablation (:func:`run_ablation`'s results) as a DataFrame: one row per method,
    d and variant (without SC first), columns ``method``, ``dim``, ``variant``, ``steps``
    and, per figure ``c``, ``"c mean"`` (percent) and ``"c low"``, ``"c high"`` (its
    interval over the test classes, percent, unrounded: the CSV rounds them to 0.01)."""
    columns = metric_columns(ks)
    records = []
    for r in results:
        for variant in ("without_sc", "with_sc"):
            row = {"method": r["method"], "dim": r["dim"], "variant": variant}
            row["steps"] = ", ".join(map(str, r["steps"]))
            for c in columns:
                iv = r["intervals"][variant][c]
                row |= {f"{c} mean": r["scores"][variant][c]}
                row |= {f"{c} low": 100 * iv.low, f"{c} high": 100 * iv.high}
            records.append(row)
    head = ["method", "dim", "variant", "steps"] + [
        f"{c} {x}" for c in columns for x in ("mean", "low", "high")
    ]
    return pd.DataFrame(records, columns=head, dtype=object)


def render_ablation(dataset: str, results: list[dict], ks: tuple[int, ...]) -> tuple[str, str]:
    """The ablation's Markdown and CSV tables (without SC and with SC rows)."""
    columns = metric_columns(ks)
    table = ablation_table(results, ks)
    head = ["Method", "d", "Variant", "Steps"] + [metric_label(c) for c in columns]
    md = table_head(f"{dataset}: the embedding dimension d (%)", head)
    for row in table.to_dict("records"):
        cells = [f"{row[f'{c} mean']:.2f} [{row[f'{c} low']:.1f}, {row[f'{c} high']:.1f}]" for c in columns]
        names = [METHOD_NAMES[row["method"]], str(row["dim"]), VARIANTS[row["variant"]], row["steps"]]
        md.append("| " + " | ".join([*names, *cells]) + " |")
    if not results:
        md.append("| (no method listed in `ablation." + dataset + ".methods`) |" + " |" * (len(head) - 1))
    md += [
        "",
        "Each row: the method retrained on the last layer with an embedding of d dimensions, "
        "everything else as in its table row (its validation-selected step; the seeds of "
        "`ablation.<dataset>.seeds`, else its own); the mean over seeds (Steps: each "
        "seed's) and the 95% interval over the test classes (report.bootstrap). The "
        "paper's setting is d = the number of training classes.",
    ]
    bounds = [f"{c} {end}" for c in columns for end in ("low", "high")]
    rounded = table.assign(**{b: [round(v, 2) for v in table[b]] for b in bounds})
    return "\n".join(md) + "\n", rounded.to_csv(index=False, lineterminator="\n")
