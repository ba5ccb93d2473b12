"""The noise of a rerun, measured: how far each figure moves when the same pipeline runs
in another numeric environment, beside the spread over training seeds; and the
regression gate's tolerances that follow from it.

Each environment is a fresh clone of this repository (its committed code and
``params.yaml``) in ``--workdir``, limited to one dataset and its methods, whose
``dvc repro`` runs every method's train, embed and evaluate stages with environment
variables or settings that stand in for another machine:

* ``reference``: as committed (``numerics.threads``, the CPU's native instruction set);
* ``threads1``: one thread instead of ``numerics.threads`` (reductions split otherwise);
* ``aten-default``: ``ATEN_CPU_CAPABILITY=default``, ATen's kernels without vector
  instructions (a CPU without AVX2/AVX-512);
* ``aten-avx2``: ``ATEN_CPU_CAPABILITY=avx2`` (a CPU without AVX-512);
* ``cnr``: MKL's conditional numerical reproducibility (``MKL_CBWR=COMPATIBLE``) and
  oneDNN limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``): the BLAS and convolutions of
  another CPU generation;
* ``cuda``: the GPU, where one is present (``--envs cuda``).

``seeds`` re-runs the reference environment with training seeds ``--seeds`` for the
methods that train one seed, so every figure also gets a spread over training seeds (a
figure that is already a mean over seeds reports its own).

For every method and figure the script prints the reference value, how far each
environment moved it and the seed spread, and writes ``reports/noise/<dataset>.json``:
per figure ``rerun`` (the largest move over the environments), ``seeds`` (the standard
deviation over training seeds of what the figure reports: a single run, or a mean) and
``tolerance``, the gate's allowance: twice the rerun move, at least ``FLOOR``; and, for
a figure whose rerun already moves it by half a seed's spread or more (a method whose
training is a chain of discrete choices, such as the facility location's medoids, takes
another trajectory when the rounding changes: a rerun elsewhere is then another draw),
at least twice the seed spread. A figure that repeats in every environment keeps a
tight tolerance, so that a regression smaller than the seed spread still fails. The
test-class intervals of the tables are the wrong yardstick: they measure which test
classes were drawn, which a rerun never changes (docs, "Reproducibility").

    python scripts/measure_noise.py --dataset digits
    python scripts/measure_noise.py --dataset cub200_mini --methods vanilla dscl_last ... \\
        --raw ../shared/data/cub200_mini/CUB_200_2011_classes001-050.tgz

Takes the environments one after another (digits: about 3 minutes each on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from check_metrics import figures  # noqa: E402

ENVIRONMENTS: dict[str, tuple[dict, dict]] = {  # name: (environment variables, params edits)
    "reference": ({}, {}),
    "threads1": ({}, {"numerics.threads": 1}),
    "aten-default": ({"ATEN_CPU_CAPABILITY": "default"}, {}),
    "aten-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, {}),
    "cnr": ({"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}, {}),
    "cuda": ({}, {"train.common.device": "cuda", "embed.device": "cuda", "features.image.device": "cuda"}),
}
FLOOR = 0.25  # points: no tolerance below this (a figure that never moved still may, a little)
CHAOTIC = 0.5  # a rerun move of this many seed spreads or more: the rerun is another draw


def set_key(params: dict, dotted: str, value) -> None:
    node = params
    *path, last = dotted.split(".")
    for part in path:
        node = node[part]
    node[last] = value


def run_environment(
    name: str,
    workdir: Path,
    dataset: str,
    methods: list[str],
    raw: Path | None,
    seeds: list[int] | None,
    reuse: bool = False,
    one_seed: bool = False,
) -> dict[str, dict]:
    """Clone, configure and run one environment; its metrics files ``{method: metrics}``.
    With ``reuse``, an environment whose run finished (every method's metrics file is
    there and its params.yaml was written) is read, not run again; with ``one_seed``,
    each method trains its first seed only."""
    env_vars, edits = ENVIRONMENTS["reference" if name == "seeds" else name]
    root = workdir / name
    done = [root / f"reports/metrics/{dataset}/{m}.json" for m in methods]
    if reuse and (root / ".finished").is_file() and all(p.is_file() for p in done):
        return {m: json.loads(p.read_text()) for m, p in zip(methods, done)}
    if root.exists():
        shutil.rmtree(root)
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["datasets"], params["methods"] = [dataset], list(methods)
    for key, value in edits.items():
        set_key(params, key, value)
    if seeds is not None:
        params["train"]["common"]["seeds"] = list(seeds)
    if one_seed:
        params["train"]["common"]["seeds"] = params["train"]["common"]["seeds"][:1]
        for m in methods:
            entry = params["train"][m][dataset]
            if entry.get("seeds"):
                entry["seeds"] = entry["seeds"][:1]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if raw is not None:
        (root / "data/raw" / dataset).mkdir(parents=True, exist_ok=True)
        shutil.copy(raw, root / "data/raw" / dataset / raw.name)
    targets = [f"evaluate@{dataset}-{m}" for m in methods]
    env = {**os.environ, **env_vars, "DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", *targets], cwd=root, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"{name}: dvc repro failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    (root / ".finished").write_text("")
    return {m: json.loads(p.read_text()) for m, p in zip(methods, done)}


def seed_spread(metrics: dict) -> dict[str, float]:
    """The standard deviation over training seeds of each figure as the metrics file
    reports it: of a single run (the runs' own spread) or of their mean (divided by the
    square root of the number of runs)."""
    runs = metrics.get("runs")
    if not runs:
        return {}
    per_run = [figures(r) for r in runs]
    return {f: float(np.std([r[f] for r in per_run], ddof=1)) for f in per_run[0] if f != "seed"}


def tolerance(rerun: float, seeds: float | None) -> float:
    """The gate's allowance of a figure from its largest rerun move and its seed spread."""
    tol = max(2.0 * rerun, FLOOR)
    if seeds is not None and rerun >= CHAOTIC * seeds:
        tol = max(tol, 2.0 * seeds)
    return round(tol, 2)


def comparable(reference: dict, run: dict) -> dict[str, float]:
    """The reference's figures that ``run`` repeats: its first seed's where ``run``
    trained one seed and the reference several (``--one-seed``), else its own."""
    runs = reference.get("runs")
    if runs and not run.get("runs"):
        return {f: v for f, v in figures(runs[0]).items() if f != "seed"}
    return figures(reference)


def summarise(results: dict[str, dict[str, dict]], methods: list[str]) -> dict:
    """``{method: {"reference", "moves": {env: {figure: delta}}, "rerun", "seeds",
    "tolerance"}}`` from every environment's metrics."""
    out = {}
    for m in methods:
        ref = figures(results["reference"][m])
        moves = {
            env: {
                f: round(figures(r[m])[f] - v, 2)
                for f, v in comparable(results["reference"][m], r[m]).items()
            }
            for env, r in results.items()
            if env not in ("reference", "seeds")
        }
        rerun = {f: max((abs(d[f]) for d in moves.values()), default=0.0) for f in ref}
        own = seed_spread(results["reference"][m])
        if own:  # a mean over the method's own seeds: the spread of that mean
            runs = len(results["reference"][m]["runs"])
            spread = {f: s / np.sqrt(runs) for f, s in own.items()}
        else:
            spread = seed_spread(results["seeds"][m]) if "seeds" in results else {}
        out[m] = {
            "reference": ref,
            "moves": moves,
            "rerun": {f: round(v, 2) for f, v in rerun.items()},
            "seeds": {f: round(v, 2) for f, v in spread.items()},
            "tolerance": {f: tolerance(rerun[f], spread.get(f)) for f in ref},
        }
    return out


def table(summary: dict, envs: list[str]) -> str:
    """Markdown: per method and figure, the reference value, each environment's move, the
    seed spread and the tolerance."""
    head = ["Method", "Figure", "Reference", *envs, "Seeds (sd)", "Tolerance"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, s in summary.items():
        for f, v in s["reference"].items():
            moves = [f"{s['moves'][e][f]:+.2f}" for e in envs]
            seeds = f"{s['seeds'][f]:.2f}" if f in s["seeds"] else "—"
            lines.append(
                f"| {m} | {f} | {v:.2f} | " + " | ".join(moves) + f" | {seeds} | {s['tolerance'][f]:.2f} |"
            )
    return "\n".join(lines)


def compact(summary: dict, envs: list[str]) -> str:
    """Markdown, one row per method: the largest move of any figure in each environment,
    the largest seed spread, and the range of the tolerances."""
    head = ["Method", *[f"{e} (largest move)" for e in envs], "Seeds (largest sd)", "Tolerances"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, s in summary.items():
        moves = [max(abs(v) for v in s["moves"][e].values()) for e in envs]
        seeds = f"{max(s['seeds'].values()):.2f}" if s["seeds"] else "—"
        tols = s["tolerance"].values()
        cells = [f"{v:.2f}" for v in moves] + [seeds, f"{min(tols):.2f} to {max(tols):.2f}"]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def command(args) -> str:
    """The command that measures this again (where it ran and what it reused aside)."""
    parts = ["python scripts/measure_noise.py", f"--dataset {args.dataset}"]
    if args.methods:
        parts.append("--methods " + " ".join(args.methods))
    parts.append("--envs " + " ".join(args.envs))
    parts.append("--seeds" + "".join(f" {s}" for s in args.seeds))
    if args.one_seed:
        parts.append("--one-seed")
    if args.raw is not None:
        parts.append(f"--raw <{args.raw.name}>")
    return " ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--methods", nargs="+", help="default: params.yaml's methods")
    parser.add_argument("--envs", nargs="+", default=["threads1", "aten-default", "aten-avx2", "cnr"])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="training seeds (none: none)")
    parser.add_argument("--raw", type=Path, help="the dataset's archive, copied to data/raw/<dataset>/")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dscl-noise"))
    parser.add_argument("--out", type=Path, help="default: reports/noise/<dataset>.json")
    parser.add_argument("--reuse", action="store_true", help="read the environments already run in --workdir")
    parser.add_argument(
        "--reference", type=Path, help="a finished run of this commit to read the reference from, not re-run"
    )
    parser.add_argument(
        "--one-seed", action="store_true", help="the environments train each method's first seed only"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.envs) - set(ENVIRONMENTS))
    if unknown:
        parser.error(f"unknown environment(s) {unknown}; valid: {sorted(ENVIRONMENTS)}")
    methods = args.methods or yaml.safe_load((REPO / "params.yaml").read_text())["methods"]
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.reference is not None:
        folder = args.reference / "reports/metrics" / args.dataset
        results["reference"] = {m: json.loads((folder / f"{m}.json").read_text()) for m in methods}
    for name in ([] if args.reference is not None else ["reference"]) + args.envs:
        results[name] = run_environment(
            name,
            args.workdir,
            args.dataset,
            methods,
            args.raw,
            None,
            args.reuse,
            args.one_seed and name != "reference",
        )
    if args.seeds:
        results["seeds"] = run_environment(
            "seeds", args.workdir, args.dataset, methods, args.raw, args.seeds, args.reuse
        )
    summary = summarise(results, methods)
    print(table(summary, args.envs))
    print()
    print(compact(summary, args.envs))
    out = args.out or REPO / "reports/noise" / f"{args.dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    first = results["reference"][methods[0]].get("environment", {})
    record = {
        "dataset": args.dataset,
        "command": command(args),
        "environments": {
            e: {"variables": ENVIRONMENTS[e][0], "params": ENVIRONMENTS[e][1]} for e in args.envs
        },
        "reference_environment": first.get("evaluate", first),
        "seeds": args.seeds,
        "floor": FLOOR,
        "methods": summary,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
