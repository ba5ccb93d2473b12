"""The pipeline's first stages at the paper's dataset sizes, on simulated archives
(scripts/simulate_datasets.py): their wall time and peak memory at fractions of each
dataset, and each one's growth exponent in n (the slope of log time against log n).

For each dataset and fraction, in a scratch copy of the project: the simulator writes
the archive, ``dvc repro prepare@<dataset>`` reads it through the real code path
(``prepare.verify_checksum: false``), and ``dvc status`` is timed on the result (what
every later ``dvc repro`` pays first). Figures are costs, never results.

    python benchmarks/bench_scale.py --datasets cub200 cars196 sop --fractions 0.125 0.25 0.5 1
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import simulate_datasets as sim  # noqa: E402


def timed(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """(wall seconds, peak resident memory in GiB of the command and its children);
    ``ok``: the exit statuses that are not failures."""
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    peak_kib = int(out.stderr.strip().splitlines()[-1])
    return wall, peak_kib / 2**20


def project(root: Path, dataset: str, raw: Path) -> None:
    """A git and DVC project holding this checkout's code and pipeline, set to prepare
    ``dataset`` from the simulated archive under ``raw``."""
    for name in ("dscl", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = [dataset]
    params["prepare"].update(root=str(raw), verify_checksum=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)


def measure(dataset: str, fraction: float, size: int, work: Path) -> dict:
    raw = work / "raw"
    start = time.perf_counter()
    n = sim.simulate(dataset, raw, fraction, size)
    row = {"dataset": dataset, "fraction": fraction, "n": n, "simulate": (time.perf_counter() - start, None)}
    root = work / "project"
    project(root, dataset, raw)
    dvc = [sys.executable, "-m", "dvc"]
    row["prepare"] = timed([*dvc, "repro", "-q", f"prepare@{dataset}"], root)
    row["dvc status"] = timed([*dvc, "status", "-q"], root, ok=(0, 1))  # 1: later stages to run
    return row


def slope(rows: list[dict], step: str) -> float:
    """The growth exponent of ``step``'s time in n (least squares on log-log)."""
    n = np.log([r["n"] for r in rows])
    t = np.log([max(r[step][0], 1e-3) for r in rows])
    return float(np.polyfit(n, t, 1)[0]) if len(rows) > 1 else math.nan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["cub200", "cars196", "sop"], choices=sorted(sim.WRITERS)
    )
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.125, 0.25, 0.5, 1.0])
    parser.add_argument("--size", type=int, default=64, help="image side (default 64)")
    args = parser.parse_args(argv)
    steps = ("simulate", "prepare", "dvc status")
    print("| dataset | fraction | images | " + " | ".join(f"{s} s (GiB)" for s in steps) + " |")
    print("|---|---|---|" + "---|" * len(steps))
    rows: dict[str, list[dict]] = {}
    for dataset in args.datasets:
        for fraction in args.fractions:
            with tempfile.TemporaryDirectory() as tmp:
                row = measure(dataset, fraction, args.size, Path(tmp))
            rows.setdefault(dataset, []).append(row)
            cells = [
                f"{w:.1f}" + (f" ({m:.2f})" if m is not None else "") for w, m in (row[s] for s in steps)
            ]
            print(f"| {dataset} | {fraction:g} | {row['n']:,} | " + " | ".join(cells) + " |", flush=True)
    print("\ngrowth exponent in n (time ~ n^b):")
    for dataset, found in rows.items():
        print(f"  {dataset}: " + ", ".join(f"{s} {slope(found, s):.2f}" for s in steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
