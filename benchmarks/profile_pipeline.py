"""Where the time of the digits ``dvc repro`` goes: per stage, start-up (imports), the
work itself and DVC's own time; and per step of the report.

A fresh clone of this repository (its committed code and ``params.yaml``) runs
``dvc repro`` from scratch, as a new user would; each line printed is stamped, so a
stage's time splits into its command (from DVC starting it to the command's last line
of output) and DVC's time after it (hashing and caching the outputs, reading and writing
``dvc.lock``, collecting the next stage). The start-up of each stage's module
(``python -c "import stages.<name>"``, the median of three) is measured apart and
subtracted from its command. Then the report stage runs once more under cProfile, and
its steps (tables, intervals, t-SNE, galleries, the methods figure) are read off.

    python benchmarks/profile_pipeline.py              # digits, 2 cores: a few minutes

Prints Markdown tables (the benchmarks page carries them). The test suite's own profile
is pytest's: ``python -m pytest -q --durations=15``.
"""

from __future__ import annotations

import argparse
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# the report's steps: (label, function of dscl.report) whose cumulative time is read off
REPORT_STEPS = [
    ("tables and comparison", "build_table", "build_comparison"),
    ("intervals (bootstrap)", "bootstrap_methods"),
    ("t-SNE plots", "plot_tsne"),
    ("retrieval galleries", "write_galleries"),
    ("the methods figure", "plot_methods"),
]


def stamped_run(cmd: list[str], cwd: Path) -> list[tuple[float, str]]:
    """Run ``cmd``, returning each output line with the time it arrived (from the start)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in proc.stdout]
    if proc.wait():
        tail = "\n".join(text for _, text in lines[-30:])
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{tail}")
    lines.append((time.perf_counter() - start, "<end>"))
    return lines


# DVC's own lines: not the command's output
DVC_LINES = ("Updating lock file", "Use `dvc push`", "To track the changes", "dvc config", "git add")


def _output(text: str) -> bool:
    """A line of a command's own output (not DVC's, not blank)."""
    return bool(text.strip()) and text != "<end>" and not text.strip().startswith(DVC_LINES)


def stage_times(lines: list[tuple[float, str]]) -> list[dict]:
    """Per stage: its name, total time, and the span of its command (started -> its last
    line of output)."""
    stages = []
    for t, text in lines:
        m = re.match(r"Running stage '([^']+)'", text)
        if m:
            stages.append({"name": m.group(1), "start": t, "cmd": None, "last": None})
        elif stages and text.startswith("> ") and stages[-1]["cmd"] is None:
            stages[-1]["cmd"] = stages[-1]["last"] = t
        elif stages and stages[-1]["cmd"] is not None and _output(text):
            stages[-1]["last"] = t
    end = lines[-1][0]
    for s, nxt in zip(stages, [*stages[1:], None]):
        s["total"] = (nxt["start"] if nxt else end) - s["start"]
        s["command"] = (s["last"] or s["start"]) - (s["cmd"] or s["start"])
    return stages


def startup(kind: str) -> float:
    """Median seconds to start a stage module's process (its imports)."""
    module = "stages.launch" if kind == "train" else f"stages.{kind}"
    code = f"import {module}" + ("; import stages.train" if kind == "train" else "")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report_steps(root: Path, dataset: str) -> list[tuple[str, float]]:
    """The report stage once more under cProfile: its total and each step's time."""
    prof = root / "report.prof"
    cmd = [
        sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "stages.report", "--dataset", dataset,
        "--metrics", f"reports/metrics/{dataset}", "--embeddings", f"data/embeddings/{dataset}",
        "--evaluation", f"data/evaluation/{dataset}", "--prepared", f"data/prepared/{dataset}",
        "--table", f"{root}/profile-table", "--plots", f"{root}/profile-plots",
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    total = time.perf_counter() - t0
    stats = pstats.Stats(str(prof)).stats
    cumulative = defaultdict(float)
    for (path, _, name), (_, _, _, ct, _) in stats.items():
        if "dscl" in path:
            cumulative[name] = max(cumulative[name], ct)
    rows = [(label, sum(cumulative[f] for f in names)) for label, *names in REPORT_STEPS]
    return [("the whole stage (under cProfile)", total), *rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
        t0 = time.perf_counter()
        lines = stamped_run([sys.executable, "-m", "dvc", "repro"], root)
        wall = time.perf_counter() - t0
        stages = stage_times(lines)
        kinds: dict[str, list[dict]] = defaultdict(list)
        for s in stages:
            kinds[s["name"].split("@")[0]].append(s)
        print(f"`dvc repro` of {args.dataset} from a fresh clone: {wall:.0f} s wall, {len(stages)} stages\n")
        print("| stage | runs | start-up (imports) | work | DVC | total |")
        print("|---|---|---|---|---|---|")
        sums = defaultdict(float)
        for kind, runs in kinds.items():
            up = startup(kind) * len(runs)
            command = sum(s["command"] for s in runs)
            total = sum(s["total"] for s in runs)
            row = {"start-up": up, "work": max(command - up, 0.0), "DVC": total - command, "total": total}
            for k, v in row.items():
                sums[k] += v
            cells = " | ".join(f"{row[k]:.1f} s" for k in ("start-up", "work", "DVC", "total"))
            print(f"| {kind} | {len(runs)} | {cells} |")
        cells = " | ".join(f"**{sums[k]:.1f} s**" for k in ("start-up", "work", "DVC", "total"))
        print(f"| all | {len(stages)} | {cells} |")
        print(f"\nDVC before the first stage and after the last: {wall - sums['total']:.1f} s\n")
        print("| report step | seconds |\n|---|---|")
        for label, seconds in report_steps(root, args.dataset):
            print(f"| {label} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
