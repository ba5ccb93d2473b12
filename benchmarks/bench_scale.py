"""Every stage of the pipeline at the paper's dataset sizes, on simulated archives
(scripts/simulate_datasets.py): each stage's wall time and peak memory at fractions of
each dataset, and each one's growth exponent in n (the slope of log time against log n).

For each dataset and fraction, in a scratch copy of the project: the simulator writes
the archive, then each stage runs alone in the pipeline's order (``dvc repro -s``):
prepare reads the archive through the real code path (``prepare.verify_checksum:
false``), features (the pixels backbone on 28 x 28 grey crops: the generated images are
64 x 64 and no pretrained network can be downloaded offline), train, embed and evaluate
for vanilla, every last-layer method (the dataset's own params.yaml settings: the paper's
200 iterations of n = 1,260) and dscl_e2e for a few steps, the curves and the report.
``dvc status`` is timed on the finished project. Figures are costs, never results.

    python benchmarks/bench_scale.py --datasets cub200 cars196 sop --fractions 0.125 0.25 0.5 1 \\
        --out scale.json --figure reports/figures/scale.png
    python benchmarks/bench_scale.py --only-prepare      # prepare and dvc status alone
    python benchmarks/bench_scale.py --load cub.json sop.json --figure scale.png  # runs merged
"""

from __future__ import annotations

import argparse
import json
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

LAST_LAYER = ["dscl_last", "triplet_last", "lifted_last", "npairs_last", "multisim_last", "facility_last"]
# the learning methods first: a run stopped early has measured them (vanilla's evaluation
# clusters the wide pixel feature, the slowest evaluation)
METHODS = [*LAST_LAYER, "proxyanchor_last", "dscl_e2e", "vanilla"]
E2E_STEPS = 3  # the end-to-end method's iterations: its cost per step, not a result
# the table's columns: a stage, or the stages of one kind summed over the methods
GROUPS = ("simulate", "prepare", "features", "train", "embed", "evaluate", "report", "dvc status")


def timed(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """(wall seconds, peak resident memory in GiB of the command's largest process);
    ``ok``: the exit statuses that are not failures."""
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    peak_kib = int(out.stderr.strip().splitlines()[-1])
    return wall, peak_kib / 2**20


def project(root: Path, dataset: str, raw: Path, methods: list[str], fraction: float) -> None:
    """A git and DVC project holding this checkout's code and pipeline, set to run
    ``methods`` on ``dataset`` from the simulated archive under ``raw`` (its validation
    classes scaled with its classes)."""
    for name in ("dscl", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = [dataset]
    params["methods"] = methods
    params["prepare"].update(root=str(raw), verify_checksum=False)
    pixels = {"backbone": "pixels", "weights": "none", "resize": 32, "crop": 28}
    params["features"]["datasets"][dataset] = pixels
    params["train"]["dscl_e2e"][dataset].update(iterations=E2E_STEPS, validate_every=E2E_STEPS, num_workers=2)
    params["ablation"][dataset] = {"methods": [], "dims": []}
    split = params["train"]["datasets"][dataset]
    split["validation_classes"] = max(2, round(split["validation_classes"] * fraction))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for cmd in (
        [*git, "init", "-q"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [*git, "add", "-A"],
        [*git, "commit", "-qm", "the project"],  # DVCLive needs a commit
    ):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)


def stages(dataset: str, methods: list[str]) -> list[str]:
    """The dataset's stages in the pipeline's order (each one's inputs before it)."""
    per_method = [f"{s}@{dataset}-{m}" for m in methods for s in ("train", "embed", "evaluate")]
    ends = [f"curves@{dataset}", f"report@{dataset}"]
    return [f"prepare@{dataset}", f"features@{dataset}", *per_method, *ends]


def group(stage: str) -> str:
    kind = stage.split("@")[0]
    return "report" if kind == "curves" else kind


def measure(dataset: str, fraction: float, size: int, work: Path, only_prepare: bool) -> dict:
    raw = work / "raw"
    start = time.perf_counter()
    n = sim.simulate(dataset, raw, fraction, size)
    row = {"dataset": dataset, "fraction": fraction, "n": n, "stages": {}}
    row["stages"]["simulate"] = (time.perf_counter() - start, None)
    root = work / "project"
    methods = [] if only_prepare else METHODS
    project(root, dataset, raw, methods, fraction)
    dvc = [sys.executable, "-m", "dvc"]
    timed([*dvc, "repro", "-q", "check"], root)
    todo = stages(dataset, methods)[: 1 if only_prepare else None]
    for stage in todo:
        row["stages"][stage] = timed([*dvc, "repro", "-q", "-s", stage], root)
        print(f"  {stage}: {row['stages'][stage][0]:.1f} s", file=sys.stderr, flush=True)
    row["stages"]["dvc status"] = timed([*dvc, "status", "-q"], root, ok=(0, 1))  # 1: stages left
    return row


def grouped(row: dict) -> dict[str, tuple[float, float | None]]:
    """The row's stages summed by kind: (seconds, the largest peak in GiB)."""
    out: dict[str, tuple[float, float | None]] = {}
    for stage, (wall, peak) in row["stages"].items():
        name = group(stage)
        was_wall, was_peak = out.get(name, (0.0, None))
        peaks = [p for p in (was_peak, peak) if p is not None]
        out[name] = (was_wall + wall, max(peaks) if peaks else None)
    return out


def slope(rows: list[dict], name: str, last: int = 0) -> float:
    """The growth exponent of ``name``'s time in n (least squares on log-log), over the
    ``last`` largest sizes (0: all); the fixed cost of starting a stage (DVC, imports:
    a few seconds) flattens the small sizes."""
    found = sorted((r["n"], grouped(r)[name][0]) for r in rows if name in grouped(r))[-last:]
    if len(found) < 2:
        return math.nan
    n, t = np.log([f[0] for f in found]), np.log([max(f[1], 1e-3) for f in found])
    return float(np.polyfit(n, t, 1)[0])


def figure(rows: dict[str, list[dict]], path: Path) -> None:
    """Log-log: each kind of stage's seconds against the number of images, per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [g for g in GROUPS if g not in ("simulate",)]
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.8), squeeze=False, sharey=True)
    for ax, (dataset, found) in zip(axes[0], rows.items(), strict=True):
        for name in names:
            pts = [(r["n"], grouped(r)[name][0]) for r in found if name in grouped(r)]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=f"{name} ({slope(found, name):.2f})")
        ax.set(xscale="log", yscale="log", title=dataset, xlabel="images")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, title="stage (exponent)", title_fontsize=7)
    axes[0][0].set_ylabel("seconds (2 cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def table(rows: dict[str, list[dict]]) -> str:
    lines = [
        "| dataset | fraction | images | " + " | ".join(f"{g} s (GiB)" for g in GROUPS) + " | total s |",
        "|---|---|---|" + "---|" * (len(GROUPS) + 1),
    ]
    for dataset, found in rows.items():
        for row in found:
            g = grouped(row)
            cells = [
                "" if name not in g else f"{g[name][0]:.1f}" + (f" ({g[name][1]:.2f})" if g[name][1] else "")
                for name in GROUPS
            ]
            total = sum(w for w, _ in row["stages"].values())
            head = f"| {dataset} | {row['fraction']:g} | {row['n']:,} | "
            lines.append(head + " | ".join(cells) + f" | {total:.0f} |")
    lines.append("")
    for dataset, found in rows.items():
        for last, over in ((0, "all sizes"), (2, "the two largest")):
            exps = {g: slope(found, g, last) for g in GROUPS}
            lines.append(
                f"growth exponent in n, {dataset} ({over}): "
                + ", ".join(f"{g} {b:.2f}" for g, b in exps.items() if not math.isnan(b))
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["cub200", "cars196", "sop"], choices=sorted(sim.WRITERS)
    )
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.125, 0.25, 0.5, 1.0])
    parser.add_argument("--size", type=int, default=64, help="image side (default 64)")
    parser.add_argument("--only-prepare", action="store_true", help="prepare and dvc status alone")
    parser.add_argument("--out", type=Path, help="every stage's figures as JSON (rewritten after each size)")
    parser.add_argument("--figure", type=Path, help="the log-log figure (PNG)")
    parser.add_argument(
        "--load", nargs="+", type=Path, help="run nothing: the table and figure of earlier --out files"
    )
    args = parser.parse_args(argv)
    if args.load:
        loaded: dict[str, list[dict]] = {}
        for path in args.load:
            for dataset, found in json.loads(path.read_text()).items():
                loaded.setdefault(dataset, []).extend(found)
        print(table(loaded))
        if args.figure:
            figure(loaded, args.figure)
        return 0
    for fraction in args.fractions:  # a bad fraction fails before any size runs
        for dataset in args.datasets:
            sim.simulated_size(dataset, fraction)
    rows: dict[str, list[dict]] = {}
    for dataset in args.datasets:
        for fraction in args.fractions:
            print(f"{dataset} at {fraction:g}:", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                row = measure(dataset, fraction, args.size, Path(tmp), args.only_prepare)
            rows.setdefault(dataset, []).append(row)
            if args.out:
                tmp_out = args.out.with_suffix(".tmp")
                tmp_out.write_text(json.dumps(rows, indent=1))
                tmp_out.replace(args.out)
    print(table(rows))
    if args.figure:
        figure(rows, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
