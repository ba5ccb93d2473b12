"""Regression gate: did a figure move beyond its measured rerun noise?

Every figure of ``reports/metrics/<dataset>/<method>.json`` in the workspace is compared
with the same figure at a baseline revision: by default the main branch's results at the
merge base of ``HEAD`` and ``main`` (on ``main`` itself, ``HEAD``), so that a regression
committed on a branch is caught against what it branched from (``--rev`` names another).
Each figure's tolerance is its measured rerun noise (``reports/noise/<dataset>.json``,
written by ``scripts/measure_noise.py``: how far the figure moves between numeric
environments and, for a mean over seeds, with the seeds), not one number for every
figure; a figure that noise file does not cover gets the largest tolerance of its
metric on that dataset, and is marked so.

A figure that dropped by more than its tolerance fails; so does one that is NaN or
infinite (in the workspace or the baseline), a figure or a whole metrics file that the
baseline has and the workspace lacks. A figure that rose beyond its tolerance passes and
is listed as improved; a method the baseline lacks is listed as new. The output is one
Markdown table of what moved, fit to post on a pull request (``--summary FILE`` also
appends it to a file, e.g. GitHub's ``$GITHUB_STEP_SUMMARY``). Exit status: 0 pass,
1 fail, 2 bad input.

    python scripts/check_metrics.py
    python scripts/check_metrics.py --rev HEAD~1 --summary "$GITHUB_STEP_SUMMARY"

With ``--report``, the output is the pull request's whole report (the CI workflow posts it
as the job's summary): the gate's table, ``dvc params diff`` against the baseline, the
results table of each dataset whose table changed, and the figures that changed (listed,
copied to ``--figures-dir`` for upload, and the methods figure shown inline from
``--figure-url``, a template with ``{path}``).

    python scripts/check_metrics.py --report --summary "$GITHUB_STEP_SUMMARY" \
        --figures-dir changed-figures --figure-url "https://github.com/OWNER/REPO/raw/SHA/{path}"

Why not ``dvc metrics diff --json`` alone: it reports the figures of the stages that the
current ``params.yaml`` declares, not every committed metrics file (the testbed's are
committed while the default lists digits alone), and it drops non-numeric values, which
here are the very NaN the gate must fail on. The metrics files are tracked by git
(``cache: false``), so both sides are read as files: the baseline with ``git show``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# keys of a metrics file that are not figures: the spread over seeds, each seed's run,
# the k-means behind the NMI, and where the figures were computed
NOT_FIGURES = ("std", "runs", "kmeans", "environment")
VERDICTS = ("FAIL", "improved", "new", "ok")


@dataclass(frozen=True)
class Row:
    """One compared figure: ``file`` (relative to the metrics folder), ``figure``
    (``with_sc.nmi``), the baseline and current values (None: absent), the tolerance,
    and the verdict with its reason."""

    file: str
    figure: str
    old: float | None
    new: float | None
    tolerance: float | None
    verdict: str
    reason: str = ""

    @property
    def delta(self) -> float | None:
        if self.old is None or self.new is None or not (math.isfinite(self.old) and math.isfinite(self.new)):
            return None
        return self.new - self.old


def figures(metrics: dict) -> dict[str, float]:
    """``{"with_sc.nmi": 28.87, ...}``: the figures of one metrics file (means over seeds
    where there are several); NaN and infinities are kept, and so is a value that is not
    a number (the gate then names it)."""
    out = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if not prefix and key in NOT_FIGURES:
                continue
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, name + ".")
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out[name] = float(value)
            else:  # a string, a list, null or a boolean where a figure belongs: kept, to be named
                out[name] = value

    walk(metrics, "")
    return out


def _not_number(value) -> bool:
    return value is not None and not isinstance(value, float)


def tolerance_for(tolerances: dict, dataset: str, method: str, figure: str) -> tuple[float, bool]:
    """``(tolerance, measured)``: the figure's measured tolerance from the dataset's noise
    file, or, for a figure it does not cover, the largest tolerance of the same figure
    on that dataset (``measured`` False)."""
    by_method = tolerances.get(dataset, {})
    own = by_method.get(method, {}).get(figure)
    if own is not None:
        return float(own), True
    others = [t[figure] for t in by_method.values() if figure in t]
    if others:
        return float(max(others)), False
    raise ValueError(
        f"no tolerance for {figure} on {dataset}: reports/noise/{dataset}.json does not measure it "
        f"(run scripts/measure_noise.py --dataset {dataset})"
    )


def compare(baseline: dict[str, dict], current: dict[str, dict], tolerances: dict) -> list[Row]:
    """Every figure of ``baseline`` and ``current`` (``{"<dataset>/<method>.json":
    metrics}``) with its verdict; see the module's docstring."""
    rows = []
    for name in sorted(set(baseline) | set(current)):
        dataset, method = Path(name).parent.name, Path(name).stem
        old_figures = figures(baseline[name]) if name in baseline else {}
        new_figures = figures(current[name]) if name in current else {}
        if name not in current:
            rows.append(Row(name, "(file)", None, None, None, "FAIL", "metrics file missing"))
            continue
        for figure in sorted(set(old_figures) | set(new_figures)):
            old, new = old_figures.get(figure), new_figures.get(figure)
            odd = [(side, v) for side, v in (("now", new), ("in the baseline", old)) if _not_number(v)]
            if odd:
                side, value = odd[0]
                shown = [v if isinstance(v, float) else None for v in (old, new)]
                rows.append(Row(name, figure, *shown, None, "FAIL", f"not a number {side}: {value!r}"[:80]))
                continue
            if name not in baseline:
                verdict, reason = ("FAIL", "not finite") if not math.isfinite(new) else ("new", "new method")
                rows.append(Row(name, figure, None, new, None, verdict, reason))
                continue
            if new is None:
                rows.append(Row(name, figure, old, None, None, "FAIL", "figure missing"))
                continue
            if old is None:
                verdict, reason = ("FAIL", "not finite") if not math.isfinite(new) else ("new", "new figure")
                rows.append(Row(name, figure, None, new, None, verdict, reason))
                continue
            tol, measured = tolerance_for(tolerances, dataset, method, figure)
            note = "" if measured else " (tolerance of the dataset's other methods)"
            if not math.isfinite(new) or not math.isfinite(old):
                side = "now" if not math.isfinite(new) else "in the baseline"
                rows.append(Row(name, figure, old, new, tol, "FAIL", f"not finite {side}"))
            elif new - old < -tol:
                rows.append(Row(name, figure, old, new, tol, "FAIL", "dropped beyond its noise" + note))
            elif new - old > tol:
                rows.append(Row(name, figure, old, new, tol, "improved", "rose beyond its noise" + note))
            else:
                rows.append(Row(name, figure, old, new, tol, "ok", "within its noise" + note))
    return rows


def _number(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    if not math.isfinite(v):
        return str(v)
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def markdown(rows: list[Row], baseline_label: str) -> str:
    """The table of what moved (every failure, improvement and new figure, and any
    figure that changed within its noise), with a one-line verdict above it."""
    failed = [r for r in rows if r.verdict == "FAIL"]
    moved = [r for r in rows if r.verdict != "ok" or (r.delta is not None and r.delta != 0.0)]
    order = {v: i for i, v in enumerate(VERDICTS)}
    moved.sort(key=lambda r: (order[r.verdict], r.file, r.figure))
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    head = (
        f"**Metrics gate: {'FAIL' if failed else 'pass'}** against {baseline_label}: "
        f"{len(rows)} figures, {counts['FAIL']} failed, {counts['improved']} improved, "
        f"{counts['new']} new, {counts['ok']} within their rerun noise "
        f"({sum(r.verdict == 'ok' and r.delta not in (None, 0.0) for r in rows)} of them moved)."
    )
    if not moved:
        return head + "\n\nNo figure moved.\n"
    lines = [
        head,
        "",
        "| File | Figure | Baseline | Now | Change | Tolerance | Verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in moved:
        tol = "—" if r.tolerance is None else f"±{r.tolerance:.2f}"
        verdict = f"**{r.verdict}**: {r.reason}" if r.verdict == "FAIL" else f"{r.verdict}: {r.reason}"
        lines.append(
            f"| {r.file} | {r.figure} | {_number(r.old)} | {_number(r.new)} | "
            f"{_number(r.delta, signed=True)} | {tol} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True)
    if out.returncode:
        raise ValueError(f"git {' '.join(args)}: {out.stderr.strip() or 'failed'}")
    return out.stdout


def default_baseline() -> tuple[str, str]:
    """``(revision, label)``: the merge base of HEAD with the main branch (``main``, else
    ``origin/main``; on main itself, HEAD)."""
    for branch in ("main", "origin/main", "master", "origin/master"):
        try:
            base = _git("merge-base", "HEAD", branch).strip()
        except ValueError:
            continue
        return base, f"the main branch's results at {base[:10]} (merge base of HEAD and {branch})"
    raise ValueError("no main branch to compare with: name the baseline with --rev")


def read_workspace(root: Path) -> dict[str, dict]:
    """Every metrics file under ``root``, keyed ``<dataset>/<method>.json``."""
    out = {}
    for p in sorted(root.glob("*/*.json")):
        if not p.is_file():
            raise ValueError(
                f"{p}: expected a metrics file, found a {'folder' if p.is_dir() else 'special file'}"
            )
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"{p}: cannot be read as a metrics file ({err})") from None
        out[str(p.relative_to(root))] = _load(text, p)
    return out


def read_revision(rev: str, root: Path) -> dict[str, dict]:
    """The metrics files under ``root`` as committed at ``rev`` (git-tracked files)."""
    names = _git("ls-tree", "-r", "--name-only", rev, "--", root.as_posix()).split()
    return {
        str(Path(n).relative_to(root)): _load(_git("show", f"{rev}:{n}"), n)
        for n in names
        if n.endswith(".json") and len(Path(n).relative_to(root).parts) == 2
    }


def read_tolerances(folder: Path) -> dict:
    """``{dataset: {method: {figure: tolerance}}}`` from every ``<dataset>.json`` of the
    noise folder."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        noise = _load(path.read_text(), path)
        out[path.stem] = {m: v["tolerance"] for m, v in noise.get("methods", {}).items()}
    return out


def _load(text: str, where) -> dict:
    try:
        data = json.loads(text)  # Python's reader accepts NaN and Infinity, as written
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not a JSON metrics file ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of figures, got {type(data).__name__}")
    return data


def changed_files(rev: str, *paths: str) -> list[str]:
    """The files under ``paths`` that differ between ``rev`` and the working tree, new
    untracked files included."""
    diff = _git("diff", "--name-only", rev, "--", *paths).split()
    new = _git("ls-files", "--others", "--exclude-standard", "--", *paths).split()
    return sorted(set(diff) | set(new))


def params_diff(rev: str) -> str:
    """``dvc params diff`` against ``rev`` as a Markdown table ("" when nothing changed)."""
    out = subprocess.run(["dvc", "params", "diff", rev, "--md"], capture_output=True, text=True)
    if out.returncode:
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return f"(`dvc params diff` failed: {why})"
    return out.stdout.strip()


def report(gate: str, params: str, tables: dict[str, str], figures: list[str], figure_url: str | None) -> str:
    """The pull request's report: the gate's table, the parameters that changed, the
    results tables that changed (``{path: Markdown}``) and the figures that changed."""
    parts = ["## Metrics", "", gate.rstrip(), "", "## Parameters", ""]
    parts.append(params or "No parameter changed.")
    parts += ["", "## Results that changed", ""]
    if not tables:
        parts.append("No results table changed.")
    for path, text in tables.items():
        parts += [f"### `{path}`", "", text.rstrip(), ""]
    parts += ["", "## Figures that changed", ""]
    if not figures:
        parts.append("No figure changed.")
    else:
        parts.append("In the job's artifact `changed-figures`:")
        parts += [f"- `{f}`" for f in figures]
        inline = [f for f in figures if Path(f).name == "methods.png"]
        for f in inline if figure_url else []:
            parts += ["", f"![{f}]({figure_url.format(path=f)})"]
    return "\n".join(parts) + "\n"


def pull_request_report(rev: str, gate: str, figures_dir: Path | None, figure_url: str | None) -> str:
    """:func:`report` of the working tree against ``rev``; the changed figures copied to
    ``figures_dir`` (their paths kept) for upload."""
    tables = {
        p: Path(p).read_text()
        for p in changed_files(rev, "reports/tables")
        if p.endswith(".md") and Path(p).is_file()
    }
    figures = [p for p in changed_files(rev, "reports") if p.endswith(".png") and Path(p).is_file()]
    if figures_dir is not None:
        for f in figures:
            (figures_dir / f).parent.mkdir(parents=True, exist_ok=True)
            (figures_dir / f).write_bytes(Path(f).read_bytes())
    return report(gate, params_diff(rev), tables, figures, figure_url)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="the baseline's git revision (default: merge base with main)")
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics"), help="metrics folder")
    parser.add_argument("--noise", type=Path, default=Path("reports/noise"), help="measured tolerances")
    parser.add_argument("--summary", type=Path, help="also append the table to this file")
    parser.add_argument("--report", action="store_true", help="the pull request's whole report")
    parser.add_argument("--figures-dir", type=Path, help="with --report: copy the changed figures here")
    parser.add_argument("--figure-url", help="with --report: the URL of a figure, '{path}' in it")
    args = parser.parse_args(argv)
    try:
        if args.rev:
            rev, label = args.rev, f"the results at {args.rev}"
        else:
            rev, label = default_baseline()
        baseline = read_revision(rev, args.metrics)
        if not baseline:
            raise ValueError(f"no metrics files under {args.metrics} at {rev}")
        rows = compare(baseline, read_workspace(args.metrics), read_tolerances(args.noise))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = markdown(rows, label)
    if args.report:
        table = pull_request_report(rev, table, args.figures_dir, args.figure_url)
    print(table)
    if args.summary:
        with open(args.summary, "a") as f:
            f.write(table + "\n")
    return 1 if any(r.verdict == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
