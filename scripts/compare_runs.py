"""Compare two runs of the pipeline, to prove that a refactor changes code, not results.

    python scripts/compare_runs.py BEFORE AFTER [--prefix digits]

BEFORE and AFTER are two checkouts that each ran ``dvc repro``. Printed: the stages
whose params differ in ``dvc.lock`` (a refactor should have none), the outputs whose hash
differs, and the committed report files (``reports/``) whose bytes differ. For a model
folder whose hash differs, each model file's tensors are compared, and its record with
the keys that only one side has set apart, since a refactor may rename the record's
vocabulary. Exit code 1 when a result (a non-model output, a report file or a tensor)
differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def lock_outs(root: Path, prefix: str) -> tuple[dict, dict]:
    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    stages = {n: s for n, s in stages.items() if n.partition("@")[2].startswith(prefix)}
    outs = {o["path"]: o.get("md5") for s in stages.values() for o in s.get("outs", [])}
    return stages, outs


def compare_models(a: Path, b: Path) -> list[str]:
    """Model files whose tensors differ (the records' common keys must agree too)."""
    import torch

    problems = []
    for path in sorted(a.glob("*.pt")):
        x = torch.load(path, map_location="cpu", weights_only=True)
        y = torch.load(b / path.name, map_location="cpu", weights_only=True)
        sx, sy = x["state_dict"], y["state_dict"]
        if (sx is None) != (sy is None) or (
            sx is not None and (sx.keys() != sy.keys() or not all(torch.equal(sx[k], sy[k]) for k in sx))
        ):
            problems.append(f"{path}: tensors differ")
        common = set(x["record"]) & set(y["record"])
        if any(x["record"][k] != y["record"][k] for k in common):
            problems.append(f"{path}: record differs")
        only = sorted(set(x["record"]) ^ set(y["record"]))
        if only:
            print(f"  {path.parent.name}/{path.name}: record keys on one side only: {only}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--prefix", default="", help="only the stages of datasets starting so")
    args = parser.parse_args()
    sa, oa = lock_outs(args.before, args.prefix)
    sb, ob = lock_outs(args.after, args.prefix)
    params = [n for n in sa if n in sb and sa[n].get("params") != sb[n].get("params")]
    print(f"stages: {len(sa)} before, {len(sb)} after; params differ in {len(params)}: {params}")
    differ = [p for p in oa if p in ob and oa[p] != ob[p]]
    print(f"outputs: {len(oa)}; hash differs for {len(differ)}")
    problems = []
    for path in differ:
        print(f"  {path}")
        if path.startswith("models/"):
            problems += compare_models(args.before / path, args.after / path)
        else:
            problems.append(f"{path}: output differs")
    reports = sorted(
        p.relative_to(args.before)
        for p in (args.before / "reports").rglob("*")
        if p.is_file() and args.prefix in str(p)
    )
    moved = [
        str(p)
        for p in reports
        if (args.after / p).is_file() and (args.before / p).read_bytes() != (args.after / p).read_bytes()
    ]
    print(f"report files: {len(reports)} compared, {len(moved)} differ {moved}")
    problems += moved
    for problem in problems:
        print("DIFFERS:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
