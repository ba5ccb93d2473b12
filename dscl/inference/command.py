"""The ``dscl`` command: use a trained model on your own images, without the pipeline.

    dscl info MODEL
    dscl embed MODEL IMAGES... -o embeddings.npy
    dscl search MODEL --gallery DIR --query IMAGE... [-k 8] [--json] [--figure out.png]
    dscl cluster MODEL DIR -k K [--no-sc] -o clusters.csv
    dscl --version

MODEL is a ``model.pt`` written by the train stage (``models/<dataset>-<method>/``) or
fetched with ``dvc artifacts get``. Bad input (a file that is not an image or not one the
model takes, an empty folder, a model file from elsewhere, ``-k`` out of range, an output
that names a folder, an unreadable file) ends with a one-line error and exit status 2,
before anything is written. Results (the tables, the JSON) go to standard output; what
the command says about its work goes through :mod:`logging` to standard error (``-q``:
warnings and errors only, ``-v``: everything).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import sys
from pathlib import Path

import numpy as np

from dscl.errors import DSCLError

__all__ = ["main"]

log = logging.getLogger("dscl.command")  # named, not __name__: `python -m` makes that "__main__"

# on the quick start's models and images (a test runs each); the testbed's models take
# photographs: models/cub200_mini-dscl_e2e/model.pt with a folder of them
EXAMPLES = {
    "info": "dscl info models/digits-dscl_last/model.pt",
    "embed": "dscl embed models/digits-dscl_last/model.pt data/prepared/digits/images/5 -o embeddings.npy",
    "search": (
        "dscl search models/digits-dscl_last/model.pt --gallery data/prepared/digits/images "
        "--query data/prepared/digits/images/7/0007.png -k 8 --figure hits.png"
    ),
    "cluster": (
        "dscl cluster models/digits-dscl_last/model.pt data/prepared/digits/images -k 10 -o clusters.csv"
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dscl",
        description="Use a model trained by the DSCL pipeline on your own images.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES.values()),
    )
    from dscl import __version__

    parser.add_argument("--version", action="version", version=f"dscl {__version__}")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="say only warnings and errors")
    talk.add_argument("-v", "--verbose", action="store_true", help="say everything (debug messages)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{info,embed,search,cluster}")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("model", type=Path, help="a model.pt written by the train stage")
        if name != "info":  # info reads the model's record only
            p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
            p.add_argument("--batch-size", type=int, default=32)
            p.add_argument(
                "--skip-bad", action="store_true", help="leave out files that are not readable images"
            )
        return p

    command("info", "What a model is: dataset, method, step selected, sizes, backbone, validation scores.")
    p = command("embed", "Embed images (folders, files, or CSV files of paths) into an .npy array.")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument(
        "-o", "--out", type=Path, required=True, help="embeddings.npy (and embeddings.paths.txt, the order)"
    )
    p = command("search", "The nearest gallery images of each query, with their distances.")
    p.add_argument("--gallery", nargs="+", type=Path, required=True, help="a folder, files or a CSV of paths")
    p.add_argument("--query", nargs="+", type=Path, required=True)
    p.add_argument("-k", type=int, default=8, help="neighbours per query (default 8)")
    p.add_argument("--json", action="store_true", help="JSON on stdout instead of a table")
    p.add_argument("--figure", type=Path, help="also draw the neighbours into this PNG")
    p = command("cluster", "Cluster images with the paper's Algorithm 2 (or plain k-means).")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("-k", type=int, required=True, help="the number of clusters")
    p.add_argument(
        "--no-sc", action="store_true", help="k-means on the l2-normalised embedding, no Algorithm 2"
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="clusters.csv: path,cluster")
    return parser


class UsageError(DSCLError, ValueError):
    """A command line that asks for something impossible (checked before any work)."""


def _check_args(args) -> None:
    """What can be checked before a model is loaded or an image read: the model file,
    ``-k``, the batch size, and each output (a file, not a folder, in a folder that is
    there)."""
    if not args.model.is_file():
        raise UsageError(
            f"{args.model} does not exist"
            if not args.model.exists()
            else f"{args.model} is a folder, not a model.pt"
        )
    if getattr(args, "k", None) is not None and args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    if getattr(args, "batch_size", 1) < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    outputs = {"-o": getattr(args, "out", None), "--figure": getattr(args, "figure", None)}
    suffixes = {"embed": ".npy", "cluster": ".csv"}
    for flag, path in outputs.items():
        if path is None:
            continue
        if path.is_dir():
            example = path / f"out{'.png' if flag == '--figure' else suffixes[args.command]}"
            raise UsageError(f"{flag} {path} is a folder: name a file (e.g. {example})")
        if not path.parent.is_dir():
            raise UsageError(f"{flag} {path}: the folder {path.parent} does not exist")
        wanted = ".png" if flag == "--figure" else suffixes[args.command]
        if path.suffix.lower() != wanted:
            raise UsageError(f"{flag} {path} must end in {wanted}")


def _load(args):
    from dscl.inference.model import TrainedModel

    return TrainedModel.load(args.model, device=getattr(args, "device", "cpu"))


def _embed(model, sources, args) -> tuple[np.ndarray, list[Path]]:
    done = model.embed_files(
        sources, batch_size=args.batch_size, skip_bad=args.skip_bad, progress=not args.quiet
    )
    for path in done.skipped:
        log.warning("skipped %s: not a readable image, or not one this model takes", path)
    return done.embeddings, done.paths


def _info(args) -> None:
    from dscl.inference.embedding import load_model
    from dscl.inference.model import describe

    record, _ = load_model(args.model)
    described = describe(record)
    width = max(map(len, described))
    for key, value in described.items():
        _result(f"{key:<{width}}  {json.dumps(value) if isinstance(value, dict) else value}")


def _embed_command(args) -> None:
    from dscl.atomic import atomic_path

    model = _load(args)
    emb, paths = _embed(model, args.images, args)
    out = args.out
    order = out.with_suffix(".paths.txt")
    # both written aside, then both put in place: a failure leaves the old pair whole
    with atomic_path(out) as tmp, atomic_path(order) as tmp_order:
        with open(tmp, "wb") as fh:
            np.save(fh, emb)
        tmp_order.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8", newline="\n")
    log.info("%d images -> %s (%d x %d); their order: %s", len(paths), out, *emb.shape, order)


def _search(args) -> None:
    from dscl.inference.model import search

    model = _load(args)
    gallery, gallery_paths = _embed(model, args.gallery, args)
    if args.k > len(gallery_paths):
        raise UsageError(f"-k {args.k} is larger than the gallery ({len(gallery_paths)} images)")
    queries, query_paths = _embed(model, args.query, args)
    dist, ids = search(gallery, queries, args.k)
    results = [
        {
            "query": str(q),
            "neighbours": [
                {"rank": r + 1, "path": str(gallery_paths[j]), "distance": round(float(d), 6)}
                for r, (d, j) in enumerate(zip(drow, irow))
            ],
        }
        for q, drow, irow in zip(query_paths, dist, ids)
    ]
    if args.figure is not None:
        _figure(model, results, args)
    if args.json:
        _result(json.dumps(results, indent=2))
        return
    for result in results:
        _result(f"query {result['query']}")
        _result(f"  {'rank':>4}  {'distance':>9}  path")
        for n in result["neighbours"]:
            _result(f"  {n['rank']:>4}  {n['distance']:>9.4f}  {n['path']}")


def _figure(model, results, args) -> None:
    from PIL import Image

    from dscl.report.gallery import Tile, draw_gallery

    def show(path: str) -> np.ndarray:
        with Image.open(path) as img:
            img.load()
            return model.transform(img, False, None).permute(1, 2, 0).numpy()

    def folder(path: str) -> str:
        return Path(path).parent.name

    rows = []
    for result in results:
        q = result["query"]
        tiles = [Tile(show(q), (f"query: {folder(q)}",), None)]
        for n in result["neighbours"]:
            same = folder(n["path"]) == folder(q)  # class = folder name, when photos are filed so
            tiles.append(Tile(show(n["path"]), (folder(n["path"]), f"d = {n['distance']:.3f}"), same))
        rows.append((Path(q).name, tiles))
    draw_gallery(rows, args.figure, f"{args.model}: nearest gallery images (green: same folder as the query)")
    log.info("figure: %s", args.figure)


def _cluster(args) -> None:
    from dscl.atomic import write_text
    from dscl.inference.model import cluster
    from dscl.scoring.nmi import nmi

    model = _load(args)
    emb, paths = _embed(model, args.images, args)
    if args.k > len(paths):
        raise UsageError(f"-k {args.k} is larger than the number of images ({len(paths)})")
    assignment = cluster(emb, args.k, spectral=not args.no_sc)
    table = io.StringIO(newline="")
    writer = csv.writer(table, lineterminator="\n")  # a comma or quote in a name is quoted
    writer.writerows([("path", "cluster"), *((str(p), int(c)) for p, c in zip(paths, assignment))])
    write_text(args.out, table.getvalue())
    log.info("%d images in %d clusters -> %s", len(paths), args.k, args.out)
    # a class-per-folder layout (one folder given, its images in sub-folders): the classes
    top = args.images[0] if len(args.images) == 1 and args.images[0].is_dir() else None
    parts = [p.relative_to(top).parts for p in paths] if top is not None else []
    folders = [q[0] for q in parts if len(q) > 1]
    if len(folders) == len(paths) and len(set(folders)) > 1:  # score the clusters against it
        names = {f: i for i, f in enumerate(sorted(set(folders)))}
        score = nmi(np.array([names[f] for f in folders]), assignment)
        _result(f"NMI against the {len(names)} folders: {100 * score:.2f}")


def _log_to_stderr(level: int) -> None:
    """The library's messages (the ``dscl`` loggers) on stderr, one line each; other
    libraries' loggers keep Python's default (warnings and errors)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("dscl")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _result(line: str) -> None:
    """One line of the command's result, on standard output (what a pipe reads)."""
    sys.stdout.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # before torch is imported: --help and --version answer at once
    _log_to_stderr(logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
    handlers = {"info": _info, "embed": _embed_command, "search": _search, "cluster": _cluster}
    try:
        _check_args(args)
        handlers[args.command](args)
    except (DSCLError, ValueError) as exc:  # the library's one-line errors, and bad arguments
        message = re.sub(r" \(Weights only load failed.*", "", str(exc), flags=re.S)  # torch's advice
        return _fail(args, message.splitlines()[0])
    except BrokenPipeError:  # the reader of stdout stopped (`dscl info ... | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # unreadable or unwritable files: named, with the system's reason
        return _fail(args, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    return 0


def _fail(args, message: str) -> int:
    log.error("dscl %s: error: %s", args.command, message)
    return 2


if __name__ == "__main__":
    sys.exit(main())
