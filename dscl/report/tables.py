"""The paper's tables: one row per method and spectral-clustering variant, in Markdown
and CSV; where the paper published the row (Tables 1-3), the reported figures and the
difference (measured - reported) beside it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from dscl.methods import METHODS
from dscl.paper_results import reported

__all__ = [
    "METHOD_NAMES",
    "VARIANTS",
    "build_rows",
    "metric_label",
    "render_csv",
    "render_markdown",
    "selected_step",
]

METHOD_NAMES = {name: method.title for name, method in METHODS.items()}
VARIANTS = {"with_sc": "with SC", "without_sc": "without SC"}


RETRIEVAL = ("map@r", "r_precision")  # Musgrave et al. 2020; the paper has no such column
LABELS = {"nmi": "NMI", "map@r": "MAP@R", "r_precision": "RP"}


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
):
    """Rows of the table: ``(label, source, step, values, stds)``, source "measured",
    "reported" or "difference"; ``step`` says which training step was selected; ``stds``:
    the standard deviations over seeds of a measured row (None with one seed)."""
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
            rows.append(
                (
                    label,
                    "measured",
                    step,
                    [got.get(c) for c in columns],
                    None if spread is None else [spread.get(c) for c in columns],
                )
            )
            paper = reported(dataset, method, variant)
            if paper is not None:
                ref = [paper.get(c) for c in columns]
                rows.append((label, "reported", "", ref, None))
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
                    )
                )
    return columns, rows


def render_markdown(dataset: str, columns, rows) -> str:
    head = ["Method", "Source", "Step"] + [metric_label(c) for c in columns]
    lines = [
        f"# {dataset}: NMI, Recall@K, MAP@R and R-Precision (%)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, source, step, values, stds in rows:
        cells = [
            "—" if v is None else (f"{v:+.2f}" if source == "difference" else f"{v:.2f}") for v in values
        ]
        if stds is not None:  # several seeds: mean ± standard deviation
            cells = [c if sd is None else f"{c} ± {sd:.2f}" for c, sd in zip(cells, stds)]
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
    if any(stds is not None for *_, stds in rows):
        lines[-1] += (
            " With several seeds (train.common.seeds), a measured cell is the mean "
            "± the standard deviation over the runs, and Step lists each run's step."
        )
    return "\n".join(lines) + "\n"


def render_csv(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    seeded = any(stds is not None for *_, stds in rows)  # std columns with several seeds
    writer.writerow(
        ["method", "source", "step"] + columns + ([f"{c} std" for c in columns] if seeded else [])
    )
    for label, source, step, values, stds in rows:
        extra = [] if not seeded else ["" if v is None else v for v in (stds or [None] * len(columns))]
        writer.writerow([label, source, step] + ["" if v is None else v for v in values] + extra)
    return buf.getvalue()
