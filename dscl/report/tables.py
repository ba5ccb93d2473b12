"""The paper's tables: one row per method and spectral-clustering variant, in Markdown
and CSV, each measured figure with its 95% interval over test classes; where the paper
published the row (Tables 1-3), the reported figures and the difference (measured -
reported) beside it. And the comparison table: DSCL minus each baseline, with the
interval of the paired difference.

Each table is a pandas DataFrame (:func:`build_table`, :func:`build_comparison`: a row
per method and variant, a column per figure and per spread or bound), from which the CSV
is written by pandas. The Markdown rows are joined here rather than by
``DataFrame.to_markdown``: tabulate pads every column to its widest cell, and a cell
here combines a figure, its spread and its interval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from dscl import layout
from dscl.evaluation.metrics import label as metric_label
from dscl.evaluation.metrics import metric_names
from dscl.methods import METHODS
from dscl.report.paper import reported

__all__ = [
    "COUNTERPART",
    "METHOD_NAMES",
    "VARIANTS",
    "build_comparison",
    "build_table",
    "metric_columns",
    "metric_label",
    "render_comparison_csv",
    "render_comparison_markdown",
    "render_csv",
    "render_markdown",
    "selected_step",
    "table_head",
]

METHOD_NAMES = {name: method.title for name, method in METHODS.items()}
VARIANTS = {"with_sc": "with SC", "without_sc": "without SC"}


# The NMI is the mean over evaluate.nmi's k-means seeds (dscl.evaluation.protocol); where that
# mean may move by more than this (points) with the seeds (twice its standard error), the
# cell is marked with the standard deviation of one k-means' NMI.
NMI_STEADY = 0.5
KMEANS_MARK = "k-means sd "


TEST_SELECTED = "†"


def selected_step(info: dict | None) -> str:
    """The "Step" cell: the step model selection kept, of the iterations run; marked
    :data:`TEST_SELECTED` where it was chosen on the test classes."""
    if not info or info.get("selected_step") is None or not info.get("iterations"):
        return "—"  # nothing was trained (vanilla)
    steps = info.get("selected_steps") or [info["selected_step"]]  # one per seed
    cell = f"{', '.join(str(s) for s in steps)}/{info.get('iterations') or 0}"
    on = info.get("selected_on")
    return cell + TEST_SELECTED if on == "test" else (cell + " last" if on == "none" else cell)


def metric_columns(ks: tuple[int, ...]) -> list[str]:
    """The figures of a table, in the order of the metrics' table
    (:data:`dscl.evaluation.metrics.METRICS`): NMI, Recall@K of each K, MAP@R, R-Precision."""
    return metric_names(ks)


def build_table(
    dataset: str,
    methods: list[str],
    metrics_dir: Path,
    ks: tuple[int, ...],
    embeddings_dir: Path | None = None,
    intervals: dict | None = None,
) -> pd.DataFrame:
    """The table, one row per method, variant and source ("measured", "reported" where the
    paper published the row, and "difference" = measured - reported).

    Columns: ``label``, ``source``, ``step`` (the training step model selection kept,
    :func:`selected_step`), then per figure ``c`` of :func:`metric_columns` ``c`` (percent),
    ``"c std"`` (the standard deviation over training seeds of a measured row with
    several), ``"c low"`` and ``"c high"`` (its 95% interval over the test classes, from
    ``intervals``: method -> variant -> figure -> :class:`dscl.evaluation.bootstrap.Interval` of
    fractions), and ``"nmi k-means sd"`` and ``"k-means seeds"``: the standard deviation
    of its NMI over the k-means seeds the NMI averages, and their number (the metrics
    file's ``kmeans``). Absent values are None (the cells stay Python objects, so the CSV
    writes them as the report wrote them)."""
    columns = metric_columns(ks)
    records = []
    for method in methods:
        measured = json.loads(layout.metrics_file(metrics_dir, method).read_text())
        info_file = None if embeddings_dir is None else layout.info_file(embeddings_dir / method)
        info = json.loads(info_file.read_text()) if info_file and info_file.is_file() else None
        step = selected_step(info)
        for variant, vname in VARIANTS.items():
            label = f"{METHOD_NAMES[method]} ({vname})"
            got = measured[variant]  # the mean over seeds, with several
            spread = measured.get("std", {}).get(variant) or {}
            found = (intervals or {}).get(method, {}).get(variant) or {}
            kmeans = _kmeans_spread(measured, variant)
            row = {"label": label, "source": "measured", "step": step}
            for c in columns:
                ci = _percent(found.get(c))
                row |= {c: got.get(c), f"{c} std": spread.get(c)}
                row |= {f"{c} low": None if ci is None else ci[0], f"{c} high": None if ci is None else ci[1]}
            row |= {"nmi k-means sd": None, "k-means seeds": None}
            if kmeans is not None:
                row |= {"nmi k-means sd": kmeans[0], "k-means seeds": kmeans[1]}
            records.append(row)
            paper = reported(dataset, method, variant)
            if paper is not None:
                ref = {c: paper.get(c) for c in columns}
                records.append({"label": label, "source": "reported", "step": "", **ref})
                diff = {c: _minus(got.get(c), r) for c, r in ref.items()}
                records.append({"label": label, "source": "difference", "step": "", **diff})
    head = ["label", "source", "step", *columns]
    head += [f"{c} {x}" for x in ("std", "low", "high") for c in columns]
    head += ["nmi k-means sd", "k-means seeds"]
    table = pd.DataFrame(records, columns=head, dtype=object)
    return table.where(table.notna(), None)


def _minus(measured: float | None, paper: float | None) -> float | None:
    return None if measured is None or paper is None else round(measured - paper, 2)


def _kmeans_spread(measured: dict, variant: str) -> tuple[float, int] | None:
    """``(sd, seeds)`` of a metrics file's NMI over k-means seeds; None with one seed."""
    kmeans = measured.get("kmeans") or {}
    sd = (kmeans.get("nmi_sd") or {}).get(variant)
    return None if sd is None else (float(sd), int(kmeans["seeds"]))


def _percent(iv) -> tuple[float, float] | None:
    return None if iv is None else (round(100 * iv.low, 1), round(100 * iv.high, 1))


def _ci(ci: tuple[float, float] | None, signed: bool = False) -> str:
    if ci is None:
        return ""
    f = "{:+.1f}" if signed else "{:.1f}"
    return f" [{f.format(ci[0])}, {f.format(ci[1])}]"


def table_head(title: str, head: list[str]) -> list[str]:
    """The first lines of a Markdown table: its title, the header row and the rule."""
    return [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]


def render_markdown(dataset: str, table: pd.DataFrame, ks: tuple[int, ...]) -> str:
    """The table (:func:`build_table`) in Markdown: each figure with its spread over seeds
    (± sd), its interval over the test classes ([low, high]) and, where the NMI's mean over
    k-means seeds may move by more than :data:`NMI_STEADY`, the k-means spread."""
    columns = metric_columns(ks)
    head = ["Method", "Source", "Step"] + [metric_label(c) for c in columns]
    lines = table_head(f"{dataset}: NMI, Recall@K, MAP@R and R-Precision (%)", head)
    unsteady = False
    for row in table.to_dict("records"):
        cells = []
        for c in columns:
            v, sd, low = row[c], row[f"{c} std"], row[f"{c} low"]
            cell = "—" if v is None else (f"{v:+.2f}" if row["source"] == "difference" else f"{v:.2f}")
            cell += "" if sd is None else f" ± {sd:.2f}"  # several seeds: mean ± standard deviation
            if c == "nmi" and _moves(row["nmi k-means sd"], row["k-means seeds"]):
                cell += f" ({KMEANS_MARK}{row['nmi k-means sd']:.2f})"
                unsteady = True
            cells.append(cell + ("" if low is None else _ci((low, row[f"{c} high"]))))  # the 95% interval
        lines.append("| " + " | ".join([row["label"], row["source"], row["step"], *cells]) + " |")
    lines += [
        "",
        "Measured rows come from `reports/metrics/" + dataset + "/<method>.json`; "
        "reported rows are the paper's Tables 1-3 (which have no MAP@R or R-Precision, RP); "
        "difference = measured - reported. "
        "Step: the training step whose model is evaluated / the iterations run, chosen "
        "on validation classes carved from the training classes unless marked "
        f"{TEST_SELECTED} (chosen on the test classes, the 2017 practice) or 'last' "
        "(no selection).",
    ]
    if _any(table, [f"{c} std" for c in columns]):
        lines[-1] += (
            " With several seeds (a method's `seeds`, or train.common.seeds), a measured cell "
            "is the mean ± the standard deviation over the runs, and Step lists each run's step."
        )
    if _any(table, [f"{c} low" for c in columns]):
        lines[-1] += (
            " [low, high]: the 95% interval of the measured figure over the test classes (a "
            "bootstrap that resamples classes, report.bootstrap; with several seeds, of their "
            "mean); a figure from one seed carries no training-seed spread."
        )
    if _any(table, ["nmi k-means sd"]):
        lines[-1] += ' NMI: the mean over k-means seeds (evaluate.nmi; docs, "Reproducibility").'
    if unsteady:
        lines[-1] += (
            f" ({KMEANS_MARK}x): one k-means' NMI of this embedding has a standard deviation "
            "of x points over the seeds (its partition is ambiguous), so that their mean may "
            f"move by more than {NMI_STEADY} points with the seeds (twice x / sqrt(seeds))."
        )
    return "\n".join(lines) + "\n"


def render_csv(table: pd.DataFrame, ks: tuple[int, ...]) -> str:
    """The table (:func:`build_table`) as CSV: the figures, then the columns that hold a
    value (the spreads over seeds, the intervals, the NMI's spread over k-means seeds)."""
    columns = metric_columns(ks)
    keep = ["label", "source", "step", *columns]
    spreads = [f"{c} std" for c in columns]
    keep += spreads if _any(table, spreads) else []
    bounds = [f"{c} {end}" for c in columns for end in ("low", "high")]
    keep += bounds if _any(table, bounds) else []
    keep += ["nmi k-means sd"] if _any(table, ["nmi k-means sd"]) else []
    return table[keep].rename(columns={"label": "method"}).to_csv(index=False, lineterminator="\n")


def _any(table: pd.DataFrame, columns: list[str]) -> bool:
    """Whether any row holds a value in any of ``columns``."""
    return bool(table[columns].notna().to_numpy().any())


def _moves(sd: float | None, seeds: int | None) -> bool:
    """Whether a mean over ``seeds`` k-means seeds of per-seed spread ``sd`` may move by
    more than :data:`NMI_STEADY` (twice its standard error)."""
    return sd is not None and 2 * sd / math.sqrt(seeds) > NMI_STEADY


# what each method is compared with: DSCL trained the same way (the last layer, or all layers)
COUNTERPART = {"nothing": "dscl_last", "last_layer": "dscl_last", "all_layers": "dscl_e2e"}


def build_comparison(
    methods: list[str], metrics_dir: Path, ks: tuple[int, ...], differences: dict
) -> pd.DataFrame:
    """ "DSCL minus baseline": one row per baseline of ``methods`` and variant, against the
    DSCL method trained as it is (:data:`COUNTERPART`), where both ran. Columns: ``ours``,
    ``baseline``, ``variant``, then per figure ``c`` of :func:`metric_columns` ``"c diff"``
    (the difference of the table's figures, percent) and ``"c low"``, ``"c high"``,
    ``"c holds"`` (1 where the interval excludes 0): the paired bootstrap difference, from
    ``differences[(ours, baseline)][variant][c]`` (:class:`dscl.evaluation.bootstrap.Interval`; None
    where absent)."""
    columns = metric_columns(ks)
    records = []
    for baseline in methods:
        ours = COUNTERPART[METHODS.get(baseline).learns]
        if baseline.startswith("dscl_") or ours not in methods:
            continue
        a = json.loads(layout.metrics_file(metrics_dir, ours).read_text())
        b = json.loads(layout.metrics_file(metrics_dir, baseline).read_text())
        for variant in VARIANTS:
            found = differences.get((ours, baseline), {}).get(variant, {})
            row = {"ours": ours, "baseline": baseline, "variant": variant}
            for c in columns:
                ci = _percent(found.get(c))
                row[f"{c} diff"] = round(a[variant][c] - b[variant][c], 2)
                row |= dict.fromkeys((f"{c} low", f"{c} high", f"{c} holds"))
                if ci is not None:
                    row |= {f"{c} low": ci[0], f"{c} high": ci[1], f"{c} holds": int(found[c].holds)}
            records.append(row)
    head = ["ours", "baseline", "variant"]
    head += [f"{c} {x}" for c in columns for x in ("diff", "low", "high", "holds")]
    table = pd.DataFrame(records, columns=head, dtype=object)
    return table.where(table.notna(), None)


def render_comparison_markdown(dataset: str, table: pd.DataFrame, ks: tuple[int, ...]) -> str:
    """The comparison (:func:`build_comparison`) in Markdown: each difference with its
    paired interval, in bold where the interval excludes 0."""
    columns = metric_columns(ks)
    head = ["DSCL", "minus", "Variant"] + [metric_label(c) for c in columns]
    lines = table_head(f"{dataset}: DSCL minus each baseline (percentage points)", head)
    for row in table.to_dict("records"):
        cells = []
        for c in columns:
            cell = f"{row[f'{c} diff']:+.2f}"
            if row[f"{c} low"] is not None:
                cell = (f"**{cell}**" if row[f"{c} holds"] else cell) + _ci(
                    (row[f"{c} low"], row[f"{c} high"]), signed=True
                )
            cells.append(cell)
        names = [METHOD_NAMES[row["ours"]], METHOD_NAMES[row["baseline"]], VARIANTS[row["variant"]]]
        lines.append("| " + " | ".join([*names, *cells]) + " |")
    lines += [
        "",
        "Each cell: the DSCL method trained as the baseline is (the last layer, or all layers; "
        "the vanilla backbone against the last layer) minus the baseline, from the table "
        "`reports/tables/" + dataset + ".md`, and the 95% interval of the paired difference "
        "over the test classes (a bootstrap resampling classes, the same draws for both "
        "methods). **Bold**: the interval excludes 0, a difference that holds; any other "
        "difference is no difference at this test-set size.",
    ]
    return "\n".join(lines) + "\n"


def render_comparison_csv(table: pd.DataFrame) -> str:
    """The comparison (:func:`build_comparison`) as CSV, every column."""
    return table.to_csv(index=False, lineterminator="\n")
