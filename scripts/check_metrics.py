"""Regression gate: fail when a metric dropped against a committed baseline.

``dvc metrics diff`` reports changes but always exits 0; this script compares every
metric of ``reports/metrics/**.json`` in the workspace with the same file at a git
revision (default ``HEAD``: the committed results) and exits 1 when any value is lower
by more than ``--tolerance`` percentage points, or when a baseline file or metric is
missing. Improvements and small drops are listed and pass.

    python scripts/check_metrics.py --rev HEAD --tolerance 2.0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def flatten(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (int, float)):
            out[key] = float(v)
    return out


def baseline_files(rev: str, root: str) -> dict[str, dict]:
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "--", root],
                           check=True, capture_output=True, text=True).stdout.split()
    return {n: json.loads(subprocess.run(["git", "show", f"{rev}:{n}"], check=True,
                                         capture_output=True, text=True).stdout)
            for n in names if n.endswith(".json")}


def compare(baseline: dict[str, dict], tolerance: float) -> list[str]:
    """Return the failures; print one line per metric. Paths are relative to the
    repository root, the working directory."""
    failures = []
    for name, base in sorted(baseline.items()):
        path = Path(name)
        if not path.is_file():
            failures.append(f"{name}: missing from the workspace")
            continue
        cur = flatten(json.loads(path.read_text()))
        for metric, old in flatten(base).items():
            new = cur.get(metric)
            if new is None:
                failures.append(f"{name}: {metric} missing")
                continue
            delta = new - old
            status = "FAIL" if delta < -tolerance else "ok"
            print(f"{status:4} {name} {metric}: {old:.2f} -> {new:.2f} ({delta:+.2f})")
            if status == "FAIL":
                failures.append(f"{name}: {metric} dropped {old:.2f} -> {new:.2f}")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="git revision holding the baseline")
    parser.add_argument("--metrics", default="reports/metrics", help="metrics folder")
    parser.add_argument("--tolerance", type=float, default=2.0,
                        help="largest allowed drop, in percentage points (default 2.0)")
    args = parser.parse_args(argv)
    baseline = baseline_files(args.rev, args.metrics)
    if not baseline:
        print(f"no baseline metrics under {args.metrics} at {args.rev}", file=sys.stderr)
        return 1
    failures = compare(baseline, args.tolerance)
    if failures:
        print(f"\n{len(failures)} regression(s) beyond {args.tolerance} points:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print(f"\nno metric dropped by more than {args.tolerance} points against {args.rev}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
