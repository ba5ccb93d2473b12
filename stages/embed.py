"""Stage embed@<dataset>-<method>: embed the test set with the trained model.

Writes ``<out>/test.npy`` (float32, (n, d)) and ``<out>/test_labels.npy``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dscl.atomic import atomic_dir
from dscl.backbones import build_backbone
from dscl.datasets import read_split
from dscl.device import resolve_device
from dscl.images import ImageDataset, make_loader
from dscl.training import EmbeddingNet
from stages.features import ImageParams, image_transform
from stages.params import load_params, section


@dataclass(frozen=True)
class EmbedParams:
    batch_size: int = 256
    device: str = "auto"


def load_model(path: Path) -> tuple[dict, dict | None]:
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved["record"], saved["state_dict"]


@torch.no_grad()
def embed_images(model: nn.Module, split, transform, image: ImageParams, batch_size: int,
                 device: torch.device) -> np.ndarray:
    model.eval()
    loader = make_loader(ImageDataset(split, transform), batch_size, image.num_workers,
                         pin_memory=device.type == "cuda")
    amp = image.amp and device.type == "cuda"
    out = []
    for x, _ in tqdm(loader, desc="embed", unit="batch"):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out.append(model(x.to(device, non_blocking=True)).float().cpu())
    return torch.cat(out).numpy()


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
    image = section(params, "features.image", ImageParams)
    device = resolve_device(cfg.device)
    record, state = load_model(args.model / "model.pt")
    labels = np.load(args.features / "test_labels.npy")
    if record["kind"] == "features":  # vanilla: the pretrained feature itself
        emb = np.load(args.features / "test.npy")
    elif record["kind"] == "head":  # last layer over the cached features
        head = nn.Linear(record["feature_dim"], record["embedding_dim"])
        head.load_state_dict(state)
        feats = torch.from_numpy(np.load(args.features / "test.npy"))
        with torch.no_grad():
            emb = torch.cat([head(c) for c in torch.split(feats, cfg.batch_size)]).numpy()
    else:  # all layers were trained: run the test images through the network
        backbone = build_backbone(record["backbone"], "none")
        head = nn.Linear(record["feature_dim"], record["embedding_dim"])
        classifier = None
        if any(k.startswith("classifier.") for k in state):
            classifier = nn.Linear(record["embedding_dim"], state["classifier.weight"].shape[0])
        model = EmbeddingNet(backbone, head, classifier)
        model.register_buffer("class_ids", torch.empty_like(state["class_ids"]))
        model.load_state_dict(state)
        split = read_split(args.prepared, "test")
        if not np.array_equal(split.labels, labels):
            raise RuntimeError("the prepared test table and the cached features disagree: re-run features")
        emb = embed_images(model.to(device), split, image_transform(record["backbone"], image),
                           image, cfg.batch_size, device)
    with atomic_dir(args.out) as tmp:
        np.save(tmp / "test.npy", emb.astype(np.float32))
        np.save(tmp / "test_labels.npy", labels)
    print(f"embed@{args.dataset}-{record['method']}: {emb.shape} -> {args.out}")


if __name__ == "__main__":
    main()
