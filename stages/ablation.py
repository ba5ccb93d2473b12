"""Stage ablation@<dataset>: the listed last-layer methods retrained at each embedding
dimension of ``ablation.<dataset>`` (:mod:`dscl.experiments.ablation`), with intervals."""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from dscl import config, layout
from dscl.atomic import write_text
from dscl.config import ParamsError
from dscl.device import resolve_device
from dscl.evaluation.protocol import evaluate_test
from dscl.experiments.ablation import render_ablation, run_ablation
from dscl.inference.embedding import embed_test
from dscl.numerics import configure
from dscl.training.fit import DataSettingError
from stages.calls import train_runs
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    for name in ("--prepared", "--features", "--table"):
        parser.add_argument(name, required=True, type=Path)
    args = parser.parse_args(argv)
    cfg = config.load()
    configure(cfg.numerics.threads, deterministic=cfg.numerics.deterministic)
    spec = cfg.ablation(args.dataset)
    ks, device = cfg.recall_ks(args.dataset), resolve_device(cfg.common.device)
    labels = np.load(layout.labels_file(args.features))

    def train(method, settings):  # in a scratch folder: the ablation keeps no model
        with tempfile.TemporaryDirectory() as tmp:
            return train_runs(
                cfg, args.dataset, method, settings, prepared=args.prepared, features=args.features,
                live=Path(tmp) / "live", checkpoint=Path(tmp) / "checkpoint", device=device,
            )  # fmt: skip

    embed = partial(
        embed_test, features=args.features, prepared=args.prepared, feat=cfg.features(args.dataset),
        image=cfg.image, batch_size=cfg.embed.batch_size, device=device,
    )  # fmt: skip
    try:
        results = run_ablation(
            [cfg.method(name, args.dataset) for name in spec.methods],
            list(spec.dims),
            train=train,
            embed=lambda run: embed(run.record, run.state),
            evaluate=partial(evaluate_test, labels=labels, ks=ks, **cfg.test_kmeans_options(args.dataset)),
            labels=labels,
            ks=ks,
            bootstrap=cfg.report.bootstrap,
            seeds=spec.seeds,
        )
    except DataSettingError as err:  # the library's error, said with the key in params.yaml
        raise ParamsError(f"params.yaml: {err.where(args.dataset)}: {err}") from None
    md, table = render_ablation(args.dataset, results, cfg.recall_ks(args.dataset))
    write_text(args.table.with_suffix(".md"), md)
    write_text(args.table.with_suffix(".csv"), table)
    print(f"ablation@{args.dataset}: {len(results)} rows -> {args.table}.md/.csv")


if __name__ == "__main__":
    run(main)
