"""Stage embed@<dataset>-<method>: embed the test set with the trained model.

Writes ``<out>/test.npy`` (float32, (n, d)), ``<out>/test_labels.npy`` and
``<out>/info.json`` (the method and the step model selection chose, for the report).
Methods whose objective measures l2-normalised embeddings (triplet, lifted,
multi-similarity) are embedded l2-normalised, as they were trained and validated.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dscl.atomic import atomic_dir, write_text
from dscl.backbones import build_backbone
from dscl.datasets import read_split
from dscl.device import resolve_device
from dscl.images import ImageDataset, embed_dataset
from dscl.metrics import l2_normalize
from dscl.training import EmbeddingNet
from stages.cli import run
from stages.features import image_transform, read_feature_params
from stages.params import load_params, section


@dataclass(frozen=True)
class EmbedParams:
    batch_size: int = 256
    device: str = "auto"


def load_model(path: Path) -> tuple[dict, dict | None]:
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved["record"], saved["state_dict"]


def model_runs(folder: Path) -> list[tuple[str, Path]]:
    """The training runs of a model folder: ``model.pt`` (the first seed), then
    ``seed-<s>.pt`` for the other seeds (``train.common.seeds``), in seed order; as
    ``(name of the embedding's sub-folder, "" for the first, path)``."""
    if not (folder / "model.pt").is_file():
        raise FileNotFoundError(f"{folder / 'model.pt'} not found: run the train stage first")
    others = sorted(folder.glob("seed-*.pt"), key=lambda p: int(p.stem.split("-", 1)[1]))
    return [("", folder / "model.pt")] + [(p.stem, p) for p in others]


def embed_run(record, state, args, cfg, image, feat, labels, device) -> np.ndarray:
    """The test embedding of one trained model."""
    if record["kind"] == "features":  # vanilla: the pretrained feature itself
        emb = np.load(args.features / "test.npy")
    elif record["kind"] == "head":  # last layer over the cached features
        head = nn.Linear(record["feature_dim"], record["embedding_dim"])
        head.load_state_dict(state)
        feats = torch.from_numpy(np.load(args.features / "test.npy"))
        with torch.no_grad():
            emb = torch.cat([head(c) for c in torch.split(feats, cfg.batch_size)]).numpy()
    else:  # all layers were trained: run the test images through the network
        model = EmbeddingNet.build(
            build_backbone(record["backbone"], "none"), record["feature_dim"], record["embedding_dim"],
            class_ids=torch.empty_like(state["class_ids"]), classifier="classifier.weight" in state)
        model.load_state_dict(state)
        split = read_split(args.prepared, "test")
        if not np.array_equal(split.labels, labels):
            raise RuntimeError("the prepared test table and the cached features disagree: re-run features")
        if feat.backbone != record["backbone"]:
            raise RuntimeError(f"the model was trained with backbone {record['backbone']!r}, "
                               f"features.datasets.{args.dataset} names {feat.backbone!r}: re-run train")
        dataset = ImageDataset(split, image_transform(feat))
        # softmax: the fine-tuned pooled feature by default (Section 4.2), or the scores
        net = model.backbone if record.get("embedding") == "pooled" else model
        emb = embed_dataset(net.to(device), dataset, cfg.batch_size, image.num_workers, device,
                            image.amp, f"embed {args.dataset}")
    if record.get("normalized"):  # the objective measured l2-normalised embeddings
        emb = l2_normalize(emb)
    return emb


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--features", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    params = load_params()
    cfg = section(params, "embed", EmbedParams)
    image, feat = read_feature_params(params, args.dataset)
    device = resolve_device(cfg.device)
    labels = np.load(args.features / "test_labels.npy")
    runs = model_runs(args.model)
    records, dims = [], []
    with atomic_dir(args.out) as tmp:
        for sub, path in runs:
            record, state = load_model(path)
            emb = embed_run(record, state, args, cfg, image, feat, labels, device)
            (tmp / sub).mkdir(parents=True, exist_ok=True)
            np.save(tmp / sub / "test.npy", emb.astype(np.float32))
            records.append(record)
            dims.append(int(emb.shape[1]))
        np.save(tmp / "test_labels.npy", labels)
        first = records[0]
        info = {k: first.get(k) for k in ("method", "embedding_dim", "iterations", "selected_on",
                                            "selected_step", "normalized")}
        info["test_embedding_dim"] = dims[0]
        if len(records) > 1:  # each seed's run and the step it selected
            info["seeds"] = [r.get("seed") for r in records]
            info["selected_steps"] = [r.get("selected_step") for r in records]
        write_text(tmp / "info.json", json.dumps(info, indent=2) + "\n")
    print(f"embed@{args.dataset}: {len(runs)} run(s), d = {dims[0]} -> {args.out}")


if __name__ == "__main__":
    run(main)
