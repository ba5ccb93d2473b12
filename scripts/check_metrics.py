"""Regression gate: fail when a metric dropped against a committed baseline.

``dvc metrics diff`` reports changes but always exits 0; this script compares every
metric of ``reports/metrics/**.json`` in the workspace with the same file at a git
revision (default ``HEAD``: the committed results), both read through DVC's API
(``DVCFileSystem``, ``dvc.api.metrics_show``), and exits 1 when any value is lower by
more than ``--tolerance`` percentage points, or when a baseline file or metric is
missing. Improvements and small drops are listed and pass.

    python scripts/check_metrics.py --rev HEAD --tolerance 2.0
"""

from __future__ import annotations

import argparse
import sys


def flatten(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (int, float)):
            out[key] = float(v)
    return out


def read_metrics(rev: str | None, root: str) -> dict[str, dict]:
    """Every metrics file under ``root`` at git revision ``rev`` (None: the workspace),
    ``{path: metrics}``, read through DVC's API (git-tracked or DVC-tracked alike)."""
    from dvc.api import DVCFileSystem, metrics_show

    fs = DVCFileSystem(".", rev=rev)
    if not fs.isdir(root):
        return {}
    names = sorted(p.lstrip("/") for p in fs.find(root) if p.endswith(".json"))
    # one file per call: metrics_show keys several files' metrics by "path:key"
    return {name: metrics_show(name, rev=rev) for name in names}


def compare(baseline: dict[str, dict], current: dict[str, dict], tolerance: float) -> list[str]:
    """Return the failures; print one line per metric."""
    failures = []
    for name, base in sorted(baseline.items()):
        if name not in current:
            failures.append(f"{name}: missing from the workspace")
            continue
        cur = flatten(current[name])
        for metric, old in flatten(base).items():
            if metric.startswith("std."):  # the spread over seeds: not a score (means are)
                continue
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
    parser.add_argument(
        "--tolerance",
        type=float,
        default=2.0,
        help="largest allowed drop, in percentage points (default 2.0)",
    )
    args = parser.parse_args(argv)
    baseline = read_metrics(args.rev, args.metrics)
    if not baseline:
        print(f"no baseline metrics under {args.metrics} at {args.rev}", file=sys.stderr)
        return 1
    failures = compare(baseline, read_metrics(None, args.metrics), args.tolerance)
    if failures:
        print(f"\n{len(failures)} regression(s) beyond {args.tolerance} points:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print(f"\nno metric dropped by more than {args.tolerance} points against {args.rev}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
