"""Two ways for a refused setting to lose nothing, measured side by side in a toy DVC
project (docs, "Configuration"): what a bad value costs in outputs, and what each way
adds to a ``dvc repro`` that has work to do.

- **plain**: each stage checks its own settings when its command starts (the project
  before its check stage). DVC has already removed the stage's outputs by then.
- **check**: a first stage whose params are the whole file and whose output does not
  change while the file is valid; every stage depends on that output (the project's way).
- **persist**: every output ``persist: true``, which DVC does not remove before the
  command; the stage must then replace each output atomically itself.

    python benchmarks/bench_refusal.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# a stage: refuses a negative value of its key, then writes its output from its input
STAGE = """import sys, yaml
p = yaml.safe_load(open("params.yaml"))
if p[sys.argv[1]]["value"] < 0:
    sys.exit(f"error: params.yaml: {sys.argv[1]}.value must be >= 0")
text = open(sys.argv[2]).read() if len(sys.argv) > 3 else ""
open(sys.argv[-1], "w").write(text + str(p[sys.argv[1]]["value"]) + "\\n")
"""
CHECK = """import sys, yaml
p = yaml.safe_load(open("params.yaml"))
bad = [k for k, v in p.items() if v["value"] < 0]
if bad:
    sys.exit(f"error: params.yaml: {bad[0]}.value must be >= 0")
open("checked.txt", "w").write("valid\\n")
"""
STAGES = ("a", "b", "c")


def pipeline(way: str) -> dict:
    stages = {}
    if way == "check":
        stages["check"] = {
            "cmd": "python check.py",
            "deps": ["check.py"],
            "params": [{"params.yaml": None}],
            "outs": [{"checked.txt": {"cache": False, "persist": True}}],
        }
    previous = None
    for name in STAGES:
        deps = ["stage.py"] + ([previous] if previous else []) + (["checked.txt"] if way == "check" else [])
        cmd = f"python stage.py {name} {previous + ' ' if previous else ''}{name}.txt"
        out = {f"{name}.txt": {"persist": True}} if way == "persist" else f"{name}.txt"
        stages[name] = {"cmd": cmd, "deps": deps, "params": [f"{name}.value"], "outs": [out]}
        previous = f"{name}.txt"
    return {"stages": stages}


def run(cwd: Path, *args: str) -> tuple[int, float]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    return res.returncode, time.perf_counter() - start


def measure(way: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "stage.py").write_text(STAGE)
        (root / "check.py").write_text(CHECK)
        (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline(way), sort_keys=False))
        params = {name: {"value": 1} for name in STAGES}
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        run(root, "init", "-q")
        assert run(root, "repro")[0] == 0
        times = []
        for i in range(repeats):  # a valid edit of the last stage's value: one stage re-runs
            params["c"]["value"] = i + 2
            (root / "params.yaml").write_text(yaml.safe_dump(params))
            code, seconds = run(root, "repro")
            assert code == 0
            times.append(seconds)
        params["c"]["value"] = -1  # refused
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        code, _ = run(root, "repro")
        kept = [name for name in STAGES if (root / f"{name}.txt").exists()]
        return {"way": way, "refused": code != 0, "kept": kept, "repro_s": statistics.median(times)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = [measure(way, args.repeats) for way in ("plain", "check", "persist")]
    base = rows[0]["repro_s"]
    print("| way | bad value refused | outputs kept (of 3) | dvc repro, one stage to run | vs plain |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['way']} | {'yes' if r['refused'] else 'no'} | {len(r['kept'])} | "
            f"{r['repro_s']:.2f} s | {r['repro_s'] / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
