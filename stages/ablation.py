"""Stage ablation@<dataset>: the listed last-layer methods retrained at each embedding
dimension of ``ablation.<dataset>`` (:mod:`dscl.experiments.ablation`), with intervals."""

from __future__ import annotations

import argparse
from pathlib import Path

from dscl import config
from dscl.atomic import write_text
from dscl.config import ParamsError
from dscl.device import resolve_device
from dscl.experiments.ablation import render_ablation, run_ablation
from dscl.numerics import configure
from dscl.training.fit import DataSettingError
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
    try:
        results = run_ablation(
            cfg,
            args.dataset,
            list(spec.methods),
            list(spec.dims),
            seeds=spec.seeds,
            prepared=args.prepared,
            features=args.features,
            device=resolve_device(cfg.common.device),
        )
    except DataSettingError as err:  # the library's error, said with the key in params.yaml
        raise ParamsError(f"params.yaml: {err.where(args.dataset)}: {err}") from None
    md, table = render_ablation(args.dataset, results, cfg.recall_ks(args.dataset))
    write_text(args.table.with_suffix(".md"), md)
    write_text(args.table.with_suffix(".csv"), table)
    print(f"ablation@{args.dataset}: {len(results)} rows -> {args.table}.md/.csv")


if __name__ == "__main__":
    run(main)
