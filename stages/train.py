"""Stage train@<dataset>-<method>: learn the embedding (:func:`dscl.training.fit.train_method`).

Writes ``<out>/model.pt`` (and ``seed-<s>.pt`` for the other seeds); the training and
validation curves go to DVCLive in ``--live``; the resumable state to ``--checkpoint``
(an interrupted run resumes from it). Model selection: the docs' "Model selection" page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch.distributed as dist

from dscl import config
from dscl.config import ParamsError
from dscl.device import resolve_device
from dscl.numerics import configure
from dscl.training.distributed import init_distributed
from dscl.training.fit import DataSettingError, save_runs
from dscl.training.guard import DivergedError
from dscl.training.kinds import kind_for
from stages.calls import train_runs
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--dataset", "--method"):
        parser.add_argument(name, required=True)
    for name in ("--prepared", "--features", "--out", "--live", "--checkpoint"):
        parser.add_argument(name, required=True, type=Path)
    args = parser.parse_args(argv)
    cfg = config.load()
    configure(cfg.numerics.threads, deterministic=cfg.numerics.deterministic)
    method, settings = cfg.method(args.method, args.dataset)
    device, rank, world = init_distributed(resolve_device(cfg.common.device))
    if world > 1 and not kind_for(method.learns).data_parallel:
        dist.destroy_process_group()  # only the image methods run data-parallel: rank 0 alone
        if rank != 0:
            return
        world = 1
    key = f"train.{args.method}.{args.dataset}"
    lower = f"lower {key}.lr ({settings.lr:g})" if hasattr(settings, "lr") else f"check {key}"
    try:
        runs = train_runs(
            cfg, args.dataset, method, settings, prepared=args.prepared, features=args.features,
            live=args.live, checkpoint=args.checkpoint, device=device,
        )  # fmt: skip
    except DataSettingError as err:  # the library's error, said with the key in params.yaml
        raise ParamsError(f"params.yaml: {err.where(args.dataset)}: {err}") from None
    except DivergedError as err:  # nothing validated to keep (NaN or collapse): the setting to change
        raise ParamsError(f"train@{args.dataset}-{args.method}: {err}: {lower}") from None
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if rank != 0:
        return
    save_runs(args.out, runs, args.checkpoint)
    for r in runs:  # one line each: the run ended early, keeping the best state before it
        if r.record.diverged_at is not None:
            print(
                f"warning: train@{args.dataset}-{args.method} (seed {r.seed}): {r.record.stopped_by} "
                f"at step {r.record.diverged_at}; kept the model validated at step "
                f"{r.record.selected_step} ({lower} to train further)",
                file=sys.stderr,
            )
    steps = ", ".join(str(r.record.selected_step) for r in runs)
    print(
        f"train@{args.dataset}-{args.method}: selected step {steps} "
        f"(on {cfg.common.selection.split}); wrote {args.out}"
    )


if __name__ == "__main__":
    run(main)
