"""Run a stage module under ``torchrun``: ``python -m stages.launch -m stages.train
[stage options]``.

torchrun's options are read here from ``params.yaml`` (``train.common.torchrun``,
validated), never from the command line DVC builds: no value of the file reaches a shell.
With several processes or machines this is torchrun itself
(``torch.distributed.run``), so a multi-GPU run is a DVC stage like any other; a failed
process's message is shown once, without torchrun's traceback of its own launcher. One
process on one machine (the default) runs the module in place: no launcher process, no
rendezvous port, the same result.
"""

from __future__ import annotations

import dataclasses
import runpy
import sys

from torch.distributed import run as torchrun

from dscl import config
from dscl.config import TorchrunConfig


def single_process(args) -> bool:
    """One process on one machine: nothing for torchrun to do."""
    return str(args.nproc_per_node) == "1" and str(args.nnodes) in ("1", "1:1") and args.rdzv_endpoint == ""


def torchrun_options(options: TorchrunConfig) -> list[str]:
    """``train.common.torchrun`` as torchrun's flags: ``--key=value`` for each set field,
    ``--key`` for true, nothing for false or unset (one argument each: nothing is split)."""
    flags = []
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if value is True:
            flags.append(f"--{field.name}")
        elif value is not None and value is not False:
            flags.append(f"--{field.name}={value}")
    return flags


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = torchrun.parse_args([*torchrun_options(config.load().common.torchrun), *argv])
    if not args.module:
        raise SystemExit("stages.launch runs a module: [torchrun options] -m <module> [options]")
    if single_process(args):
        sys.argv = [args.training_script, *args.training_script_args]
        runpy.run_module(args.training_script, run_name="__main__", alter_sys=True)
        return 0
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError

    try:
        torchrun.run(args)
    except RendezvousError as exc:  # another node's agent (which may host the store) stopped
        print(
            f"error: {args.training_script} failed in process(es) of this node: the rendezvous at "
            f"{args.rdzv_endpoint or 'the local store'} failed ({type(exc).__name__}): another "
            f"node stopped, and its log says why",
            file=sys.stderr,
        )
        return 1
    except ChildFailedError as exc:
        codes = sorted({f.exitcode for f in exc.failures.values()})
        ranks = sorted(exc.failures)
        print(
            f"error: {args.training_script} failed in process(es) {ranks} with exit code(s) "
            f"{codes} (their messages are above)",
            file=sys.stderr,
        )
        return next((c for c in codes if c > 0), 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
