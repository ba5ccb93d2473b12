"""Stage embed@<dataset>-<method>: embed the test set with the trained model(s).

Writes ``<out>/test.npy`` (float32, (n, d); another seed's run in ``seed-<s>/``),
``<out>/test_labels.npy`` and ``<out>/info.json`` (the method and the step model
selection chose, for the report).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dscl import config, layout
from dscl.atomic import atomic_dir, write_text
from dscl.device import resolve_device
from dscl.inference.embedding import embed_test, load_model
from dscl.numerics import configure, environment
from stages.cli import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    for name in ("--model", "--prepared", "--features", "--out"):
        parser.add_argument(name, required=True, type=Path)
    args = parser.parse_args(argv)
    cfg = config.load()
    configure(cfg.numerics.threads, deterministic=cfg.numerics.deterministic)
    feat, device = cfg.features(args.dataset), resolve_device(cfg.embed.device)
    runs = layout.model_files(args.model)
    records, dims = [], []
    with atomic_dir(args.out) as tmp:
        for name, path in runs:
            record, state = load_model(path)
            emb = embed_test(
                record,
                state,
                features=args.features,
                prepared=args.prepared,
                feat=feat,
                image=cfg.image,
                batch_size=cfg.embed.batch_size,
                device=device,
            )
            out = layout.embedding_file(tmp, name)
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, emb.astype(np.float32))
            records.append(record)
            dims.append(int(emb.shape[1]))
        np.save(layout.labels_file(tmp), np.load(layout.labels_file(args.features)))
        info = {
            k: getattr(records[0], k)
            for k in ("method", "embedding_dim", "iterations", "selected_on", "selected_step", "normalized")
        }
        info["test_embedding_dim"] = dims[0]
        # where each number came from: the training run's environment and this one's
        info["environment"] = {"train": records[0].environment, "embed": environment(device)}
        if len(records) > 1:  # each seed's run and the step it selected
            info["seeds"] = [r.seed for r in records]
            info["selected_steps"] = [r.selected_step for r in records]
        write_text(layout.info_file(tmp), json.dumps(info, indent=2) + "\n")
    print(f"embed@{args.dataset}: {len(runs)} run(s), d = {dims[0]} -> {args.out}")


if __name__ == "__main__":
    run(main)
