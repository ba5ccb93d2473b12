"""Sweep a last-layer method's settings on the validation classes, in one process.

The same training as the train stage (:func:`dscl.training.fit.train_method`, every seed
of the method's entry), on the cached features of ``data/features/<dataset>``, with each
value of each ``--set`` in turn; it prints the validation score that model selection
maximises, at the selected step, per seed and averaged. Test classes are never read:
choose a value here, write it in ``params.yaml``, then run the pipeline. For one or two
values, or end-to-end methods, ``dvc exp run --queue -S ...`` does the same (docs,
"Model selection"); this saves its per-experiment start-up when a last-layer run takes
seconds.

    python scripts/sweep_last_layer.py --dataset cub200_mini --method facility_last \\
        --set lr=0.0001,0.001,0.01 --set loss.margin_multiplier=0.5,1,2
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
from pathlib import Path

import numpy as np
import yaml

from dscl import config, layout
from dscl.device import resolve_device
from dscl.training.fit import train_method


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=V1,V2", help="lr=..., or loss.<key>=..."
    )
    args = parser.parse_args(argv)
    cfg = config.load()
    method, settings = cfg.method(args.method, args.dataset)
    if method.learns != "last_layer":
        parser.error(f"{args.method} does not learn the last layer alone; use dvc exp run --queue")
    grid = []
    for item in args.set:
        key, _, values = item.partition("=")
        if not values:
            parser.error(f"--set takes KEY=V1,V2,..., got {item!r}")
        grid.append([(key, yaml.safe_load(v)) for v in values.split(",")])
    fields = {f.name for f in dataclasses.fields(settings)} - {"loss"}
    for key, _ in (pair[0] for pair in grid):
        if not key.startswith("loss.") and key not in fields:
            parser.error(
                f"--set {key}: not a setting of {args.method}; one of {sorted(fields)} or loss.<key>"
            )
    features = Path("data/features") / args.dataset
    prepared = Path("data/prepared") / args.dataset
    if not layout.labels_file(features).is_file():
        parser.error(f"{features} holds no features: run `dvc repro features@{args.dataset}` first")
    rule = cfg.common.selection
    print(f"{args.method} on {args.dataset}: validation {rule.metric} ({rule.variant}) at the selected step")
    for combo in itertools.product(*grid):
        changes, loss = {}, dict(settings.loss)
        for key, value in combo:
            if key.startswith("loss."):
                loss[key[5:]] = value
            else:
                changes[key] = value
        trial = dataclasses.replace(settings, **changes, loss=loss)
        with tempfile.TemporaryDirectory() as tmp:
            runs = train_method(
                dataset=args.dataset,
                method=method,
                settings=trial,
                common=cfg.common,
                data=cfg.train_dataset(args.dataset),
                image=cfg.image,
                features_cfg=cfg.features(args.dataset),
                prepared=prepared,
                features=features,
                live=Path(tmp) / "live",
                checkpoint=Path(tmp) / "checkpoint",
                device=resolve_device(cfg.common.device),
                kmeans=cfg.kmeans_options(args.dataset),
            )
        scores = [r.record.selected_scores[rule.variant][rule.metric] for r in runs]
        steps = [r.record.selected_step for r in runs]
        label = ", ".join(f"{k}={v}" for k, v in combo) or "(the entry as it is)"
        per_seed = "  ".join(f"{s:.2f} (step {t})" for s, t in zip(scores, steps, strict=True))
        print(f"{label}: mean {np.mean(scores):.2f}  seeds: {per_seed}", flush=True)


if __name__ == "__main__":
    main()
