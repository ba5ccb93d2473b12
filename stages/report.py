"""Stage report: the paper's tables (Markdown and CSV), a comparison of the methods and
t-SNE plots.

For each dataset, ``<tables>/<dataset>.md`` and ``.csv`` have one row per method and
spectral-clustering variant; where the paper published the row (Tables 1-3), the
reported figures and the difference (measured - reported) are shown beside it.
``<plots>/<dataset>/methods.png`` compares the methods (NMI and R@1, with and without
SC); ``<plots>/<dataset>/tsne_<method>.png`` shows the l2-normalised test embedding,
coloured by class.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dscl.atomic import atomic_path, write_text
from dscl.methods import METHODS
from dscl.metrics import l2_normalize
from dscl.paper_results import reported
from stages.cli import run
from stages.params import convert, entry, load_params, section

METHOD_NAMES = {name: method.title for name, method in METHODS.items()}
VARIANTS = {"with_sc": "with SC", "without_sc": "without SC"}


@dataclass(frozen=True)
class TsneParams:
    perplexity: float = 30.0
    max_points: int = 3000
    max_classes: int = 20
    seed: int = 0


@dataclass(frozen=True)
class ReportParams:
    tsne: TsneParams


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


def build_rows(dataset: str, methods: list[str], metrics_dir: Path, ks: tuple[int, ...],
               embeddings_dir: Path | None = None):
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
            rows.append((label, "measured", step, [got.get(c) for c in columns],
                         None if spread is None else [spread.get(c) for c in columns]))
            paper = reported(dataset, method, variant)
            if paper is not None:
                ref = [paper.get(c) for c in columns]
                rows.append((label, "reported", "", ref, None))
                rows.append((label, "difference", "", [
                    None if g is None or r is None else round(g - r, 2)
                    for g, r in zip([got.get(c) for c in columns], ref)], None))
    return columns, rows


def render_markdown(dataset: str, columns, rows) -> str:
    head = ["Method", "Source", "Step"] + [metric_label(c) for c in columns]
    lines = [f"# {dataset}: NMI, Recall@K, MAP@R and R-Precision (%)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, source, step, values, stds in rows:
        cells = ["—" if v is None else (f"{v:+.2f}" if source == "difference" else f"{v:.2f}")
                 for v in values]
        if stds is not None:  # several seeds: mean ± standard deviation
            cells = [c if sd is None else f"{c} ± {sd:.2f}" for c, sd in zip(cells, stds)]
        lines.append("| " + " | ".join([label, source, step, *cells]) + " |")
    lines += ["", "Measured rows come from `reports/metrics/" + dataset + "/<method>.json`; "
              "reported rows are the paper's Tables 1-3 (which have no MAP@R or R-Precision, RP); "
              "difference = measured - reported. "
              "Step: the training step whose model is evaluated / the iterations run, chosen "
              "on validation classes carved from the training classes unless marked "
              f"{TEST_SELECTED} (chosen on the test classes, the 2017 practice) or 'last' "
              "(no selection)."]
    if any(stds is not None for *_, stds in rows):
        lines[-1] += (" With several seeds (train.common.seeds), a measured cell is the mean "
                      "± the standard deviation over the runs, and Step lists each run's step.")
    return "\n".join(lines) + "\n"


def render_csv(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    seeded = any(stds is not None for *_, stds in rows)  # std columns with several seeds
    writer.writerow(["method", "source", "step"] + columns + ([f"{c} std" for c in columns] if seeded else []))
    for label, source, step, values, stds in rows:
        extra = [] if not seeded else ["" if v is None else v for v in (stds or [None] * len(columns))]
        writer.writerow([label, source, step] + ["" if v is None else v for v in values] + extra)
    return buf.getvalue()


def plot_methods(dataset: str, methods: list[str], metrics_dir: Path, out: Path) -> None:
    """One figure comparing the methods: NMI and R@1 (%), with and without SC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {m: json.loads((metrics_dir / f"{m}.json").read_text()) for m in methods}
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.9 + 0.42 * len(methods)), dpi=100, sharey=True)
    y = np.arange(len(methods))
    for ax, metric in zip(axes, ("recall@1", "nmi")):
        for shift, (variant, vname), color in zip((-0.2, 0.2), VARIANTS.items(), ("#1f77b4", "#ff7f0e")):
            values = [measured[m][variant][metric] for m in methods]
            spread = [measured[m].get("std", {}).get(variant, {}).get(metric) for m in methods]
            errors = None if all(e is None for e in spread) else [e or 0.0 for e in spread]
            bars = ax.barh(y + shift, values, height=0.38, color=color, label=vname, xerr=errors,
                           error_kw={"elinewidth": 0.8, "capsize": 2})
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        ax.set_title(f"{dataset}: {metric_label(metric)} (%, test classes)", fontsize=10)
        ax.set_xlim(0, 105)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [METHOD_NAMES[m] for m in methods], fontsize=8)
    axes[0].invert_yaxis()
    axes[1].legend(fontsize=8, loc="lower right")
    _save(fig, out)


def plot_tsne(emb: np.ndarray, labels: np.ndarray, title: str, out: Path, cfg: TsneParams) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(cfg.seed)
    classes = np.unique(labels)
    if len(classes) > cfg.max_classes:
        classes = np.sort(rng.choice(classes, cfg.max_classes, replace=False))
    idx = np.flatnonzero(np.isin(labels, classes))
    if len(idx) > cfg.max_points:
        idx = np.sort(rng.choice(idx, cfg.max_points, replace=False))
    x = l2_normalize(emb[idx].astype(np.float64))
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if np.ptp(x, axis=0).max() < 1e-6:  # t-SNE is undefined when every point coincides
        ax.text(0.5, 0.5, "degenerate embedding:\nall test points coincide", ha="center",
                va="center", transform=ax.transAxes)
        _save(fig, out)
        return
    perplexity = min(cfg.perplexity, (len(idx) - 1) / 3)
    # exact t-SNE for small sets (Barnes-Hut is for large ones and fails on tiny ones)
    method = "exact" if len(idx) <= 1000 else "barnes_hut"
    xy = TSNE(perplexity=perplexity, init="pca", method=method, random_state=cfg.seed).fit_transform(x)
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    for i, c in enumerate(classes):
        sel = labels[idx] == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(i % cmap.N), label=str(c))
    if len(classes) <= 10:
        ax.legend(title="class", fontsize=7, markerscale=2, loc="best")
    _save(fig, out)


def _save(fig, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--metrics", required=True, type=Path, help="reports/metrics/<dataset>")
    parser.add_argument("--embeddings", required=True, type=Path, help="data/embeddings/<dataset>")
    parser.add_argument("--table", required=True, type=Path,
                        help="reports/tables/<dataset>: writes <table>.md and <table>.csv")
    parser.add_argument("--plots", required=True, type=Path, help="reports/plots/<dataset>")
    args = parser.parse_args(argv)
    params = load_params()
    cfg = section(params, "report", ReportParams)
    ks = convert(entry(params, "evaluate.recall_ks", args.dataset, "dataset"), tuple[int, ...],
                 f"evaluate.recall_ks.{args.dataset}")
    columns, rows = build_rows(args.dataset, params["methods"], args.metrics, ks, args.embeddings)
    write_text(args.table.with_suffix(".md"), render_markdown(args.dataset, columns, rows))
    write_text(args.table.with_suffix(".csv"), render_csv(columns, rows))
    plot_methods(args.dataset, params["methods"], args.metrics, args.plots / "methods.png")
    for method in params["methods"]:
        src = args.embeddings / method
        plot_tsne(np.load(src / "test.npy"), np.load(src / "test_labels.npy"),
                  f"{args.dataset}: {METHOD_NAMES[method]} (test, t-SNE)",
                  args.plots / f"tsne_{method}.png", cfg.tsne)
    print(f"report@{args.dataset}: {args.table}.md/.csv, plots in {args.plots}")


if __name__ == "__main__":
    run(main)
