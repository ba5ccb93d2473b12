"""Which stages a change of each library module re-runs: every module of ``dscl/`` is
touched in turn (a comment line appended, then restored), and the stages that ``dvc
status`` then marks (a dependency modified) are listed, by kind. The table is on the
pipeline page; CI runs it with ``--check``: a module of the test evaluation
(``dscl/evaluation``) or of the report (``dscl/report``) that marks a train or embed
stage fails it.

    python scripts/touch_modules.py            # the Markdown table
    python scripts/touch_modules.py --check    # and exit 1 on a boundary crossed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from dvc.repo import Repo

REPO = Path(__file__).resolve().parents[1]
KINDS = ("prepare", "features", "train", "embed", "evaluate", "curves", "report", "ablation")
# what a change of these packages may re-run, at most
ALLOWED = {
    "dscl/evaluation": {"evaluate", "report", "ablation"},
    "dscl/report": {"curves", "report", "ablation"},
}


def marked(repo: Repo) -> set[str]:
    """The kinds of stage whose code or data dependency is modified (an output merely
    absent from the cache, as in a checkout without data, is not counted). The check
    stage is left out: it reads the whole library's schema, so every module marks it,
    and its output does not change while params.yaml is valid (it re-runs nothing)."""
    kinds = set()
    for stage, changes in repo.status().items():
        for change in changes if isinstance(changes, list) else []:
            deps = change.get("changed deps", {}) if isinstance(change, dict) else {}
            if any(state == "modified" for state in deps.values()):
                kinds.add(stage.split("@")[0].split(":")[-1])
    return kinds - {"check"}


def covering(module: str, deps: set[str]) -> frozenset[str]:
    """The dependencies of dvc.yaml (files or folders) that hold ``module``."""
    return frozenset(d for d in deps if module == d or module.startswith(d + "/"))


def touch_each(modules: list[Path]) -> dict[str, set[str]]:
    """The stage kinds each module marks. Modules that the same dependencies of dvc.yaml
    hold mark the same stages, so one of each such group is touched (about a fifth)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    deps = {d.rstrip("/") for s in stages.values() for d in s.get("do", s).get("deps", [])}
    repo = Repo(str(REPO))
    before = marked(repo)
    if before:
        raise SystemExit(f"error: stages already out of date ({sorted(before)}): run dvc repro first")
    found, of_group = {}, {}
    for path in modules:
        name = path.relative_to(REPO).as_posix()
        group = covering(name, deps)
        if group not in of_group:
            original = path.read_bytes()
            try:
                path.write_bytes(original + b"\n# touched\n")
                of_group[group] = marked(Repo(str(REPO)))
            finally:
                path.write_bytes(original)
        found[name] = of_group[group]
    return found


def crossed(found: dict[str, set[str]]) -> list[str]:
    """The modules that mark a stage their package may not re-run."""
    return [
        f"{module}: marks {sorted(kinds - allowed)}"
        for module, kinds in found.items()
        for package, allowed in ALLOWED.items()
        if module.startswith(package + "/") and kinds - allowed
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a boundary is crossed")
    args = parser.parse_args(argv)
    modules = sorted((REPO / "dscl").rglob("*.py"))
    found = touch_each(modules)
    print("| module | " + " | ".join(KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    for module, kinds in found.items():
        print(f"| `{module}` | " + " | ".join("x" if k in kinds else "" for k in KINDS) + " |")
    bad = crossed(found)
    for line in bad:
        print(f"error: {line}", file=sys.stderr)
    return 1 if bad and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
