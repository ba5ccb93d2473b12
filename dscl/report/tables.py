"""The paper's tables: one row per method and spectral-clustering variant, in Markdown
and CSV, each measured figure with its 95% interval over test classes; where the paper
published the row (Tables 1-3), the reported figures and the difference (measured -
reported) beside it. And the comparison table: DSCL minus each baseline, with the
interval of the paired difference."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from dscl.methods import METHODS
from dscl.paper_results import reported

__all__ = [
    "COUNTERPART",
    "METHOD_NAMES",
    "VARIANTS",
    "build_comparison",
    "build_rows",
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


RETRIEVAL = ("map@r", "r_precision")  # Musgrave et al. 2020; the paper has no such column
LABELS = {"nmi": "NMI", "map@r": "MAP@R", "r_precision": "RP"}


# The NMI is the mean over evaluate.nmi's k-means seeds (dscl.evaluation); where that
# mean may move by more than this (points) with the seeds (twice its standard error), the
# cell is marked with the standard deviation of one k-means' NMI.
NMI_STEADY = 0.5
KMEANS_MARK = "k-means sd "


def metric_label(name: str) -> str:
    return LABELS.get(name, name.replace("recall@", "R@"))


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


def build_rows(
    dataset: str,
    methods: list[str],
    metrics_dir: Path,
    ks: tuple[int, ...],
    embeddings_dir: Path | None = None,
    intervals: dict | None = None,
):
    """Rows of the table: ``(label, source, step, values, stds, cis, kmeans)``, source
    "measured", "reported" or "difference"; ``step`` says which training step was
    selected; ``stds``: the standard deviations over seeds of a measured row (None with one
    seed); ``cis``: its ``(low, high)`` intervals in percent (None without ``intervals``,
    which maps method -> variant -> metric -> :class:`dscl.bootstrap.Interval` of
    fractions); ``kmeans``: ``(sd, seeds)``, the standard deviation of its NMI over the
    k-means seeds that the NMI averages, in points, and their number (the metrics file's
    ``kmeans``; None with one seed)."""
    columns = ["nmi"] + [f"recall@{k}" for k in ks] + list(RETRIEVAL)
    rows = []
    for method in methods:
        measured = json.loads((metrics_dir / f"{method}.json").read_text())
        info_file = None if embeddings_dir is None else embeddings_dir / method / "info.json"
        info = json.loads(info_file.read_text()) if info_file and info_file.is_file() else None
        step = selected_step(info)
        for variant, vname in VARIANTS.items():
            label = f"{METHOD_NAMES[method]} ({vname})"
            got = measured[variant]  # the mean over seeds, with several
            spread = measured.get("std", {}).get(variant)
            found = (intervals or {}).get(method, {}).get(variant)
            rows.append(
                (
                    label,
                    "measured",
                    step,
                    [got.get(c) for c in columns],
                    None if spread is None else [spread.get(c) for c in columns],
                    None if found is None else [_percent(found.get(c)) for c in columns],
                    _kmeans_spread(measured, variant),
                )
            )
            paper = reported(dataset, method, variant)
            if paper is not None:
                ref = [paper.get(c) for c in columns]
                rows.append((label, "reported", "", ref, None, None, None))
                rows.append(
                    (
                        label,
                        "difference",
                        "",
                        [
                            None if g is None or r is None else round(g - r, 2)
                            for g, r in zip([got.get(c) for c in columns], ref)
                        ],
                        None,
                        None,
                        None,
                    )
                )
    return columns, rows


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


def render_markdown(dataset: str, columns, rows) -> str:
    head = ["Method", "Source", "Step"] + [metric_label(c) for c in columns]
    lines = table_head(f"{dataset}: NMI, Recall@K, MAP@R and R-Precision (%)", head)
    unsteady = False
    for label, source, step, values, stds, cis, kmeans in rows:
        cells = [
            "—" if v is None else (f"{v:+.2f}" if source == "difference" else f"{v:.2f}") for v in values
        ]
        if stds is not None:  # several seeds: mean ± standard deviation
            cells = [c if sd is None else f"{c} ± {sd:.2f}" for c, sd in zip(cells, stds)]
        if kmeans is not None and 2 * kmeans[0] / math.sqrt(kmeans[1]) > NMI_STEADY:  # the mean moves
            cells[0] += f" ({KMEANS_MARK}{kmeans[0]:.2f})"
            unsteady = True
        if cis is not None:  # the 95% interval over test classes
            cells = [c + _ci(ci) for c, ci in zip(cells, cis)]
        lines.append("| " + " | ".join([label, source, step, *cells]) + " |")
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
    if any(row[4] is not None for row in rows):
        lines[-1] += (
            " With several seeds (a method's `seeds`, or train.common.seeds), a measured cell "
            "is the mean ± the standard deviation over the runs, and Step lists each run's step."
        )
    if any(row[5] is not None for row in rows):
        lines[-1] += (
            " [low, high]: the 95% interval of the measured figure over the test classes (a "
            "bootstrap that resamples classes, report.bootstrap; with several seeds, of their "
            "mean); a figure from one seed carries no training-seed spread."
        )
    if any(row[6] is not None for row in rows):
        lines[-1] += ' NMI: the mean over k-means seeds (evaluate.nmi; docs, "Reproducibility").'
    if unsteady:
        lines[-1] += (
            f" ({KMEANS_MARK}x): one k-means' NMI of this embedding has a standard deviation "
            "of x points over the seeds (its partition is ambiguous), so that their mean may "
            f"move by more than {NMI_STEADY} points with the seeds (twice x / sqrt(seeds))."
        )
    return "\n".join(lines) + "\n"


def render_csv(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    seeded = any(row[4] is not None for row in rows)  # std columns with several seeds
    bounded = any(row[5] is not None for row in rows)  # interval columns
    spread = any(row[6] is not None for row in rows)  # the NMI's sd over k-means seeds
    head = ["method", "source", "step", *columns]
    head += [f"{c} std" for c in columns] if seeded else []
    head += [f"{c} {end}" for c in columns for end in ("low", "high")] if bounded else []
    head += ["nmi k-means sd"] if spread else []
    writer.writerow(head)
    for label, source, step, values, stds, cis, kmeans in rows:
        extra = [] if not seeded else ["" if v is None else v for v in (stds or [None] * len(columns))]
        if bounded:
            extra += [
                "" if ci is None else v for ci in (cis or [None] * len(columns)) for v in (ci or (0, 0))
            ]
        extra += ["" if kmeans is None else kmeans[0]] if spread else []
        writer.writerow([label, source, step] + ["" if v is None else v for v in values] + extra)
    return buf.getvalue()


# what each method is compared with: DSCL trained the same way (the last layer, or all layers)
COUNTERPART = {"nothing": "dscl_last", "last_layer": "dscl_last", "all_layers": "dscl_e2e"}


def build_comparison(methods: list[str], metrics_dir: Path, ks: tuple[int, ...], differences: dict):
    """Rows ``(ours, baseline, variant, values, cis)`` of "DSCL minus baseline": each
    baseline of ``methods`` against the DSCL method trained as it is (:data:`COUNTERPART`),
    where both ran. ``values``: the difference of the table's figures (percent);
    ``cis``: ``(low, high, holds)`` of the paired bootstrap difference, from
    ``differences[(ours, baseline)][variant][metric]`` (:class:`dscl.bootstrap.Interval`)."""
    columns = ["nmi"] + [f"recall@{k}" for k in ks] + list(RETRIEVAL)
    rows = []
    for baseline in methods:
        ours = COUNTERPART[METHODS.get(baseline).learns]
        if baseline.startswith("dscl_") or ours not in methods:
            continue
        a = json.loads((metrics_dir / f"{ours}.json").read_text())
        b = json.loads((metrics_dir / f"{baseline}.json").read_text())
        for variant in VARIANTS:
            found = differences.get((ours, baseline), {}).get(variant, {})
            values = [round(a[variant][c] - b[variant][c], 2) for c in columns]
            cis = [None if c not in found else (*_percent(found[c]), found[c].holds) for c in columns]
            rows.append((ours, baseline, variant, values, cis))
    return columns, rows


def render_comparison_markdown(dataset: str, columns, rows) -> str:
    head = ["DSCL", "minus", "Variant"] + [metric_label(c) for c in columns]
    lines = table_head(f"{dataset}: DSCL minus each baseline (percentage points)", head)
    for ours, baseline, variant, values, cis in rows:
        cells = []
        for v, ci in zip(values, cis):
            cell = f"{v:+.2f}"
            if ci is not None:
                cell = (f"**{cell}**" if ci[2] else cell) + _ci(ci[:2], signed=True)
            cells.append(cell)
        lines.append(
            "| " + " | ".join([METHOD_NAMES[ours], METHOD_NAMES[baseline], VARIANTS[variant], *cells]) + " |"
        )
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


def render_comparison_csv(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["ours", "baseline", "variant"]
        + [f"{c} {x}" for c in columns for x in ("diff", "low", "high", "holds")]
    )
    for ours, baseline, variant, values, cis in rows:
        cells = []
        for v, ci in zip(values, cis):
            cells += [v, *(("", "", "") if ci is None else (ci[0], ci[1], int(ci[2])))]
        writer.writerow([ours, baseline, variant, *cells])
    return buf.getvalue()
